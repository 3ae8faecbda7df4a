"""Resource limits before the start, and a generator out of file descriptors failing its run."""

from __future__ import annotations

import os
import resource

import pytest
from helpers import fast_profile, start_cli

from amanflix_stress.engine import limits
from amanflix_stress.engine.client import HttpClient
from amanflix_stress.errors import EXIT_USAGE, UsageError
from amanflix_stress.output.model import Health, HealthLimits, Totals
from amanflix_stress.output.verdict import Policy, decide


def low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_a_run_whose_users_need_more_files_than_allowed_is_refused_in_one_line(tmp_path, server):
    proc = start_cli(
        "run", "--profile", fast_profile(tmp_path, server), "--users", "500", "--workers", "1",
        "--duration", "2s", "--report-json", str(tmp_path / "r.json"), "--quiet",
        preexec_fn=low_fd_limit,
    )  # fmt: skip
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_USAGE, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "500 users need 564 open files per worker but the limit is 64 (hard 64)" in lines[0]
    assert "0 users fit on 1 worker(s)" in lines[0]
    assert server.counts == {}  # refused before a single request
    assert not (tmp_path / "r.json").exists()


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    try:
        assert limits.raise_fd_limit()[0] == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_limits_name_how_many_users_fit(monkeypatch):
    monkeypatch.setattr(limits, "raise_fd_limit", lambda: (1064, 1064))
    assert limits.check_limits(500, 1, connections_per_user=2).fd_needed == 1064
    with pytest.raises(UsageError, match=r"1,002 users need 1,066 open files .* 1,000 users fit on 2 worker"):
        limits.check_limits(1002, 2, connections_per_user=2)  # 501 each, two connections per user


def test_a_thread_limit_too_low_is_refused(monkeypatch):
    monkeypatch.setattr(limits, "thread_allowance", lambda: (100, "cgroup pids.max (/x)"))
    with pytest.raises(UsageError, match=r"200 users need 232 threads but cgroup pids.max \(/x\) allows 100"):
        limits.check_limits(200, 1)


def test_connect_failing_with_too_many_open_files_is_fd_exhausted(server):
    samples = []
    client = HttpClient(server.url, 0, samples.append, timeout_s=2, connect_timeout_s=2)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.dup(0)  # the descriptor the socket would get next
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # the socket's descriptor is refused
    try:
        reply = client.call("GET /ok", "GET", "/ok")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        client.close()
    assert reply.error == "fd_exhausted" and samples[0].error == "fd_exhausted"
    assert "Too many open files" in samples[0].message


def verdict_with(error_classes: dict[str, int], fail_on: tuple[str, ...]):
    requests = 10_000
    failures = sum(error_classes.values())
    totals = Totals(
        duration_s=10.0, users=10, requests=requests, failures=failures, error_rate=failures / requests,
        throughput_rps=1000.0, p50_ms=1.0, p95_ms=1.0, p99_ms=1.0, late_batches=0,
    )  # fmt: skip
    health = Health(workers=(), degraded=False, reasons=(), limits=HealthLimits(cpu_cores=0.8, lag_p99_ms=25))
    return decide(
        workers=(), thresholds=(), lock_issues=None, totals=totals, error_classes=error_classes,
        intervals=[], interrupted=False, baseline=None, health=health, policy=Policy(fail_on=fail_on),
    )  # fmt: skip


def test_requests_failed_for_want_of_descriptors_fail_the_run_whatever_fail_on_says():
    verdict = verdict_with({"fd_exhausted": 3}, fail_on=())  # 0.03 %: far under the error limit
    assert verdict.exit_code == 1 and verdict.status == "fail"
    assert [r.rule for r in verdict.reasons if r.fails] == ["generator"]
    assert "ran out of file descriptors: 3 requests failed" in verdict.summary
    assert verdict_with({"read": 3}, fail_on=()).exit_code == 0
