"""The run's DIAGNOSIS: from the lock section's findings (by evidence level) and counters to causes; a
sandbox run in upstream mode is diagnosed, one in fixed mode is not."""

import json

import pytest
from report_samples import report_json

from amanflix_stress.amanflix.diagnosis import CAUSES, diagnose_run
from amanflix_stress.amanflix.records import Accounts, Cleanup, LockIssues
from amanflix_stress.cli import main
from amanflix_stress.output.model import Report, from_plain, to_json
from amanflix_stress.output.report import render_diagnosis
from amanflix_stress.sandbox import SandboxConfig, start_sandbox

WATCH = "POST /api/watch-history/update"


def lock_issues(evidence: dict) -> LockIssues:
    found = {c: sum(n for level, n in e.items() if level != "timing") for c, e in evidence.items()}
    return LockIssues(
        detected=any(found.values()),
        total=sum(found.values()),
        by_class={c: n for c, n in found.items() if n},
        explain={},
        writes_in_flight={},
        lock_error_rate=0.0,
        endpoints={WATCH: {c: n for c, n in found.items() if n}} if any(found.values()) else {},
        top_users=(),
        timeline=(),
        verified={},
        not_verifiable="",
        evidence=evidence,
    )


def accounts(**counters: int) -> Accounts:
    return Accounts(
        catalog={}, counters=counters, cleanup=Cleanup(method="-", created=0, deleted=0, left_behind=0)
    )


# (lock evidence, counters) -> {cause: level}
CASES = {
    "nothing found": ({}, {}, {}),
    "lost updates answered 200": (
        {"lost_update": {"verified": 12}},
        {},
        {"commit_swallowed": "verified"},
    ),
    "lost inserts, said by the page": (
        {"lost_insert": {"server-said": 2}},
        {},
        {"commit_swallowed": "server-said"},
    ),
    "a lost write proved by a read-back": (
        {"lost_write": {"verified": 1}},
        {},
        {"commit_swallowed": "verified"},
    ),
    "timing alone is never verified": ({"db_locked": {"timing": 5}}, {}, {"busy_timeout": "timing"}),
    "timing beside a server-said lock": (
        {"db_locked": {"timing": 5, "server-said": 1}},
        {},
        {"busy_timeout": "server-said"},
    ),
    "reads failing under a writer": (
        {"auth_locked": {"server-said": 3}},
        {},
        {"busy_timeout": "server-said"},
    ),
    "the pool ran out waiting": ({"pool_timeout": {"server-said": 1}}, {}, {"busy_timeout": "server-said"}),
    "phantom registrations": (
        {"phantom_registration": {"verified": 2}},
        {},
        {"commit_swallowed": "verified", "phantom_token": "verified"},
    ),
    "duplicate rows": ({}, {"duplicate_rows": 4}, {"check_then_insert": "verified"}),
    "a new account inherits a deleted user's rows": (
        {},
        {"inherited_mylist_items": 3},
        {"self_delete_no_cascade": "verified"},
    ),
    "a database error is not blamed on a cause": ({"db_error": {"server-said": 4}}, {}, {}),
    "counters that show nothing": ({}, {"duplicate_rows": 0, "echoes_checked": 400, "readbacks": 9}, {}),
}


@pytest.mark.parametrize(("evidence", "counters", "expected"), CASES.values(), ids=CASES.keys())
def test_each_finding_maps_to_its_cause_with_its_strongest_evidence(evidence, counters, expected):
    causes = diagnose_run(lock_issues(evidence), accounts(**counters))
    assert {c.key: c.level for c in causes} == expected
    assert [c.key for c in causes] == [k for k in CAUSES if k in expected]  # the table's order
    for cause in causes:
        assert (cause.name, cause.cure) == CAUSES[cause.key]
        assert all(text[1 : text.index("]")] in evidence_levels(cause) for text in cause.observations)


def evidence_levels(cause) -> set:
    return {level for levels in (cause.counts or {}).values() for level in levels}


def test_observations_carry_the_counts_classes_levels_and_endpoints():
    evidence = {"lost_update": {"verified": 12}, "db_locked": {"timing": 5, "verified": 2}}
    causes = {c.key: c for c in diagnose_run(lock_issues(evidence), accounts(duplicate_rows=4))}
    assert causes["commit_swallowed"].observations == (
        f"[verified] lost_update 12: updates answered 200 whose echo showed the old values ({WATCH})",
    )
    busy = causes["busy_timeout"]
    assert busy.level == "verified"
    assert busy.observations[1].startswith("[timing] db_locked 5: ")
    assert busy.observations[1].endswith("(timing only: suspected, not counted as found)")
    assert busy.counts == {"db_locked": {"timing": 5, "verified": 2}}
    assert causes["check_then_insert"].counts == {"duplicate_rows": {"verified": 4}}


def test_the_console_diagnosis_lists_each_cause_or_says_none():
    causes = diagnose_run(lock_issues({"lost_update": {"verified": 3}}), accounts())
    text = render_diagnosis(causes)
    assert "1. the commit helper swallows the failed commit (evidence: verified)" in text
    assert "cure: re-raise after the rollback" in text
    assert "no cause found" in render_diagnosis(())
    report = from_plain(Report, report_json(diagnosis=to_json(causes)))  # JSON round trip
    assert report.diagnosis == causes


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fixed", "upstream"])
def test_a_sandbox_run_is_diagnosed_only_where_the_server_has_the_defects(
    mode, tmp_path, monkeypatch, capsys
):
    """The same held lock and bursts: upstream's lost writes name the commit helper, fixed shows no cause."""
    with start_sandbox(SandboxConfig(mode=mode, busy_timeout_s=0.3, hash_iterations=1000)) as srv:
        monkeypatch.setenv("AMANFLIX_ADMIN_USER", srv.admin_username)
        monkeypatch.setenv("AMANFLIX_ADMIN_PASSWORD", srv.admin_password)
        report_path = tmp_path / "report.json"
        argv = ["run", "--amanflix", "--base-url", srv.url, "--users", "12", "--duration", "5s"]
        argv += ["--workers", "1", "--focus-watch-history", "--bursts", "2", "--fail-on", "none", "--quiet"]
        argv += [
            "--hold-lock",
            srv.db_path,
            "--hold-lock-schedule",
            "1s/3s",
            "--report-json",
            str(report_path),
        ]
        assert main(argv) == 0
    diagnosis = json.loads(report_path.read_text())["diagnosis"]
    out = capsys.readouterr().out
    if mode == "fixed":
        assert diagnosis == [] and "DIAGNOSIS\n    no cause found" in out
    else:
        assert diagnosis[0]["key"] == "commit_swallowed" and diagnosis[0]["level"] == "verified"
        assert "1. the commit helper swallows the failed commit (evidence: verified)" in out
