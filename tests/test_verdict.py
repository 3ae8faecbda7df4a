"""The verdict without thresholds: lock issues, the default error limit and a dead target fail a run; fail_on
loosens it; the measured phase's figures leave setup and teardown out."""

import threading
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from helpers import fast_profile, read_report
from loopback import CountingServer
from report_samples import sample_report

from amanflix_stress.amanflix.records import LockIssues
from amanflix_stress.cli import main
from amanflix_stress.engine import health
from amanflix_stress.output.model import Comparison, Totals
from amanflix_stress.output.verdict import RULES, Policy, console_verdict, decide, policy_from, target_down
from amanflix_stress.profile import defaults, fail_rules
from amanflix_stress.sandbox import SandboxConfig, start_sandbox

CLEAN = sample_report()
TOTALS = replace(CLEAN.totals, requests=1000, failures=0, error_rate=0.0)
HEALTHY = CLEAN.health


def locks(total: int) -> LockIssues:
    by_class = {"lost_update": total} if total else {}
    return LockIssues(
        detected=bool(total),
        total=total,
        by_class=by_class,
        explain={},
        writes_in_flight={},
        lock_error_rate=total / 1000,
        endpoints={},
        top_users=(),
        timeline=(),
        verified={"echoes_checked": 400},
        not_verifiable="",
    )


def interval(index: int, requests: int, **errors: int) -> dict:
    return {
        "interval": index,
        "start_s": 5.0 * index,
        "end_s": 5.0 * (index + 1),
        "requests": requests,
        "errors": errors,
    }


HEALTHY_INTERVALS = [interval(i, 100) for i in range(6)]


def verdict(
    lock_total=0,
    totals: Totals = TOTALS,
    intervals=HEALTHY_INTERVALS,
    policy=Policy(),
    interrupted=False,
    baseline: Comparison | None = None,
    health=HEALTHY,
    error_classes=None,
):
    return decide(
        workers=CLEAN.workers,
        thresholds=(),
        lock_issues=locks(lock_total),
        totals=totals,
        error_classes=error_classes or {},
        intervals=intervals,
        interrupted=interrupted,
        baseline=baseline,
        health=health,
        policy=policy,
    )


def test_a_clean_run_passes_green_and_says_no_lock_issues_were_found():
    result = verdict()
    assert (result.exit_code, result.status, result.reasons) == (0, "pass", ())
    assert result.summary == "PASS; no lock issues detected"
    assert console_verdict(result, tty=True) == "\033[1;32mPASS; no lock issues detected\033[0m"
    assert console_verdict(result, tty=False) == result.summary


def test_lock_issues_fail_a_run_with_no_thresholds():
    result = verdict(lock_total=48)
    assert (result.exit_code, result.status) == (1, "fail")
    assert result.summary == "FAIL: DATABASE LOCK ISSUES: 48 (lost_update 48)"
    assert [(r.rule, r.fails) for r in result.reasons] == [("locks", True)]
    assert console_verdict(result, tty=True).startswith("\033[1;31mFAIL")


@pytest.mark.parametrize("failures,fails", [(10, False), (11, True)])
def test_the_error_rate_fails_a_run_above_the_default_1_percent(failures, fails):
    totals = replace(TOTALS, failures=failures, error_rate=failures / 1000)
    result = verdict(totals=totals)
    assert result.exit_code == int(fails)
    assert ("error rate 1.10% > 1.00% (the default limit" in result.summary) is fails


def test_timing_only_lock_waits_never_count_towards_the_default_error_limit():
    totals = replace(TOTALS, failures=60, error_rate=0.06)
    assert verdict(totals=totals, error_classes={"lock_wait": 55, "http_5xx": 5}).exit_code == 0
    failed = verdict(totals=totals, error_classes={"lock_wait": 40, "http_5xx": 20})
    assert failed.exit_code == 1 and "error rate 2.00% > 1.00%" in failed.summary


def test_a_threshold_on_the_error_rate_replaces_the_default_limit():
    totals = replace(TOTALS, failures=50, error_rate=0.05)
    assert verdict(totals=totals, policy=Policy(error_rate_threshold=True)).exit_code == 0


def test_fail_on_none_measures_only_every_finding_listed_as_a_warning_amber():
    totals = replace(TOTALS, failures=500, error_rate=0.5)
    dead = [*HEALTHY_INTERVALS, interval(6, 400, connect=400)]
    result = verdict(lock_total=48, totals=totals, intervals=dead, policy=Policy(fail_on=()))
    assert (result.exit_code, result.status) == (0, "warn")
    assert [(r.rule, r.fails) for r in result.reasons] == [
        ("target", False),
        ("locks", False),
        ("errors", False),
    ]
    assert result.summary.startswith("PASS (fail_on: none); the target stopped answering")
    assert result.summary.count("(not judged: fail_on)") == 3
    assert console_verdict(result, tty=True).startswith("\033[1;33mPASS")


def test_fail_on_picks_the_rules_and_an_interrupted_run_keeps_its_code_and_reasons():
    totals = replace(TOTALS, failures=500, error_rate=0.5)
    only_locks = verdict(lock_total=3, totals=totals, policy=Policy(fail_on=("locks",)))
    assert only_locks.exit_code == 1 and only_locks.summary.startswith("FAIL: DATABASE LOCK ISSUES: 3")
    assert "error rate 50.00% > 1.00% (the default limit, [verdict] max_error_rate) (not judged" in (
        only_locks.summary
    )
    stopped = verdict(lock_total=3, interrupted=True)
    assert (stopped.exit_code, stopped.status) == (130, "interrupted")
    assert stopped.summary == "INTERRUPTED: partial report written; DATABASE LOCK ISSUES: 3 (lost_update 3)"


def test_warnings_alone_make_a_pass_amber_never_green():
    regressed = replace(CLEAN.baseline or _comparison(), regressions=2)
    result = verdict(baseline=regressed)
    assert (result.exit_code, result.status) == (0, "warn")
    assert result.summary == "PASS; no lock issues detected; 2 endpoint regression(s) against the baseline"
    degraded = replace(HEALTHY, degraded=True, reasons=("worker 0 used 0.95 cores",))
    assert verdict(health=degraded).status == "warn"


def _comparison() -> Comparison:
    return Comparison(
        against="b.json",
        against_run_id=None,
        against_started_at=None,
        regression_pct=25.0,
        min_requests=30,
        endpoints=(),
        regressions=0,
        new_endpoints=(),
        missing_endpoints=(),
    )


@pytest.mark.parametrize(
    "rows,down",
    [
        (HEALTHY_INTERVALS, False),
        ([*HEALTHY_INTERVALS, interval(6, 300, connect=250, timeout=2)], True),
        ([*HEALTHY_INTERVALS, interval(6, 10, read=6)], True),  # few requests: most got no answer
        ([*HEALTHY_INTERVALS, interval(6, 10, read=5)], False),  # half is not most
        ([interval(0, 500, connect=500), *HEALTHY_INTERVALS[1:]], False),  # it recovered: early failures
        ([*HEALTHY_INTERVALS, interval(6, 1, connect=1), interval(7, 400)], False),  # a blip, then answers
        ([*HEALTHY_INTERVALS, interval(6, 100, http_5xx=100)], False),  # it answered, with errors
        ([], False),
    ],
)
def test_the_target_stopped_answering_when_most_of_the_last_5_s_got_no_response(rows, down):
    assert (target_down(rows) is not None) is down


def test_the_stopped_target_reason_names_the_share_and_the_classes():
    reason = target_down([*HEALTHY_INTERVALS, interval(6, 300, connect=250, timeout=2)])
    assert reason == (
        "the target stopped answering: 84% of the last 5 s's 300 requests got no response "
        "(connect 250, timeout 2)"
    )


def test_profiles_and_flags_set_the_rules_and_refuse_unknown_ones(tmp_path, capsys):
    profile = tmp_path / "v.toml"
    profile.write_text('# verdict test\n[verdict]\nfail_on = ["lock"]\n')
    assert main(["run", "--profile", str(profile)]) == 2
    assert "unknown rule 'lock' (did you mean 'locks'?)" in capsys.readouterr().err
    assert main(["run", "--fail-on", "locks,eror", "--base-url", "http://127.0.0.1:9"]) == 2
    assert "--fail-on: unknown rule 'eror' (did you mean 'errors'?)" in capsys.readouterr().err


class DyingServer(CountingServer):
    """A counting server that dies after `answer` load requests: new connections are refused and open
    ones are dropped unanswered, as when the target's process is killed."""

    def __init__(self, answer: int) -> None:
        super().__init__()
        self.answer = answer
        self.dead = threading.Event()

    def count(self, route: str) -> None:
        super().count(route)
        with self.lock:
            dies = route != "/" and sum(self.counts.values()) > self.answer and not self.dead.is_set()
            if dies:
                self.dead.set()
        if dies:  # the listener goes (from another thread: shutdown waits for the accept loop)
            threading.Thread(target=self.die, daemon=True).start()

    def die(self) -> None:
        self.shutdown()
        self.server_close()  # connecting is refused from now on


def dying_handler(handler_class):
    class Dying(handler_class):
        def do_GET(self):
            if self.server.dead.is_set():
                self.close_connection = True
                self.connection.shutdown(2)  # no answer: the client sees the connection drop
                return
            super().do_GET()

    return Dying


@pytest.fixture
def dying_server():
    srv = DyingServer(answer=20)
    srv.RequestHandlerClass = dying_handler(srv.RequestHandlerClass)
    srv.thread.start()
    yield srv
    srv.release.set()
    if not srv.dead.is_set():
        srv.shutdown()
    srv.server_close()


def run_args(tmp_path, profile: str, *flags: str) -> list[str]:
    return [
        "run",
        "--profile",
        profile,
        "--users",
        "2",
        "--workers",
        "1",
        "--duration",
        "3s",
        "--quiet",
        "--report-json",
        str(tmp_path / "r.json"),
        "--junit",
        str(tmp_path / "junit.xml"),
        *flags,
    ]


def junit_failures(path) -> dict:
    suite = ET.parse(path).getroot().find("testsuite")
    return {c.get("name"): c.find("failure") for c in suite.findall("testcase")}


@pytest.mark.slow
def test_a_target_killed_mid_run_fails_it_with_the_reason(tmp_path, dying_server, capsys):
    profile = fast_profile(tmp_path, dying_server, think="[0.01, 0.02]")
    assert main(run_args(tmp_path, profile)) == 1
    assert dying_server.dead.is_set()
    line = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert line.startswith("FAIL: the target stopped answering: ") and "error rate" in line
    report = read_report(tmp_path / "r.json")
    assert report["verdict"]["status"] == "fail" and report["verdict"]["summary"] == line
    # a DEGRADED generator (a loaded machine) may add a warning; the failures are exactly these two
    assert [r["rule"] for r in report["verdict"]["reasons"] if r["rule"] != "degraded"] == [
        "target",
        "errors",
    ]
    failures = junit_failures(tmp_path / "junit.xml")
    assert "the target stopped answering" in failures["the target answered to the end"].get("message")
    assert failures["error rate within the default limit"] is not None
    assert failures["all workers finished"] is None and failures["no database lock issues"] is None


@pytest.mark.slow
def test_fail_on_none_exits_0_with_the_figures_and_the_findings_as_warnings(tmp_path, dying_server, capsys):
    profile = fast_profile(tmp_path, dying_server, think="[0.01, 0.02]")
    assert main(run_args(tmp_path, profile, "--fail-on", "none")) == 0
    out = capsys.readouterr().out
    assert "TOTALS" in out and "ENDPOINTS (measured phase)" in out
    assert out.rstrip().splitlines()[-1].startswith("PASS (fail_on: none); the target stopped answering")
    report = read_report(tmp_path / "r.json")
    assert report["verdict"]["status"] == "warn" and report["totals"]["failures"] > 0
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("skipped") == "3"


@pytest.mark.slow
def test_a_clean_run_exits_0_with_a_clean_pass(tmp_path, server, capsys, monkeypatch):
    # the generator's own health depends on how loaded this machine is: not what a clean verdict is about
    monkeypatch.setattr(health, "LAG_LIMIT_MS", 1e9)
    monkeypatch.setattr(health, "CPU_LIMIT_CORES", 1e9)
    assert main(run_args(tmp_path, fast_profile(tmp_path, server))) == 0
    report = read_report(tmp_path / "r.json")
    assert report["verdict"]["status"] == "pass" and report["verdict"]["reasons"] == []
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == "PASS"
    assert all(f is None for f in junit_failures(tmp_path / "junit.xml").values())


@pytest.mark.slow
def test_duration_and_throughput_are_the_measured_phase_teardown_has_its_own(tmp_path, server):
    """Each user's one request takes 1.5 s and the measured phase 1 s: the users finish it during teardown.
    The measured phase is still 1 s long (not 1.5), and min_throughput_rps judges its 2 requests / 1 s."""
    profile = fast_profile(tmp_path, server, path="/delay?ms=1500", think="[0.0, 0.0]")
    with open(profile, "a") as extra:
        extra.write("[thresholds]\nmin_throughput_rps = 1.7\n")  # 2 requests / 1.5 s would be 1.33
    args = run_args(tmp_path, profile)
    args[args.index("3s")] = "1s"
    assert main(args) == 0
    report = read_report(tmp_path / "r.json")
    totals, teardown = report["totals"], report["teardown"]
    assert totals["requests"] == 2
    assert 1.0 <= totals["duration_s"] < 1.3  # the --duration, within a scheduling margin
    assert totals["throughput_rps"] == pytest.approx(2 / totals["duration_s"], rel=0.01)
    assert teardown["duration_s"] >= 0.3  # the users' requests ran on past the stop for ~0.5 s
    assert report["thresholds"][0]["passed"]


@pytest.mark.slow
def test_lock_issues_with_no_thresholds_exit_1_and_setup_has_its_own_rate(tmp_path, monkeypatch, capsys):
    config = SandboxConfig(mode="upstream", busy_timeout_s=0.3, hash_iterations=1000)
    with start_sandbox(config) as srv:
        monkeypatch.setenv("AMANFLIX_ADMIN_USER", srv.admin_username)
        monkeypatch.setenv("AMANFLIX_ADMIN_PASSWORD", srv.admin_password)
        code = main(
            [
                "run",
                "--base-url",
                srv.url,
                "--focus-watch-history",
                "--users",
                "8",
                "--workers",
                "1",
                "--spawn-rate",
                "100",
                "--duration",
                "4s",
                "--hold-lock",
                srv.db_path,
                "--hold-lock-schedule",
                "1s/2s",
                "--quiet",
                "--report-json",
                str(tmp_path / "r.json"),
            ]
        )
    report = read_report(tmp_path / "r.json")
    assert report["thresholds"] == [] and report["lock_issues"]["total"] > 0
    assert code == 1 and report["verdict"]["status"] == "fail"
    line = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert line.startswith("FAIL: ") and f"DATABASE LOCK ISSUES: {report['lock_issues']['total']} (" in line
    setup = report["setup"]
    assert setup["requests"] > 0 and setup["duration_s"] > 0
    assert setup["rps"] == pytest.approx(setup["requests"] / setup["duration_s"], rel=0.01)  # its own span
    teardown = report["teardown"]
    assert teardown["rps"] == pytest.approx(teardown["requests"] / teardown["duration_s"], rel=0.01)
    assert sum(e["rps"] for e in setup["endpoints"]) == pytest.approx(setup["rps"], abs=0.01 * 8)


def test_the_default_policy_judges_every_rule_at_1_percent_and_a_profile_changes_it():
    assert policy_from(defaults()) == Policy(fail_on=RULES, max_error_rate=0.01, error_rate_threshold=False)
    profile = defaults()
    profile["verdict"]["fail_on"] = fail_rules("errors, target")
    profile["thresholds"]["error_rate"] = 0.05
    assert policy_from(profile) == Policy(fail_on=("target", "errors"), error_rate_threshold=True)


def test_the_html_banner_is_green_only_for_a_clean_pass_and_lists_each_reason():
    from amanflix_stress.output.html import verdict_banner

    clean = replace(CLEAN, verdict=verdict())
    assert (
        verdict_banner(clean) == '<div class="verdict pass" id="verdict">PASS; no lock issues detected</div>'
    )
    failed = verdict_banner(replace(CLEAN, verdict=verdict(lock_total=48)))
    assert (
        failed == '<div class="verdict fail" id="verdict">FAIL<ul>'
        "<li>DATABASE LOCK ISSUES: 48 (lost_update 48)</li></ul></div>"
    )
    measured = verdict_banner(replace(CLEAN, verdict=verdict(lock_total=2, policy=Policy(fail_on=()))))
    assert measured.startswith(
        '<div class="verdict warn" id="verdict">PASS with warnings (fail_on: none)<ul><li>warning: '
    )
