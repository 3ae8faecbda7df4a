"""Typed reports for renderer tests: a complete report.json as plain data, read back with from_plain."""

from __future__ import annotations

import copy
from dataclasses import replace

from amanflix_stress.output.model import EndpointRow, Report, Totals, from_plain

WATCH_UPDATE = "POST /api/watch-history/update"


def endpoint_json(name: str, requests=100, failures=0, rps=10.0, p95=100.0, p99=200.0, **more) -> dict:
    row = {
        "name": name,
        "requests": requests,
        "failures": failures,
        "rps": rps,
        "mean_ms": 20.0,
        "min_ms": 1.0,
        "p50_ms": 11.0,
        "p90_ms": 40.0,
        "p95_ms": p95,
        "p99_ms": p99,
        "p999_ms": p99,
        "max_ms": 5100.0,
    }
    return {**row, **more}


def endpoint(name: str, **figures) -> EndpointRow:
    return from_plain(EndpointRow, endpoint_json(name, **figures))


REPORT_JSON = {
    "schema": "amanflix-stress/report/1",
    "meta": {
        "tool": "amanflix-stress",
        "version": "0.0.0",
        "run_id": "ab12cd34",
        "seed": 1,
        "base_url": "http://127.0.0.1:5001",
        "behaviour": "amanflix",
        "args": {"users": 4, "admin_password": "***"},
        "profile": {"load": {"users": 4}},
        "started_at": "2026-01-01T03:00:00Z",
        "ended_at": "2026-01-01T03:00:30Z",
        "hostname": "ci",
        "python": "3.11.7",
        "platform": "Linux",
        "stop_reason": "deadline",
        "interrupted": False,
        "latency_model": "closed model",
        "percentile_method": "nearest rank",
        "timeseries": None,
    },
    "totals": {
        "duration_s": 30.0,
        "users": 4,
        "requests": 400,
        "failures": 12,
        "error_rate": 0.03,
        "throughput_rps": 13.3,
        "p50_ms": 11.0,
        "p95_ms": 44.0,
        "p99_ms": 93.0,
        "late_batches": 0,
    },
    "endpoints": [endpoint_json(WATCH_UPDATE, requests=400, failures=12, rps=13.3, p95=44.0, p99=93.0)],
    "errors": [
        {
            "class": "lost_update",
            "status": 200,
            "message": "echoed <n>",
            "count": 3,
            "share": 0.0075,
            "first_seen_s": 1000.0,
            "last_seen_s": 1010.0,
            "endpoints": {WATCH_UPDATE: 3},
            "example": "echoed <old> value",
            "inflight_mean": 2.0,
            "inflight_max": 3,
        }
    ],
    "error_classes": {"lock_wait": 9, "lost_update": 3},
    "users": [{"user": 0, "requests": 100, "failures": 3, "errors": {"lost_update": 3}}],
    "setup": {"duration_s": 0.0, "requests": 0, "rps": 0.0, "endpoints": [], "errors": []},
    "teardown": {"duration_s": 0.0, "requests": 0, "rps": 0.0, "endpoints": [], "errors": []},
    "workers": [
        {"id": 0, "pid": 42, "host": "ci", "users": 4, "status": "done", "detail": "", "cpu_cores": 0.2}
    ],
    "worker_crashes": [],
    "health": {
        "workers": [
            {
                "id": 0,
                "core": 0,
                "cpu_cores": 0.2,
                "cpu_peak_cores": 0.3,
                "lag_p50_ms": 0.1,
                "lag_p99_ms": 1.0,
                "lag_max_ms": 2.0,
                "lag_samples": 10,
                "threads": 4,
                "busy_share": None,
            }
        ],
        "degraded": False,
        "reasons": [],
        "limits": {"cpu_cores": 0.8, "lag_p99_ms": 25.0},
    },
    "load_model": {"kind": "closed"},
    "thresholds": [],
    "baseline": None,
    "verdict": {
        "exit_code": 1,
        "status": "fail",
        "summary": "FAIL: lost_update rate 0.75% > allowed 0.00%",
        "reasons": [
            {"rule": "thresholds", "summary": "lost_update rate 0.75% > allowed 0.00%", "fails": True}
        ],
        "fail_on": ["target", "locks", "errors"],
        "max_error_rate": 0.01,
        "degraded": False,
    },
}


def report_json(**sections) -> dict:
    """A copy of the sample report.json with whole sections replaced or added."""
    return {**copy.deepcopy(REPORT_JSON), **sections}


def sample_report(**sections) -> Report:
    """The sample as a typed report; sections given as plain data (as report.json holds them)."""
    return from_plain(Report, report_json(**sections))


def with_totals(report: Report, **figures) -> Report:
    totals: Totals = replace(report.totals, **figures)
    return replace(report, totals=totals)
