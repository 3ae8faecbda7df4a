"""Run folders: the overlap lock, stale-lock takeover, retention, baselines and what a cron run leaves."""

import json
import os
import signal

import pytest
from helpers import read_report, start_cli

from amanflix_stress.cli import main
from amanflix_stress.errors import AlreadyRunning
from amanflix_stress.output.rundir import LOCK_NAME, MARKER_NAME, DirLock, prune, run_folders


def dead_pid() -> int:
    """A pid that belonged to a process which has exited (what a crashed run leaves in the lock file)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_a_held_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    first = DirLock(tmp_path)
    assert first.acquire() is None
    with pytest.raises(AlreadyRunning, match=rf"in use by another run \(pid {os.getpid()} on "):
        DirLock(tmp_path).acquire()
    first.release()
    second = DirLock(tmp_path)
    assert second.acquire() is None  # a clean release leaves nothing stale
    second.release()


def test_a_crashed_runs_lock_is_recognised_as_stale_and_taken_over(tmp_path):
    pid = dead_pid()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": "h", "started_at": "yesterday"}))
    lock = DirLock(tmp_path)
    assert lock.acquire() == {"pid": pid, "host": "h", "started_at": "yesterday"}
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_retention_removes_only_the_oldest_run_folders(tmp_path):
    names = [f"2026010{day}-020000-abcdef" for day in range(1, 6)]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / MARKER_NAME).write_text("{}")
        (tmp_path / name / "report.json").write_text("{}")
    (tmp_path / "20260101-000000-ffffff").mkdir()  # looks like a run but has no marker: not ours to delete
    (tmp_path / "notes").mkdir()
    removed = prune(tmp_path, keep=2)
    assert [p.name for p in removed] == names[:3]
    assert [p.name for p in run_folders(tmp_path)] == names[3:]
    assert (tmp_path / "20260101-000000-ffffff").is_dir() and (tmp_path / "notes").is_dir()
    assert prune(tmp_path, keep=0) == []


def test_retention_counts_only_complete_runs_so_a_crash_never_deletes_the_newest_good_run(tmp_path):
    good = [f"2026010{day}-020000-abcdef" for day in range(1, 4)]
    crashed = ["20260100-020000-abcdef", "20260104-020000-abcdef"]  # one before the good runs, one after
    for name in good + crashed:
        (tmp_path / name).mkdir()
        (tmp_path / name / MARKER_NAME).write_text("{}")
    for name in good:
        (tmp_path / name / "report.json").write_text("{}")
    removed = prune(tmp_path, keep=2)
    assert [p.name for p in removed] == [crashed[0], good[0]]
    assert [p.name for p in run_folders(tmp_path)] == [*good[1:], crashed[1]]  # the newest good run stays


def smoke_args(server, report_dir, *extra):
    return [
        "run",
        "--profile",
        "smoke",
        "--base-url",
        server.url,
        "--users",
        "2",
        "--duration",
        "1s",
        "--report-dir",
        str(report_dir),
        *extra,
    ]


@pytest.mark.slow
def test_cron_runs_fill_timestamped_folders_compare_with_the_previous_and_keep_n(tmp_path, server, capsys):
    reports = tmp_path / "soak"
    assert main(smoke_args(server, reports, "--keep", "1", "--baseline", "previous", "--users", "3")) == 0
    (first,) = run_folders(reports)
    assert {p.name for p in first.iterdir()} >= {
        "report.json",
        "report.timeseries.jsonl",
        "summary.txt",
        "report.html",
    }
    out = capsys.readouterr().out.splitlines()
    # not a terminal: a log-friendly result line and the verdict (which may add a note on a busy machine)
    assert out[0] == f"results: {first}" and out[1].startswith("PASS") and len(out) == 2
    first_report = read_report(first / "report.json")
    assert first_report["baseline"] is None and first_report["meta"]["profile"]["load"]["users"] == 3
    assert "ENDPOINTS" in (first / "summary.txt").read_text()
    assert (first / "report.html").read_text().count("<svg") == 2  # latency, throughput; no failures to chart

    assert main(smoke_args(server, reports, "--keep", "1", "--baseline", "previous")) == 0
    (second,) = run_folders(reports)  # the first folder was removed by retention
    assert second != first and not first.exists()
    comparison = read_report(second / "report.json")["baseline"]
    assert comparison["against"] == str(first / "report.json")
    assert {r["name"] for r in comparison["endpoints"]} == {"GET /api/service/status", "GET /ip"}
    assert "BASELINE" in (second / "summary.txt").read_text()


@pytest.mark.slow
def test_a_second_run_on_a_busy_report_dir_exits_4_at_once_and_the_first_finishes(tmp_path, server, capsys):
    reports = tmp_path / "nightly"
    first = start_cli(*smoke_args(server, reports)[:-2], "--duration", "60s", "--report-dir", str(reports))
    try:
        assert server.first_load_request.wait(60)  # a busy shared machine starts processes slowly
        assert main(smoke_args(server, reports)) == 4
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"is in use by another run (pid {first.pid} " in err
        assert len(run_folders(reports)) == 1  # the refused run made no folder
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 130, err
    (folder,) = run_folders(reports)
    assert read_report(folder / "report.json")["meta"]["interrupted"]
    assert out.rstrip().splitlines()[-1].startswith("INTERRUPTED")


@pytest.mark.slow
def test_a_run_takes_over_the_stale_lock_of_a_crashed_run(tmp_path, server, capsys):
    reports = tmp_path / "nightly"
    reports.mkdir()
    (reports / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": "vm", "started_at": "03:00:00"}))
    assert main(smoke_args(server, reports)) == 0
    assert "took over the lock of a run that did not finish" in capsys.readouterr().err
    assert (reports / LOCK_NAME).read_text() == ""  # released cleanly this time


def test_an_unreachable_target_leaves_no_empty_run_folder_and_frees_the_lock(tmp_path, capsys):
    reports = tmp_path / "r"
    assert (
        main(["run", "--profile", "smoke", "--base-url", "http://127.0.0.1:9", "--report-dir", str(reports)])
        == 3
    )
    assert run_folders(reports) == [] and (reports / LOCK_NAME).read_text() == ""
    assert "Traceback" not in capsys.readouterr().err
