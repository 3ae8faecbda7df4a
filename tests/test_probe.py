"""`probe` against the sandbox in each mode, debug on and off: the outcome of every scenario, the diagnosis,
the exit code, no account left; and each bad target or --db is one line with its own exit code."""

import json
import sqlite3

import pytest
from helpers import free_port

from amanflix_stress.cli import main
from amanflix_stress.sandbox import SandboxConfig, start_sandbox

pytestmark = pytest.mark.slow
FAST_HASH = 1000
BUSY_S = "0.3"  # the sandbox's busy timeout here: each held lock lasts about a second at most
LOCK_SCENARIOS = ("lost update", "lost insert", "locked read", "phantom registration", "lost my-list write")
OTHER_SCENARIOS = ("duplicate rows", "leftovers after self-delete")
EVERY_CAUSE = {
    "commit_swallowed",
    "busy_timeout",
    "check_then_insert",
    "self_delete_no_cascade",
    "phantom_token",
}
# what each mode must show: upstream hides every failure, strict shows the lock failures as 500s (its rows
# still race and still stay behind), fixed applies every cure
EXPECTED = {
    "upstream": ({s: "reproduced" for s in LOCK_SCENARIOS + OTHER_SCENARIOS}, EVERY_CAUSE, 1),
    "strict": (
        {s: "reproduced" for s in LOCK_SCENARIOS + OTHER_SCENARIOS},
        {"busy_timeout", "check_then_insert", "self_delete_no_cascade"},
        1,
    ),
    "fixed": ({s: "not reproduced" for s in LOCK_SCENARIOS + OTHER_SCENARIOS}, set(), 0),
}


def sandbox(mode="upstream", debug=False):
    return start_sandbox(
        SandboxConfig(mode=mode, debug=debug, busy_timeout_s=float(BUSY_S), hash_iterations=FAST_HASH)
    )


def probe(srv, tmp_path, *flags):
    report = tmp_path / "probe.json"
    code = main(["probe", "--base-url", srv.url, "--busy-timeout", BUSY_S, "--json", str(report), *flags])
    return code, json.loads(report.read_text()) if report.exists() else None


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("mode", ["upstream", "strict", "fixed"])
def test_each_scenario_against_each_mode(mode, debug, tmp_path, capsys, monkeypatch):
    with sandbox(mode, debug) as srv:
        if debug:  # admin cleanup with debug on, each account deleting itself with debug off: both paths
            monkeypatch.setenv("AMANFLIX_ADMIN_USER", srv.admin_username)
            monkeypatch.setenv("AMANFLIX_ADMIN_PASSWORD", srv.admin_password)
        code, report = probe(srv, tmp_path, "--db", srv.db_path, "--server-log", srv.server_log_path)
        truth = srv.truth()
        password = srv.admin_password
    outcomes, causes, exit_code = EXPECTED[mode]
    assert {f["scenario"]: f["outcome"] for f in report["findings"]} == outcomes
    assert {c["key"] for c in report["diagnosis"]} == causes
    assert code == exit_code == report["exit_code"]
    assert truth["users_in_db"] == 0 and report["cleanup"]["left_behind"] == 0
    out = capsys.readouterr().out
    mark = "✓ not reproduced" if mode == "fixed" else "✗ reproduced"
    assert all(f"{mark:<16} {name}:" in out for name in outcomes)
    assert "DIAGNOSIS" in out and f"(exit {exit_code})" in out
    saved = (tmp_path / "probe.json").read_text()
    for text in (out, saved):  # tokens and passwords never printed nor saved
        assert "eyJ" not in text and password not in text and "pbkdf2_sha256$" not in text


def test_upstream_evidence_names_what_the_server_hid(tmp_path):
    with sandbox("upstream", debug=False) as srv:
        code, report = probe(srv, tmp_path, "--db", srv.db_path, "--server-log", srv.server_log_path)
    findings = {f["scenario"]: f for f in report["findings"]}
    update = findings["lost update"]
    held = [s for s in update["steps"] if s["during_hold"] == "reserved"]
    assert len(held) == 1 and held[0]["status"] == 200 and '"watch_timestamp":120.0' in held[0]["excerpt"]
    assert update["readback"] == "the server holds watch_timestamp 120.0"
    assert any("Database locked during commit" in line for line in update["server_log"])
    phantom = findings["phantom registration"]
    assert (
        "<token sub=None>" in phantom["steps"][0]["excerpt"]
        and "password=***" in phantom["steps"][0]["request"]
    )
    swallowed = next(c for c in report["diagnosis"] if c["key"] == "commit_swallowed")
    assert swallowed["level"] == "verified" and swallowed["cure"].startswith("re-raise")
    assert code == 1


def test_without_db_exactly_the_lock_scenarios_are_skipped(tmp_path, capsys):
    with sandbox("fixed") as srv:
        code, report = probe(srv, tmp_path)
        truth = srv.truth()
    outcomes = {f["scenario"]: (f["outcome"], f["summary"]) for f in report["findings"]}
    assert {name for name, (outcome, _) in outcomes.items() if outcome == "skipped"} == set(LOCK_SCENARIOS)
    assert all("needs --db" in outcomes[name][1] for name in LOCK_SCENARIOS)
    assert all(outcomes[name][0] == "not reproduced" for name in OTHER_SCENARIOS)
    assert code == 0 and truth["users_in_db"] == 0
    assert capsys.readouterr().out.count("– skipped") == len(LOCK_SCENARIOS)


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err + captured.out
    return captured.err


def test_a_target_that_is_not_amanflix_is_one_line(server, tmp_path, capsys):
    assert main(["probe", "--base-url", server.url, "--json", str(tmp_path / "p.json")]) == 5
    assert "Amanflix" in one_line_error(capsys)
    assert not (tmp_path / "p.json").exists()


def test_an_unreachable_target_is_one_line(capsys):
    assert main(["probe", "--base-url", f"http://127.0.0.1:{free_port()}"]) == 3
    assert "unreachable" in one_line_error(capsys)


def test_a_db_that_is_not_sqlite_is_one_line(tmp_path, capsys):
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello")
    with sandbox() as srv:
        assert main(["probe", "--base-url", srv.url, "--db", str(not_a_db)]) == 2
        assert srv.truth()["users_in_db"] == 0  # refused before any account was made
    assert "not a SQLite database" in one_line_error(capsys)


def test_a_db_that_is_not_the_targets_is_noticed_not_reported_as_cured(tmp_path, capsys):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    with sandbox("upstream") as srv:
        code, report = probe(srv, tmp_path, "--db", str(other))
        truth = srv.truth()
    assert code == 7 and report is None
    assert "is not the target's database" in one_line_error(capsys)
    assert truth["users_in_db"] == 0  # the accounts made before it noticed were removed
