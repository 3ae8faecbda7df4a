"""End to end: the real CLI, real worker processes, a real loopback server."""

import os
import signal
import socket
import threading
import time

import pytest
from helpers import fast_profile, free_port, read_report, run_args, start_cli, worker_pids

from amanflix_stress.cli import main
from amanflix_stress.engine import client

pytestmark = pytest.mark.slow


def test_two_workers_report_exactly_what_the_server_counted(tmp_path, server, capsys):
    report = tmp_path / "r.json"
    code = main(
        run_args(
            fast_profile(tmp_path, server),
            report,
            "--spawn-rate",
            "100",
            "--quiet",
            users=6,
            workers=2,
            duration="2s",
        )
    )
    assert code == 0
    data = read_report(report)
    assert data["totals"]["requests"] == server.counts["/ok"] > 50
    assert server.counts["/"] == 1  # the reachability check before the start, not measured
    assert [w["status"] for w in data["workers"]] == ["done", "done"]
    assert data["endpoints"][0]["name"] == "GET /ok"
    out = capsys.readouterr().out
    assert "ENDPOINTS" in out and "TOTALS" in out and "PASS" in out
    lines = (tmp_path / "r.timeseries.jsonl").read_text().splitlines()
    assert lines and '"requests"' in lines[0]


def test_failures_are_grouped_in_the_error_table_and_breach_the_threshold(tmp_path, server, capsys):
    profile = fast_profile(tmp_path, server, path="/500")
    with open(profile, "a") as f:
        f.write("[thresholds]\nerror_rate = 0.5\n")
    report = tmp_path / "r.json"
    code = main(run_args(profile, report, "--quiet"))
    data = read_report(report)
    assert code == 1
    (group,) = data["errors"]
    assert group["class"] == "http_5xx" and group["count"] == data["totals"]["requests"]
    assert group["message"] == "boom N" and group["endpoints"] == {"GET /ok": group["count"]}
    out = capsys.readouterr().out
    assert "FAIL: error rate 100.00% > allowed 50.00%" in out
    users = out[out.index("USERS WITH MOST FAILURES (of 2 users)") : out.index("TOTALS")]
    assert all(f"http_5xx {row['errors']['http_5xx']}" in users for row in data["users"])


def test_max_concurrent_caps_requests_in_flight(tmp_path, server):
    report = tmp_path / "r.json"
    main(
        run_args(
            fast_profile(tmp_path, server, path="/delay"),
            report,
            "--max-concurrent",
            "2",
            "--spawn-rate",
            "100",
            "--quiet",
            users=8,
            workers=2,
            duration="2s",
        )
    )
    data = read_report(report)
    # eight eager users on two workers share two slots: the server never serves more than two at once, and
    # with six users always waiting for a slot it serves two at once as soon as both are held
    assert server.max_in_flight == 2
    assert data["totals"]["requests"] == server.counts["/delay"] > 2


def test_time_waiting_for_a_max_concurrent_slot_is_reported_as_wait(tmp_path, server):
    """README: where requests waited before being sent (--max-concurrent), response and service time show."""
    report = tmp_path / "r.json"
    profile = fast_profile(tmp_path, server, path="/delay")
    flags = ["--users", "6", "--workers", "1", "--duration", "1s", "--max-concurrent", "1"]
    main(["run", "--profile", profile, *flags, "--report-json", str(report), "--quiet"])
    (row,) = read_report(report)["endpoints"]
    # six users on one slot: each waits for the other five's 50 ms requests
    assert row["response_p50_ms"] > row["p50_ms"] + 50


def test_a_hanging_target_still_ends_on_time(tmp_path, server):
    report = tmp_path / "r.json"
    started = time.monotonic()
    code = main(run_args(fast_profile(tmp_path, server, path="/hang"), report, "--timeout", "0.5", "--quiet"))
    assert time.monotonic() - started < 15
    data = read_report(report)
    assert data["error_classes"]["timeout"] >= 2
    assert code == 1 and data["verdict"]["reasons"][0]["rule"] == "target"  # it stopped answering


def test_sigterm_mid_run_still_writes_the_report(tmp_path, server):
    report = tmp_path / "r.json"
    proc = start_cli(
        *run_args(fast_profile(tmp_path, server), report, users=4, workers=2, duration="60s"),
    )
    assert server.first_load_request.wait(30)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    data = read_report(report)
    assert data["meta"]["interrupted"] and data["meta"]["stop_reason"] == "terminated"
    assert data["totals"]["requests"] == server.counts["/ok"]
    assert "Traceback" not in err


def test_ctrl_c_stops_gracefully(tmp_path, server):
    report = tmp_path / "r.json"
    proc = start_cli(
        *run_args(fast_profile(tmp_path, server), report, duration="60s"),
    )
    assert server.first_load_request.wait(30)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert read_report(report)["meta"]["stop_reason"] == "interrupted"


def test_a_worker_killed_with_sigkill_is_named_in_the_report(tmp_path, server):
    report = tmp_path / "r.json"
    proc = start_cli(
        *run_args(fast_profile(tmp_path, server), report, users=4, workers=2, duration="4s"),
    )
    assert server.first_load_request.wait(30)
    victim = worker_pids(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    out, _err = proc.communicate(timeout=40)
    assert proc.returncode == 1
    data = read_report(report)
    dead = [w for w in data["workers"] if w["status"] == "died"]
    assert len(dead) == 1 and dead[0]["pid"] == victim and "exit code -9" in dead[0]["detail"]
    assert "WORKER PROBLEMS" in out


def test_unreachable_target_is_one_line_and_exit_3(capsys):
    port = free_port()
    assert main(["run", "--base-url", f"http://127.0.0.1:{port}", "--duration", "1s"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreachable (nothing accepts connections there)" in err


def test_a_target_that_never_answers_is_given_up_on_after_the_reachability_timeout(capsys):
    """The kernel accepts the handshake for a listener that never accepts: only a timeout ends the wait."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        started = time.monotonic()
        code = main(
            ["run", "--base-url", f"http://127.0.0.1:{listener.getsockname()[1]}", "--duration", "1s"]
        )
        waited_s = time.monotonic() - started
    assert code == 3
    # it waited its own timeout, not the profile's 30 s read timeout (margin for a loaded machine)
    assert client.REACHABLE_TIMEOUT_S - 0.1 <= waited_s < client.REACHABLE_TIMEOUT_S + 10
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no answer within {client.REACHABLE_TIMEOUT_S:g} s" in err


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--users", "-5"], "--users"),
        (["--duration", "abc"], "--duration"),
        (["--base-url", "127.0.0.1:5001"], "--base-url"),
        (["--spawn-rate", "0"], "--spawn-rate"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_flags_are_one_line_naming_the_flag_and_exit_2(flags, named, capsys):
    assert main(["run", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err and "Traceback" not in err


def test_a_server_that_speaks_no_http_is_one_line_and_exit_3(capsys):
    """A hostile peer: it accepts, writes garbage, and hangs up."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve():
            while True:
                try:
                    conn, _addr = listener.accept()
                except OSError:  # the test closed the listener: done
                    return
                with conn:
                    conn.sendall(b"\x00garbage\r\n\r\n")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert main(["run", "--base-url", f"http://127.0.0.1:{port}", "--duration", "1s"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreachable" in err and "Traceback" not in err
