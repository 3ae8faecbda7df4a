"""The HTML report: one self-contained page; charts from the time series, tables from the report."""

import re
from dataclasses import replace

import pytest
from report_samples import REPORT_JSON, endpoint_json, sample_report

from amanflix_stress.amanflix.probe_records import Cause
from amanflix_stress.output.charts import make_spans
from amanflix_stress.output.html import build_timeline, diagnosis_section, read_timeseries, render_html
from amanflix_stress.output.thresholds import evaluate


def interval(i, errors=None, rps=20.0):
    return {
        "interval": i,
        "start_s": 1000.0 + 5 * i,
        "end_s": 1005.0 + 5 * i,
        "requests": 100,
        "failures": 3,
        "rps": rps,
        "p50_ms": 10.0 + i,
        "p95_ms": 40.0 + i,
        "p99_ms": 90.0 + i,
        "active_users": 4,
        "errors": errors or {},
        "endpoints": {},
    }


def report(endpoints=None, **sections):
    """The sample report with a breached threshold; endpoints and other sections as report.json holds them."""
    if endpoints is not None:
        sections["endpoints"] = endpoints
    data = sample_report(**sections)
    limits = {"error_classes": {"lost_update": 0}, "p95_ms": 100}
    return replace(data, thresholds=evaluate(data.totals, data.error_classes, data.endpoints, limits))


def lock_issues(detected=True, **figures):
    section = {
        "detected": detected,
        "total": 12 if detected else 0,
        "by_class": {"lost_update": 3, "lock_wait": 9} if detected else {},
        "explain": {"lost_update": "200 echoing old values", "lock_wait": "waited on a lock"}
        if detected
        else {},
        "writes_in_flight": {},
        "lock_error_rate": 0.03 if detected else 0.0,
        "endpoints": {"POST /api/watch-history/update": {"lost_update": 3, "lock_wait": 9}}
        if detected
        else {},
        "top_users": [],
        "timeline": [],
        "verified": {"echoes_checked": 400},
        "not_verifiable": "",
    }
    return {**section, **figures}


def accounts(left=()):
    cleanup = {
        "method": "admin batch delete",
        "created": 5,
        "deleted": 5 - len(left),
        "left_behind": len(left),
    }
    if left:
        cleanup["not_removed"] = [{"name": name, "reason": "503 on delete"} for name in left]
    return {"catalog": {"movies": 50}, "counters": {"relogins": 2}, "cleanup": cleanup}


def svgs(page: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", page, re.S)


def test_one_timeline_figure_holds_failures_latency_and_throughput_on_one_axis():
    rows = [interval(i, {"lock_wait": 3, "http_5xx": 1} if i % 2 else {"lost_update": 1}) for i in range(6)]
    page = render_html(report(), rows)
    timeline, _ladder = svgs(page)
    for label in (
        "p50",
        "p95",
        "p99",
        "requests/s",
        "active users",
        "seconds since the measured phase started",
    ):
        assert label in timeline, label
    # lock-caused classes are labelled as such, the others are not; one chart, so no second lock chart
    assert "lost_update (lock)" in timeline and "http_5xx" in timeline and "http_5xx (lock)" not in timeline
    assert "lock_wait (lock)" not in timeline  # a slow success: not lock-caused


def test_the_partial_last_interval_is_kept_over_its_own_seconds_or_left_out():
    rows = [interval(i) for i in range(3)]  # 1000-1015 s; the measured phase ends at 1012 s
    spans, left_out = make_spans(rows, 1000.0, 12.0, 5.0)
    assert [s.partial for s in spans] == [False, False, True] and left_out == 0
    assert spans[-1].width_s == pytest.approx(2.0) and spans[-1].row["rps"] == pytest.approx(100 / 2.0)
    spans, left_out = make_spans(rows, 1000.0, 10.5, 5.0)  # 0.5 s of 5: too short to mean anything
    assert len(spans) == 2 and left_out == 1


def test_held_windows_bursts_and_lock_marks_sit_on_the_charts_axis():
    held = {"kind": "reserved", "start_s": 1003.0, "end_s": 1004.5, "lock_issues_detected": 2}
    hold_lock = {"path": "/db", "kind": "reserved", "hold_s": 1.5, "every_s": 9.0, "windows": [held]}
    timeline_row = {"interval": 0, "start_s": 1000.0, "end_s": 1005.0, "classes": {"lost_update": 2}}
    data = report(
        hold_lock={**hold_lock, "windows_detected": 1},
        lock_issues=lock_issues(timeline=[timeline_row]),
        amanflix={**accounts(), "bursts_s": [4.0, 8.0, 12.0, 16.0]},  # the last one after the phase ended
        totals={**REPORT_JSON["totals"], "duration_s": 15.0},
    )
    timeline = build_timeline(data, [interval(i) for i in range(3)])
    assert timeline is not None
    assert timeline.held == ((3.0, 4.5),) and timeline.bursts == (4, 8, 12)
    assert timeline.lock_marks == ((0.0, 5.0, 2),) and timeline.phase_s == 15.0


def test_the_page_is_self_contained_and_shows_the_tables_and_the_verdict():
    page = render_html(report(), [interval(i) for i in range(3)])
    assert not re.search(r"<script|<link|<img|\ssrc=|@import|url\((?!#)", page)  # internal url(#clip) only
    assert page.count('id="') == len(set(re.findall(r'id="([^"]+)"', page)))  # chart ids do not collide
    assert "POST /api/watch-history/update" in page and "5,100.0" in page
    assert "lost_update rate 0.75% &gt; allowed 0.00%" in page and "BREACHED" in page
    assert 'class="verdict fail"' in page and "echoed &lt;old&gt; value" in page
    assert "no failed request in any interval" in page
    # a plain HTTP run verifies nothing: the page says it cannot tell, never "no lock issues"
    assert "<b class='big'>Not checked.</b>" in page and "no lock issues" not in page


def test_an_empty_time_series_and_no_endpoints_still_render_with_a_line_instead_of_tables():
    page = render_html(report(endpoints=[]), [])
    assert page.count("no intervals recorded") == 1 and len(svgs(page)) == 0
    assert '<p class="none" id="endpoints">no requests</p>' in page and "no endpoint measured" in page
    assert "<tbody></tbody>" not in page


def test_endpoint_names_are_escaped(tmp_path):
    page = render_html(report([endpoint_json("GET /<script>", requests=1)]), [])
    assert "GET /&lt;script&gt;" in page and "<script>" not in page
    assert read_timeseries(str(tmp_path / "missing.jsonl")) == []


def test_the_lock_section_explains_each_class_and_lists_the_held_windows():
    held = {"kind": "reserved", "start_s": 1000.0, "end_s": 1007.0, "lock_issues_detected": 12}
    hold_lock = {
        "path": "/srv/amanflix.db",
        "kind": "reserved",
        "hold_s": 7.0,
        "every_s": 30.0,
        "windows": [held],
        "windows_detected": 1,
    }
    data = report(lock_issues=lock_issues(), hold_lock=hold_lock)
    page = render_html(data, [interval(i) for i in range(3)])
    section = page[page.index("Database lock issues detected: 12") :]
    assert "200 echoing old values" in section and "lost_update 3, lock_wait 9" in section
    assert "echoes checked 400" in section and "Held lock windows on /srv/amanflix.db" in section


def test_a_run_without_lock_issues_says_what_it_verified():
    data = report(lock_issues=lock_issues(False, verified={"echoes_checked": 52, "readbacks": 9}))
    page = render_html(data, [interval(0)])
    assert "no lock issues detected; verified: echoes checked 52, readbacks 9" in page
    assert "No database lock issues found." in page and "lock issues found</span>" in page


def test_accounts_left_behind_are_named_with_the_reason_and_the_cleanup_command():
    page = render_html(report(amanflix=accounts(left=("amfxab12cd34u3",))), [])
    section = page[page.index("<h3>Accounts</h3>") :]
    assert "<td>left behind</td><td>1</td>" in section.replace(' class="text"', "")
    assert "amfxab12cd34u3" in section and "503 on delete" in section and "relogins" in section
    assert "amanflix-stress cleanup --base-url http://127.0.0.1:5001 --run-id ab12cd34" in section


def test_open_model_endpoints_show_response_time_beside_service_time():
    response = {f"response_{k}_ms": 900.0 for k in ("p50", "p90", "p95", "p999", "max")}
    response["response_p99_ms"] = 1800.0
    page = render_html(report([endpoint_json("GET /api/movies", **response)]), [])
    table = page[page.index('<table id="endpoints"') :]
    assert "response p99 ms" in table and "service p99 ms" in table and "1,800.0" in table


def test_the_diagnosis_place_renders_causes_and_nothing_without_them():
    cause = Cause(
        key="commit_swallowed",
        name="the commit helper swallows",
        level="verified",
        observations=("[verified] echo",),
        cure="re-raise",
    )
    part = diagnosis_section((cause,))
    assert "<h3>Diagnosis</h3>" in part and "[verified] echo" in part and "re-raise" in part
    assert diagnosis_section(None) == "" and diagnosis_section(()) == ""
