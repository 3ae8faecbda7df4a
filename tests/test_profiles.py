"""Profiles: the shipped ones, the template, every validation error, flag overrides, the profiles command."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from amanflix_stress import profile
from amanflix_stress.cli import build_parser, main, resolve_profile
from amanflix_stress.profile import PROFILE_DIR, SCHEMA, defaults, load_profile

SEED = {
    "quick": (25, "5m"),
    "standard": (100, "10m"),
    "heavy": (200, "15m"),
    "db-stress": (150, None),
    "stability": (50, "30m"),
    "soak": (None, None),
    "smoke": (None, None),
}


@pytest.mark.parametrize("name", sorted(SEED))
def test_each_shipped_profile_loads_and_opens_with_its_purpose(name):
    path = PROFILE_DIR / f"{name}.toml"
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and len(first) > 20
    resolved = load_profile(path)
    users, duration = SEED[name]
    assert users is None or resolved["load"]["users"] == users
    assert duration is None or resolved["load"]["duration"] == duration
    assert resolved["behaviour"]["kind"] == ("http" if name == "smoke" else "amanflix")


def test_db_stress_focuses_on_watch_history_and_soak_keeps_compared_run_folders():
    assert load_profile(PROFILE_DIR / "db-stress.toml")["watch_history"]["focus"] is True
    soak = load_profile(PROFILE_DIR / "soak.toml")
    assert soak["reporting"]["keep"] > 0 and soak["reporting"]["baseline"] == "previous"
    assert soak["thresholds"]["error_classes"]["lost_update"] == 0


def test_the_template_documents_every_option_and_loads_to_the_defaults():
    text = (PROFILE_DIR / "template.toml").read_text()
    for section, options in SCHEMA.items():
        assert f"[{section}]" in text
        for key in options:
            documented = re.search(rf"^#? ?({key} = |\[{section}\.{key}\.)", text, re.M)
            assert documented, f"template lacks [{section}] {key}"
    resolved = load_profile(PROFILE_DIR / "template.toml")
    assert {k: v for k, v in resolved.items() if k != "requests"} == defaults()


BAD = [  # (profile text, words the one-line error must contain)
    ("[load]\nuser = 5\n", ["[load]", "unknown key 'user'", "did you mean 'users'", "allowed keys"]),
    ('[load]\nusers = "many"\n', ["[load] users", "expected a whole number"]),
    ("[load]\nusers = 0\n", ["[load] users", "from 1 to 100000"]),
    ('[load]\nduration = "ten minutes"\n', ["[load] duration", "90s, 10m, 1h"]),
    ('[target]\nbase_url = "ftp://x"\n', ["[target] base_url", "http://"]),
    ('[behaviour]\nkind = "browser"\n', ["[behaviour] kind", "http, amanflix"]),
    ("[behaviour]\nthink_time_s = [2, 1]\n", ["[behaviour] think_time_s", "low <= high"]),
    ("[lode]\nusers = 5\n", ["unknown section [lode]", "did you mean 'load'"]),
    ("users = 5\n", ["'users' must be inside its section", "[load]"]),
    ("[journeys]\nwatch_history_share = 0.9\nmylist_share = 0.2\n", ["[journeys]", "at most 1"]),
    ("[reporting]\nkeep = -1\n", ["[reporting] keep", "from 0"]),
    ('[reporting]\nhtml = "yes"\n', ["[reporting] html", "true or false"]),
    ("[thresholds]\np95_ms = -5\n", ["[thresholds] p95_ms", "at least 0"]),
    (
        "[thresholds]\nerror_classes = { lost_update = 2 }\n",
        ["[thresholds.error_classes]", "lost_update", "0 to 1"],
    ),
    (
        '[thresholds]\nerror_classes = { "Lost Update" = 0 }\n',
        ["[thresholds.error_classes]", "unknown error class"],
    ),
    (
        '[[requests]]\npath = "/"\nheaders = { "X-Evil" = "a\\r\\nInjected: 1" }\n',
        ["[requests]", "X-Evil"],
    ),
    (
        "[thresholds]\nerror_classes = { lost_updte = 0 }\n",
        ["[thresholds.error_classes]", "lost_updte", "did you mean 'lost_update'"],
    ),
    (
        '[thresholds.endpoints."GET /x"]\np95 = 5\n',
        ['[thresholds.endpoints."GET /x"]', "unknown key 'p95'", "p95_ms"],
    ),
    (
        '[thresholds.endpoints."GET /x"]\nerror_rate = 5\n',
        ['[thresholds.endpoints."GET /x"]', "error_rate", "0 to 1"],
    ),
    ("[thresholds]\nendpoints = 3\n", ["[thresholds] endpoints", "[thresholds.endpoints."]),
    ('[[requests]]\nmethod = "GET"\n', ["[[requests]]", "path='/...'"]),
    ("[load\nusers = 5\n", ["not valid TOML"]),
]


@pytest.mark.parametrize("text,words", BAD, ids=[" ".join(b[1][:2]) for b in BAD])
def test_a_bad_profile_is_one_line_naming_file_and_key_and_exit_2(tmp_path, capsys, text, words):
    path = tmp_path / "bad.toml"
    path.write_text("# a broken profile\n" + text)
    assert main(["run", "--profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err
    for word in words:
        assert word in err


def test_flags_override_the_profile_and_are_checked_like_it():
    args = build_parser().parse_args(
        [
            "run",
            "--profile",
            "quick",
            "--users",
            "3",
            "--duration",
            "2s",
            "--report-dir",
            "out",
            "--keep",
            "4",
            "--baseline",
            "previous",
        ]
    )
    resolved = resolve_profile(args)
    assert (resolved["load"]["users"], resolved["load"]["duration"]) == (3, "2s")
    assert resolved["reporting"] == {
        **resolved["reporting"],
        "report_dir": "out",
        "keep": 4,
        "baseline": "previous",
    }
    assert resolved["journeys"] == defaults()["journeys"]  # untouched sections keep the profile's values


@pytest.mark.parametrize(
    "flags,words",
    [
        (["--keep", "-1"], "--keep: expected a value from 0"),
        (["--users", "0"], "--users: expected a value from 1"),
        (["--keep", "3"], "--keep needs --report-dir"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(capsys, flags, words):
    assert main(["run", "--profile", "smoke", "--base-url", "http://127.0.0.1:9", *flags]) == 2
    assert words in capsys.readouterr().err


def test_profiles_lists_every_profile_with_its_purpose_and_user_profiles_shadow_shipped_ones(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "quick.toml").write_text("# my own quick test\n[load]\nusers = 2\n")
    (tmp_path / "broken.toml").write_text("# broken\n[load]\nusers = -1\n")
    monkeypatch.setattr(profile, "USER_PROFILE_DIR", tmp_path)
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for name in SEED:
        assert re.search(rf"^{name} ", out, re.M)
    assert re.search(r"^quick\s+2\s+1m\s+amanflix\s+user\s+my own quick test", out, re.M)
    assert re.search(r"^broken .*INVALID: .*broken.toml: \[load\] users", out, re.M)
    assert profile.find_profile("quick") == tmp_path / "quick.toml"


def test_the_shipped_profiles_live_in_the_package_and_the_top_level_folder_links_there():
    package = Path(profile.__file__).resolve().parent
    assert package / "profiles" == PROFILE_DIR
    assert profile.find_profile("smoke") == PROFILE_DIR / "smoke.toml"
    top_level = package.parent / "profiles"  # the checkout's layout keeps profiles/ at the top
    assert top_level.is_symlink() and top_level.resolve() == PROFILE_DIR
    assert {p.name for p in top_level.glob("*.toml")} >= {f"{name}.toml" for name in SEED}


def test_the_profiles_environment_variable_names_the_users_own_folder(tmp_path):
    (tmp_path / "mine.toml").write_text("# my own profile\n[load]\nusers = 2\n")
    code = "from amanflix_stress.profile import find_profile; print(find_profile('mine'))"
    env = {**os.environ, "AMANFLIX_STRESS_PROFILES": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == str(tmp_path / "mine.toml"), done.stderr
