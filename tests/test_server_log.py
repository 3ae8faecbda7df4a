"""--server-log: the follower reads the server's lock lines per request, survives a bad, truncated or rotated
log, and against the sandbox the server's count equals its ground truth."""

import os
import threading
import time

import pytest
from helpers import read_report

from amanflix_stress.amanflix.serverlog import LogFollower, line_time_s, match, parse_line
from amanflix_stress.cli import main
from amanflix_stress.sandbox import SandboxConfig, start_sandbox
from amanflix_stress.sandbox.serverlog import (
    SAFE_COMMIT_SOURCE,
    TOKEN_REQUIRED_SOURCE,
    ServerLog,
    asctime,
    lock_retry_line,
)

FAST_HASH = 1000
WAIT_S = 10.0  # generous: the follower polls every 0.1 s
ONE_SECOND_INTERVALS = (
    "# test: one-second intervals so each held window has its own\n[load]\ninterval_s = 1\n"
)


@pytest.fixture
def log(tmp_path):
    server_log = ServerLog(str(tmp_path / "amanflix.log"))
    yield server_log
    server_log.close()


def follow(path, warnings: list) -> LogFollower:
    return LogFollower(str(path), warnings.append)


def retry(log: ServerLog, attempt: int) -> None:
    log.record("WARNING", SAFE_COMMIT_SOURCE, lock_retry_line(attempt, 0.1 * attempt))


def test_lines_become_one_event_per_request_from_the_end_of_the_log(log):
    retry(log, 1)  # before the run: not counted
    warnings: list = []
    follower = follow(log.path, warnings)
    assert follower.start()
    try:
        retry(log, 1)
        retry(log, 2)  # the same request's second try
        log.record("INFO", "app.py:1", "GET /api/movies 200")
        log.record("ERROR", TOKEN_REQUIRED_SOURCE, "Unexpected error in token_required: database is locked")
        retry(log, 1)
        assert follower.wait_for_events(3, WAIT_S)
    finally:
        follower.stop()
    assert follower.counts == {"commit_helper": 2, "token_check": 1, "unhandled": 0}
    assert follower.commit_lines == 3 and warnings == []


def test_an_unhandled_lock_traceback_counts_once_at_its_error_line(log):
    follower = follow(log.path, [])
    assert follower.start()
    try:
        try:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        except RuntimeError as exc:
            log.exception("/api/notifications/1/read", "PUT", exc, debug=False)  # not the final line: no
        log._write("sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked\n")
        assert follower.wait_for_events(1, WAIT_S)
    finally:
        follower.stop()
    assert follower.counts["unhandled"] == 1 and follower.requests() == 1


def test_a_truncated_log_is_followed_from_its_start(log):
    warnings: list = []
    follower = follow(log.path, warnings)
    assert follower.start()
    try:
        retry(log, 1)
        assert follower.wait_for_events(1, WAIT_S)
        os.truncate(log.path, 0)  # the server keeps appending through its own handle
        # the file outgrows the old read position before the follower looks again: still noticed
        log.record("ERROR", TOKEN_REQUIRED_SOURCE, "Unexpected error in token_required: database is locked")
        retry(log, 1)
        assert follower.wait_for_events(3, WAIT_S), warnings
    finally:
        follower.stop()
    assert follower.requests() == 3
    assert len(warnings) == 1 and "truncated" in warnings[0]


def test_a_rotated_log_is_reopened(tmp_path):
    path = tmp_path / "amanflix.log"
    first = ServerLog(str(path))
    warnings: list = []
    follower = follow(path, warnings)
    assert follower.start()
    try:
        retry(first, 1)
        first.close()
        os.rename(path, tmp_path / "amanflix.log.1")
        second = ServerLog(str(path))
        retry(second, 1)
        second.close()
        assert follower.wait_for_events(2, WAIT_S), warnings
    finally:
        follower.stop()
    assert follower.requests() == 2 and len(warnings) == 1 and "rotated" in warnings[0]


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo"])
def test_a_bad_path_is_one_line_and_no_thread(tmp_path, kind):
    path = tmp_path / "amanflix.log"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block: it must be refused, not waited on
    warnings: list = []
    follower = follow(path, warnings)
    assert follower.start() is False
    follower.stop()
    assert len(warnings) == 1 and "the run goes on without it" in warnings[0]


def test_log_times_are_local_time_with_milliseconds():
    now_s = time.time()
    line = f"{asctime(now_s)} [WARNING] ⚠ [db_utils.py:153] {lock_retry_line(1, 0.1)}"
    assert line_time_s(line) == pytest.approx(now_s, abs=0.002)
    coloured = f"\x1b[33m{line}\x1b[0m"
    event, _record = parse_line(coloured, None, now_s + 9)
    assert event is not None and event.kind == "commit_helper"
    assert event.time_s == pytest.approx(now_s, abs=0.002)


def test_a_traceback_takes_its_error_records_time_or_else_the_time_it_was_read():
    unhandled = "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked"
    _none, record = parse_line("[2026-11-30 01:41:21,395] ERROR in app: Exception on /x [PUT]", None, 0.0)
    event, record = parse_line(unhandled, record, 1e9)
    assert event is not None and event.time_s == line_time_s("2026-11-30 01:41:21,395 x")
    # debug on: a bare traceback after an unrelated stamped line is timed when read, not by that line
    _none, record = parse_line(f"{asctime(100.0)} [WARNING] ⚠ [db_utils.py:153] x", record, 0.0)
    event, _record = parse_line(unhandled, record, 123.5)
    assert event is not None and event.time_s == 123.5


@pytest.mark.parametrize(
    ("server", "tool", "accounted"),
    [
        ([0, 3, 0, 0], [0, 1, 2, 0], [0, 3, 0, 0]),  # two answers arrive in the next interval
        ([0, 3, 0, 0], [0, 1, 0, 2], [0, 1, 0, 0]),  # two intervals later is too late
        ([2, 0, 0], [5, 0, 0], [2, 0, 0]),  # more findings than events: never more than N
        ([1, 1, 0], [0, 1, 1], [1, 1, 0]),  # each finding matches one event
    ],
)
def test_matching_is_one_to_one_within_the_next_interval(server, tool, accounted):
    assert match(server, tool) == accounted


def run(srv, tmp_path, *flags, users="12", duration="6s"):
    report = tmp_path / "report.json"
    profile = tmp_path / "intervals.toml"
    profile.write_text(ONE_SECOND_INTERVALS)
    argv = ["run", "--amanflix", "--base-url", srv.url, "--users", users, "--duration", duration]
    # measurement runs: the lock issues they provoke must not fail them (the verdict is tested elsewhere)
    argv += ["--spawn-rate", "100", "--workers", "2", "--profile", str(profile), "--fail-on", "none"]
    code = main([*argv, "--report-json", str(report), "--quiet", "--focus-watch-history", *flags])
    return code, read_report(report)


def hold(srv, kind="reserved"):
    return ["--hold-lock", srv.db_path, "--hold-lock-schedule", "1s/3s", "--hold-lock-kind", kind]


@pytest.mark.slow
@pytest.mark.parametrize(("debug", "kind"), [(False, "reserved"), (False, "exclusive"), (True, "exclusive")])
def test_the_server_count_equals_the_sandbox_ground_truth(tmp_path, admin_env, debug, kind):
    config = SandboxConfig(mode="upstream", busy_timeout_s=0.3, hash_iterations=FAST_HASH, debug=debug)
    with start_sandbox(config) as srv:
        admin_env(srv)
        code, report = run(srv, tmp_path, *hold(srv, kind), "--server-log", srv.server_log_path)
        truth = srv.truth()
    section = report["server_log"]
    assert code == 0 and section["followed"] and section["problems"] == []
    assert truth["lock_events"] > 0, "the held windows should have caused locks"
    # N is per request: the commit helper's, exactly the sandbox's count; with the rest, every lock event
    assert section["by_kind"]["commit_helper"] == truth["lock_events_in_commit_helper"]
    assert section["events"] == truth["lock_events"], (section["by_kind"], truth["lock_events_by_endpoint"])
    assert 0 <= section["accounted"] <= section["events"]
    windows = report["held_windows"]
    assert len(windows) == 2 and all(w["server_events"] is not None for w in windows)
    assert sum(w["server_events"] for w in windows) <= section["events"]
    assert sum(r["server_events"] for r in section["intervals"]) == section["events"]


@pytest.mark.slow
def test_held_windows_show_lock_classes_answered_500_apart_from_bare_500s(tmp_path, admin_env):
    config = SandboxConfig(mode="upstream", busy_timeout_s=0.3, hash_iterations=FAST_HASH, debug=True)
    with start_sandbox(config) as srv:
        admin_env(srv)
        _code, report = run(srv, tmp_path, *hold(srv, "exclusive"))
    windows = report["held_windows"]
    assert "server_log" not in report and all(w["server_events"] is None for w in windows)
    # debug on names the lock: every failure in a window is a lock class answered 500, none a bare 500
    assert all(w["lock_classes"].get("db_locked", 0) > 0 for w in windows), windows
    assert all(w["answered_500"] == sum(w["lock_classes"].values()) and w["bare_5xx"] == 0 for w in windows)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_bad_server_log_is_one_line_and_the_run_completes(tmp_path, admin_env, capsys, kind):
    path = tmp_path / "no-such-dir" / "amanflix.log" if kind == "missing" else tmp_path
    with start_sandbox(SandboxConfig(mode="fixed", hash_iterations=FAST_HASH)) as srv:
        admin_env(srv)
        code, report = run(srv, tmp_path, "--server-log", str(path), users="2", duration="2s")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "--server-log" in line]
    assert code == 0 and len(lines) == 1 and "Traceback" not in err, err
    assert report["server_log"]["followed"] is False and report["server_log"]["problems"] == [
        lines[0].split("warning: ", 1)[1]
    ]


@pytest.mark.slow
def test_a_log_truncated_mid_run_is_followed_after_it(tmp_path, admin_env, capsys):
    config = SandboxConfig(mode="upstream", busy_timeout_s=0.3, hash_iterations=FAST_HASH, debug=False)
    with start_sandbox(config) as srv:
        admin_env(srv)
        path = srv.server_log_path
        with open(path, "a", encoding="utf-8") as handle:  # the follower starts 10 kB in, so a truncation
            handle.write("x" * 10_000 + "\n")  # shows as a shrink even if lines follow before its next look
        done = threading.Event()
        truncated = threading.Thread(target=truncate_after_first_lock, args=(path, done), daemon=True)
        truncated.start()
        try:
            code, report = run(srv, tmp_path, *hold(srv), "--server-log", path, duration="7s")
        finally:
            done.set()
            truncated.join(WAIT_S)
        with open(path, encoding="utf-8") as handle:
            after = handle.read().count("Database locked during commit, attempt 1,")
        truth = srv.truth()
    section = report["server_log"]
    assert code == 0 and any("truncated" in p for p in section["problems"]), section["problems"]
    assert after > 0, "the second window's locks should be written after the truncation"
    # everything the truncated file holds was counted (lines written between the follower's last look and
    # the truncation are gone from the file and from the count alike)
    assert after <= section["by_kind"]["commit_helper"] <= truth["lock_events_in_commit_helper"]
    assert "truncated" in capsys.readouterr().err


def truncate_after_first_lock(path: str, done: threading.Event) -> None:
    """Truncate the log once it holds a lock line (the first held window), then stop; bounded by `done`."""
    for _ in range(400):  # at most ~20 s of 50 ms looks
        with open(path, encoding="utf-8") as handle:
            if "Database locked during commit" in handle.read():
                os.truncate(path, 0)
                return
        if done.wait(0.05):
            return
