"""The HTML report: one self-contained page whose charts come from the time series and whose tables from the report."""

import re

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


def report(endpoints=None):
    endpoints = (
        endpoints
        if endpoints is not None
        else [
            {
                "name": "POST /api/watch-history/update",
                "requests": 400,
                "failures": 12,
                "rps": 13.3,
                "mean_ms": 20.0,
                "p50_ms": 11.0,
                "p95_ms": 44.0,
                "p99_ms": 93.0,
                "max_ms": 5100.0,
            }
        ]
    )
    data = {
        "meta": {
            "run_id": "ab12cd34",
            "base_url": "http://127.0.0.1:5001",
            "behaviour": "amanflix",
            "started_at": "2026-01-01T03:00:00Z",
            "ended_at": "2026-01-01T03:00:30Z",
            "stop_reason": "deadline",
            "seed": 1,
            "hostname": "ci",
            "latency_model": "closed model",
            "percentile_method": "nearest rank",
        },
        "totals": {
            "requests": 400,
            "failures": 12,
            "error_rate": 0.03,
            "throughput_rps": 13.3,
            "p50_ms": 11.0,
            "p95_ms": 44.0,
            "p99_ms": 93.0,
            "users": 4,
            "duration_s": 30.0,
        },
        "endpoints": endpoints,
        "error_classes": {"lock_wait": 9, "lost_update": 3},
        "errors": [
            {
                "class": "lost_update",
                "status": 200,
                "count": 3,
                "share": 0.0075,
                "endpoints": {"POST /api/watch-history/update": 3},
                "example": "echoed <old> value",
            }
        ],
        "verdict": {"exit_code": 1, "summary": "FAIL: lost_update rate 0.75% > allowed 0.00%"},
    }
    data["thresholds"] = evaluate(data, {"error_classes": {"lost_update": 0}, "p95_ms": 100})
    return data


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
    page = render_html(
        report(
            [
                {
                    "name": "GET /<script>",
                    "requests": 1,
                    "failures": 0,
                    "rps": 1.0,
                    "mean_ms": 1.0,
                    "p50_ms": 1.0,
                    "p95_ms": 1.0,
                    "p99_ms": 1.0,
                    "max_ms": 1.0,
                }
            ]
        ),
        [],
    )
    assert "GET /&lt;script&gt;" in page and "<script>" not in page
    assert read_timeseries(str(tmp_path / "missing.jsonl")) == []


def test_the_lock_section_explains_each_class_and_lists_the_held_windows():
    data = report()
    data["lock_issues"] = {
        "detected": True,
        "total": 12,
        "lock_error_rate": 0.03,
        "by_class": {"lost_update": 3, "lock_wait": 9},
        "explain": {"lost_update": "200 echoing old values", "lock_wait": "waited on a lock"},
        "endpoints": {"POST /api/watch-history/update": {"lost_update": 3, "lock_wait": 9}},
        "verified": {"echoes_checked": 400},
    }
    data["hold_lock"] = {
        "path": "/srv/amanflix.db",
        "windows": [{"kind": "reserved", "start_s": 1000.0, "end_s": 1007.0, "lock_issues_detected": 12}],
    }
    page = render_html(data, [interval(i) for i in range(3)])
    section = page[page.index("Database lock issues detected: 12") :]
    assert "200 echoing old values" in section and "lost_update 3, lock_wait 9" in section
    assert "echoes checked 400" in section and "Held lock windows on /srv/amanflix.db" in section


def test_a_run_without_lock_issues_says_what_it_verified():
    data = report()
    data["lock_issues"] = {"detected": False, "total": 0, "verified": {"echoes_checked": 52, "readbacks": 9}}
    page = render_html(data, [interval(0)])
    assert "none detected; verified: echoes checked 52, readbacks 9" in page
