"""The HTML report: one self-contained page; charts from the time series, tables from the report."""

import re
from dataclasses import replace

from report_samples import endpoint_json, sample_report

from amanflix_stress.output.html import read_timeseries, render_html
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


def svgs(page: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", page, re.S)


def test_the_page_has_the_four_charts_when_lock_issues_happened():
    rows = [interval(i, {"lock_wait": 3, "http_5xx": 1} if i % 2 else {"lost_update": 1}) for i in range(6)]
    page = render_html(report(), rows)
    charts = svgs(page)
    assert len(charts) == 4
    latency, throughput, classes, locks = charts
    assert all(
        label in latency for label in ("P50", "P95", "P99", "seconds since the measured phase started")
    )
    assert "requests/s" in throughput and "active users" in throughput
    assert all(name in classes for name in ("lock_wait", "http_5xx", "lost_update"))
    assert "lock_wait" in locks and "lost_update" in locks and "http_5xx" not in locks
    assert "SQLite lock issues" in locks


def test_the_page_is_self_contained_and_shows_the_tables_and_the_verdict():
    page = render_html(report(), [interval(i) for i in range(3)])
    assert not re.search(r"<script|<link|<img|\ssrc=|@import|url\((?!#)", page)  # internal url(#clip) only
    assert page.count('id="') == len(set(re.findall(r'id="([^"]+)"', page)))  # chart ids do not collide
    assert "POST /api/watch-history/update" in page and "5,100.0" in page
    assert "lost_update rate 0.75% &gt; allowed 0.00%" in page and "BREACHED" in page
    assert 'class="verdict fail"' in page and "echoed &lt;old&gt; value" in page
    assert "no SQLite lock issues detected" in page and "no failed requests in any interval" in page


def test_long_runs_use_minutes_and_an_empty_time_series_still_renders():
    rows = [dict(interval(i), start_s=1000.0 + 60 * i, end_s=1060.0 + 60 * i) for i in range(10)]
    assert "minutes since the measured phase started" in svgs(render_html(report(), rows))[0]
    page = render_html(report(endpoints=[]), [])
    assert page.count("no intervals recorded") == 2 and "no requests measured" in page


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
    assert "none detected; verified: echoes checked 52, readbacks 9" in page
