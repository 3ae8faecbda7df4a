"""Thresholds: each kind passes and breaches; the baseline comparison and loader; the exit code and JUnit."""

import json
import xml.etree.ElementTree as ET

import pytest
from helpers import read_report, run_args
from report_samples import endpoint, report_json

from amanflix_stress.cli import main
from amanflix_stress.errors import UsageError
from amanflix_stress.output.baseline import BaselineRun, compare, load_baseline, render_baseline
from amanflix_stress.output.model import Totals, from_plain
from amanflix_stress.output.thresholds import evaluate, render_thresholds

TOTALS = from_plain(
    Totals,
    {
        "duration_s": 20.0,
        "users": 10,
        "requests": 1000,
        "failures": 20,
        "error_rate": 0.02,
        "throughput_rps": 50.0,
        "p50_ms": 100.0,
        "p95_ms": 300.0,
        "p99_ms": 900.0,
        "late_batches": 0,
    },
)
ERROR_CLASSES = {"http_5xx": 15, "lost_update": 5}
ENDPOINTS = (
    endpoint("POST /api/watch-history/update", failures=5, p95=450.0),
    endpoint("GET /api/movies"),
)


def limits(**overrides):
    base = {
        "error_rate": None,
        "p95_ms": None,
        "p99_ms": None,
        "min_throughput_rps": None,
        "error_classes": {},
        "endpoints": {},
    }
    return {**base, **overrides}


@pytest.mark.parametrize(
    "configured,passed,summary",
    [
        (limits(error_rate=0.05), True, "error rate 2.00% <= allowed 5.00%"),
        (limits(error_rate=0.01), False, "error rate 2.00% > allowed 1.00%"),
        (limits(p95_ms=250), False, "p95 300.0 ms > allowed 250.0 ms"),
        (limits(p99_ms=1000), True, "p99 900.0 ms <= allowed 1,000.0 ms"),
        (limits(min_throughput_rps=60), False, "throughput 50.0 req/s < required 60.0 req/s"),
        (limits(min_throughput_rps=40), True, "throughput 50.0 req/s >= required 40.0 req/s"),
        (limits(error_classes={"lost_update": 0}), False, "lost_update rate 0.50% > allowed 0.00%"),
        (limits(error_classes={"db_locked": 0}), True, "db_locked rate 0.00% <= allowed 0.00%"),
        (
            limits(endpoints={"POST /api/watch-history/update": {"p95_ms": 400}}),
            False,
            "POST /api/watch-history/update p95 450.0 ms > allowed 400.0 ms",
        ),
        (
            limits(endpoints={"POST /api/watch-history/update": {"error_rate": 0.01}}),
            False,
            "POST /api/watch-history/update error rate 5.00% > allowed 1.00%",
        ),
        (
            limits(endpoints={"GET /api/movies": {"min_rps": 5, "p99_ms": 200}}),
            True,
            "GET /api/movies throughput",
        ),
        (
            limits(endpoints={"GET /api/moveis": {"p95_ms": 400}}),
            False,
            "GET /api/moveis p95: no requests measured (allowed 400.0 ms)",
        ),
    ],
)
def test_each_threshold_kind_passes_or_breaches_with_measured_and_allowed(configured, passed, summary):
    results = evaluate(TOTALS, ERROR_CLASSES, ENDPOINTS, configured)
    assert results and all(r.passed is passed for r in results)
    assert results[0].summary.startswith(summary)
    assert ("BREACHED" in render_thresholds(results)) is not passed


def test_baseline_flags_endpoints_that_got_slower_or_fail_more_but_not_noise():
    before = BaselineRun(
        "before.json",
        "a",
        None,
        (endpoint("A", p95=100.0), endpoint("B", p95=1.0), endpoint("C"), endpoint("Gone")),
    )
    now = (endpoint("A", p95=140.0), endpoint("B", p95=2.5), endpoint("C", failures=10), endpoint("New"))
    result = compare(now, before, 25.0)
    flagged = {r.name: r.why for r in result.endpoints if r.regression}
    assert flagged == {
        "A": "p95 100.0 -> 140.0 ms",
        "C": "errors 0.00% -> 10.00%",
    }  # B: +150% but only 1.5 ms
    assert result.regressions == 2 and result.against_run_id == "a"
    assert (result.new_endpoints, result.missing_endpoints) == (("New",), ("Gone",))


@pytest.mark.parametrize("requests,flagged", [(6, False), (29, False), (30, True), (100, True)])
def test_a_regression_is_flagged_only_where_both_runs_have_enough_requests(requests, flagged):
    before = BaselineRun("b.json", "a", None, (endpoint("A", requests=requests, p95=5.8),))
    now = (endpoint("A", requests=requests, p95=26.6, failures=requests // 2),)  # 5.8 -> 26.6 ms
    result = compare(now, before, 25.0)
    (row,) = result.endpoints
    assert (row.regression, row.judged, result.regressions) == (flagged, flagged, int(flagged))
    assert (row.requests_before, row.requests_now) == (requests, requests)
    table = render_baseline(result)
    assert "judged only where both runs have at least 30 requests" in table.splitlines()[0]
    assert ("REGRESSION" if flagged else "too few requests") in table


def test_one_run_short_of_requests_is_enough_to_not_judge():
    before = BaselineRun("b.json", "a", None, (endpoint("A", requests=100, p95=5.0),))
    assert compare((endpoint("A", requests=6, p95=50.0),), before, 25.0).regressions == 0
    assert compare((endpoint("A", requests=100, p95=50.0),), before, 25.0).regressions == 1


def test_the_baseline_loader_reads_an_earlier_report_and_refuses_what_is_not_one(tmp_path):
    path = tmp_path / "before.json"
    path.write_text(json.dumps(report_json()))
    before = load_baseline(str(path))
    assert (before.path, before.run_id, before.started_at) == (str(path), "ab12cd34", "2026-01-01T03:00:00Z")
    assert [(r.name, r.p95_ms, r.failures) for r in before.endpoints] == [
        ("POST /api/watch-history/update", 44.0, 12)
    ]
    path.write_text(json.dumps({"endpoints": [{"name": "GET /x"}]}))
    with pytest.raises(UsageError, match="endpoints table this version cannot read"):
        load_baseline(str(path))
    path.write_text("[]")
    with pytest.raises(UsageError, match="not an amanflix-stress report"):
        load_baseline(str(path))


def profile_with(tmp_path, server, thresholds: str) -> str:
    path = tmp_path / "t.toml"
    path.write_text(f"""# thresholds test: fast loop on /ok and a slower /delay
[target]
base_url = "{server.url}"
[behaviour]
think_time_s = [0.0, 0.01]
[[requests]]
name = "GET /ok"
path = "/ok"
[[requests]]
name = "GET /delay"
path = "/delay"
[thresholds]
{thresholds}
""")
    return str(path)


def junit_cases(path) -> dict:
    suite = ET.parse(path).getroot().find("testsuite")
    return {case.get("name"): case.find("failure") for case in suite.findall("testcase")}


@pytest.mark.slow
def test_thresholds_that_hold_exit_0_and_every_junit_case_passes(tmp_path, server, capsys):
    profile = profile_with(
        tmp_path,
        server,
        'error_rate = 0.01\nmin_throughput_rps = 1\n[thresholds.endpoints."GET /delay"]\np95_ms = 5000\n',
    )
    junit = tmp_path / "ci" / "junit.xml"
    code = main(run_args(profile, tmp_path / "r.json", "--quiet", "--junit", str(junit)))
    assert code == 0
    cases = junit_cases(junit)
    assert set(cases) == {  # the error_rate threshold replaces the default error limit's case
        "all workers finished",
        "the target answered to the end",
        "no database lock issues",
        "error_rate",
        "min_throughput_rps",
        'endpoints."GET /delay".p95_ms',
    }
    assert all(failure is None for failure in cases.values())
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("PASS")


@pytest.mark.slow
def test_a_breach_exits_1_and_lists_measured_vs_allowed_in_the_output_the_report_and_junit(
    tmp_path, server, capsys
):
    profile = profile_with(
        tmp_path,
        server,
        'error_rate = 0.01\n[thresholds.endpoints."GET /delay"]\np95_ms = 1\nmin_rps = 100000\n',
    )
    junit = tmp_path / "junit.xml"
    code = main(run_args(profile, tmp_path / "r.json", "--quiet", "--junit", str(junit)))
    assert code == 1
    out = capsys.readouterr().out
    verdict = out.rstrip().splitlines()[-1]
    assert verdict.startswith("FAIL: GET /delay p95 ") and "ms > allowed 1.0 ms" in verdict
    assert "req/s < required 100,000.0 req/s" in verdict and "error rate" not in verdict
    assert "THRESHOLDS" in out and out.count("BREACHED") == 2
    report = read_report(tmp_path / "r.json")
    assert [r["passed"] for r in report["thresholds"]] == [True, False, False]
    assert (report["verdict"]["exit_code"], report["verdict"]["summary"]) == (1, verdict)
    cases = junit_cases(junit)
    assert cases["error_rate"] is None and cases["all workers finished"] is None
    assert "ms > allowed 1.0 ms" in cases['endpoints."GET /delay".p95_ms'].get("message")
