"""The typed report: its JSON round-trips exactly, its records are frozen, the schema doc fits the types."""

from dataclasses import FrozenInstanceError, fields, replace

import pytest
from helpers import read_report
from report_samples import endpoint_json, report_json, sample_report

from amanflix_stress.cli import main
from amanflix_stress.output.model import Report, from_plain, to_json
from amanflix_stress.output.rundir import run_folders, summary_text
from amanflix_stress.output.schema import DOC_PATH, records, render_schema

WATCH_UPDATE = "POST /api/watch-history/update"


def test_the_schema_doc_is_generated_from_the_types():
    assert DOC_PATH.read_text() == render_schema(), (
        "docs/report-schema.md differs from the report's types: run "
        "'python -m amanflix_stress.output.schema --write' and commit the result"
    )


def test_every_field_of_every_record_is_documented():
    undocumented = [
        f"{cls.__name__}.{f.name}"
        for cls in records(Report)
        for f in fields(cls)
        if not f.metadata.get("doc")
    ]
    assert not undocumented
    assert len(records(Report)) >= 25  # the Amanflix sections are reached through the report's types


def every_optional_section() -> dict:
    """A report.json with each optional part present: open model, response times, Amanflix sections."""
    response = {f"response_{k}_ms": 9.0 for k in ("p50", "p90", "p95", "p99", "p999", "max")}
    arrivals = {
        "rate": 30.0,
        "stages": [[10.0, 30.0], [20.0, 60.0]],
        "arrivals_scheduled": 150,
        "arrivals_started": 140,
        "late": 3,
        "dropped": 2,
        "unsent_at_stop": 8,
        "late_after_ms": 10.0,
        "drop_after_ms": 1000.0,
        "response_p50_ms": 5.0,
        "response_p95_ms": None,
        "response_p99_ms": 50.0,
    }
    windows = [
        {"kind": "reserved", "start_s": 1000.0, "end_s": 1001.0, "lock_issues_detected": 4},
        {"kind": "reserved", "start_s": 1005.0, "end_s": None, "error": "locked", "lock_issues_detected": 0},
    ]
    return report_json(
        endpoints=[endpoint_json(WATCH_UPDATE, **response), endpoint_json("GET /api/movies")],
        load_model={"kind": "open", **arrivals},
        amanflix={
            "catalog": {"movies": 50, "shows": 10},
            "counters": {"accounts_created": 4, "echoes_checked": 80},
            "cleanup": {
                "method": "self-delete (no admin credentials)",
                "created": 5,
                "deleted": 5,
                "left_behind": 0,
                "rows_left_behind": 7,
                "note": "rows stay",
            },
        },
        lock_issues={
            "detected": True,
            "total": 4,
            "by_class": {"lost_update": 4},
            "explain": {"lost_update": "200 echoing old values"},
            "writes_in_flight": {"lost_update": {"mean": 2.5, "max": 4}},
            "lock_error_rate": 0.01,
            "endpoints": {WATCH_UPDATE: {"lost_update": 4}},
            "top_users": [{"user": 3, "lock_errors": 4}],
            "timeline": [{"interval": 0, "start_s": 1000.0, "end_s": 1005.0, "classes": {"lost_update": 4}}],
            "verified": {"echoes_checked": 80, "readbacks": 5},
            "not_verifiable": "analytics",
        },
        hold_lock={
            "path": "/srv/a.db",
            "kind": "reserved",
            "hold_s": 1.0,
            "every_s": 5.0,
            "windows": windows,
            "windows_detected": 1,
        },
    )


def test_a_report_with_every_optional_part_round_trips_exactly():
    data = every_optional_section()
    report = from_plain(Report, data)
    assert to_json(report) == data
    assert report.endpoints[0].response.response_max_ms == 9.0 and report.endpoints[1].response is None
    assert report.load_model.open.stages == ((10.0, 30.0), (20.0, 60.0))
    assert report.amanflix.cleanup.found is None and report.hold_lock.windows[1].error == "locked"
    closed = sample_report()
    assert to_json(closed) == report_json()  # absent parts stay absent: no null keys appear
    assert "lock_issues" not in to_json(closed) and closed.load_model.open is None


def test_a_missing_key_is_an_error_not_a_silent_null():
    data = report_json()
    del data["totals"]["p95_ms"]
    with pytest.raises(ValueError, match="Totals: no 'p95_ms'"):
        from_plain(Report, data)


def test_the_report_is_never_edited_after_it_is_built():
    report = sample_report()
    with pytest.raises(FrozenInstanceError):
        report.verdict = None
    with pytest.raises(FrozenInstanceError):
        report.totals.requests = 0
    assert replace(report, baseline=None) is not report


@pytest.mark.slow
def test_a_written_report_reads_back_into_the_same_tables(tmp_path, server, capsys):
    """report.json holds everything the console shows: read back, it renders summary.txt again."""
    reports = tmp_path / "runs"
    base = ["run", "--profile", "smoke", "--base-url", server.url, "--users", "2", "--duration", "1s"]
    assert main([*base, "--report-dir", str(reports), "--rate", "20"]) == 0
    assert main([*base, "--report-dir", str(reports), "--baseline", "previous"]) == 0
    for folder in run_folders(reports):
        written = read_report(folder / "report.json")
        report = from_plain(Report, written)
        assert to_json(report) == written
        assert summary_text(report) + "\n" == (folder / "summary.txt").read_text()
    assert report.baseline is not None and report.baseline.against.endswith("report.json")
    assert written["load_model"] == {"kind": "closed"}
    first = read_report(run_folders(reports)[0] / "report.json")
    assert first["load_model"]["kind"] == "open" and "response_p50_ms" in first["endpoints"][0]
