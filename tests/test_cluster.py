"""Scale-out on Dask: real LocalCluster worker processes on loopback, the counting server as the target."""

import os
import pickle
import signal
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from helpers import fast_profile, free_port, read_report, start_cli
from scale_behaviours import DEAF_S

from amanflix_stress.cli import main
from amanflix_stress.engine import cluster, histogram
from amanflix_stress.engine.cluster import (
    DaskCoordinator,
    SchedulerHeartbeats,
    parse_address,
    run_share,
    share_caps,
)
from amanflix_stress.engine.messages import Batch, Crash
from amanflix_stress.engine.plan import RunPlan, worker_shares
from amanflix_stress.errors import UsageError

needs_dask = pytest.mark.skipif(cluster.distributed is None, reason="the cluster extra is not installed")


def http_plan(server, path="/ok", **overrides) -> RunPlan:
    settings = {"requests": [{"name": "GET /ok", "method": "GET", "path": path}], "think_time_s": [0.0, 0.01]}
    return RunPlan(
        **{
            "base_url": server.url,
            "users": 4,
            "workers": 2,
            "duration_s": 2.0,
            "spawn_rate": 100.0,
            "interval_s": 1.0,
            "timeout_s": 2.0,
            "settings": settings,
            **overrides,
        }
    )


@pytest.fixture(scope="module")
def dask_cluster():
    """Two single-threaded Dask worker processes, started as `--cluster local:2` starts them."""
    with (
        cluster.start_local_cluster(2) as local,
        cluster.distributed.Client(local, set_as_default=False) as client,
    ):
        yield local.scheduler_address, client


@pytest.fixture
def client(dask_cluster):
    _address, client = dask_cluster
    client.wait_for_workers(2, timeout=30)  # a worker a previous test killed is back
    return client


@pytest.mark.parametrize(
    "address, parsed",
    [
        ("local:2", ("local", 2)),
        ("tcp://127.0.0.5:8786", ("remote", "tcp://127.0.0.5:8786")),
        ("tls://sched.lan:8786", ("remote", "tls://sched.lan:8786")),
    ],
)
def test_cluster_addresses_are_understood(address, parsed):
    assert parse_address(address) == parsed


def test_the_in_flight_cap_is_split_across_shares_without_exceeding_it():
    assert share_caps(5, 2) == [3, 2]
    assert share_caps(0, 3) == [0, 0, 0]
    with pytest.raises(UsageError, match="--max-concurrent 1"):
        share_caps(1, 2)


@needs_dask
def test_a_worker_the_scheduler_stopped_hearing_from_is_called_unreachable():
    now = [100.0]
    beats = SchedulerHeartbeats(clock=lambda: now[0])
    for step in range(12):  # 6 s: gen1 keeps beating, gen2 fell off the network at the start
        beats.note({"tcp://gen1:1": {"last_seen": 1e9 + step / 2}, "tcp://gen2:1": {"last_seen": 1e9}})
        now[0] += 0.5
    assert beats.unreachable_s("tcp://gen1:1") == 0.0
    assert beats.unreachable_s("tcp://gen2:1") == pytest.approx(6.0)
    assert beats.unreachable_s("tcp://never-seen:1") == 0.0


@needs_dask
def test_a_large_cluster_allows_its_slower_heartbeats_before_calling_a_worker_unreachable():
    now = [0.0]
    beats = SchedulerHeartbeats(clock=lambda: now[0])
    beats.note({f"tcp://w{i}:1": {"last_seen": 1.0} for i in range(1000)})  # Dask: a beat every 6 s at 1,000
    now[0] = 20.0
    assert beats.unreachable_s("tcp://w0:1") == 0.0  # 3 beats missed: slow, not gone
    now[0] = 31.0
    assert beats.unreachable_s("tcp://w0:1") == pytest.approx(31.0)


@pytest.mark.parametrize("address", ["local:0", "local:x", "http://127.0.0.5:8786", "tcp://127.0.0.5"])
def test_a_bad_cluster_address_is_one_line_naming_the_flag_and_exit_2(address, tmp_path, capsys):
    assert main(["run", "--cluster", address, "--report-json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--cluster" in err and "local:N" in err and "Traceback" not in err


def test_without_dask_the_cluster_flag_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cluster, "distributed", None)  # the boundary: the optional import failed
    assert main(["run", "--cluster", "local:2", "--report-json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'amanflix-stress[cluster]'" in err


@needs_dask
def test_an_unreachable_scheduler_is_one_line_and_exit_3(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1.0)
    port = free_port()
    assert (
        main(["run", "--cluster", f"tcp://127.0.0.1:{port}", "--report-json", str(tmp_path / "r.json")]) == 3
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dask scheduler" in err and "Traceback" not in err


@needs_dask
@pytest.mark.slow
def test_a_local_cluster_run_reports_exactly_what_the_server_counted(tmp_path, server, capsys):
    report = tmp_path / "r.json"
    code = main(
        [
            "run",
            "--profile",
            fast_profile(tmp_path, server),
            "--cluster",
            "local:2",
            "--users",
            "4",
            "--duration",
            "2s",
            "--spawn-rate",
            "100",
            "--report-json",
            str(report),
            "--quiet",
        ]
    )
    assert code == 0
    data = read_report(report)
    assert data["totals"]["requests"] == server.counts["/ok"] > 50
    workers = data["workers"]
    assert [w["status"] for w in workers] == ["done", "done"]
    assert len({w["pid"] for w in workers} - {os.getpid()}) == 2  # two Dask worker processes, not this one
    assert sorted(u["user"] for u in data["users"]) == [0, 1, 2, 3]  # user indexes stay global across workers
    assert "PASS" in capsys.readouterr().out


def series_parts(message, parts: dict) -> None:
    """Record each run-phase histogram a worker shipped, straight from the wire format."""
    if not isinstance(message, Batch) or message.phase != "run":
        return
    for _index, plain in message.intervals:
        for name, outcome, series in plain["series"]:
            part = parts.setdefault(message.worker_id, {}).setdefault((name, outcome), [histogram.empty(), 0])
            part[0] += histogram.from_sparse(*series["hist"])
            part[1] += series["count"]


@needs_dask
@pytest.mark.slow
def test_merged_histograms_equal_the_sum_of_the_parts(client, server):
    coordinator = DaskCoordinator(http_plan(server), None, client)
    parts: dict = {}
    handle = coordinator.aggregator.handle
    coordinator.aggregator.handle = lambda message: (series_parts(message, parts), handle(message))
    merged = coordinator.run().aggregator.run
    assert sorted(parts) == [0, 1] and all(p[("GET /ok", "ok")][1] > 0 for p in parts.values())
    for key, series in merged.series.items():
        np.testing.assert_array_equal(series.hist, sum(p[key][0] for p in parts.values() if key in p))
        assert series.count == sum(p[key][1] for p in parts.values() if key in p)
    assert merged.requests == server.counts["/ok"]


@needs_dask
@pytest.mark.slow
def test_stop_at_the_deadline_is_prompt(client, server):
    plan = http_plan(server, path="/delay?ms=200", duration_s=1.5)
    result = DaskCoordinator(plan, None, client).run()
    assert result.stop_reason == "deadline"
    assert result.end_s - result.start_s < plan.duration_s + 2.0  # one in-flight request, then teardown
    assert [w["status"] for w in result.aggregator.worker_rows()] == ["done", "done"]


@needs_dask
@pytest.mark.slow
def test_a_user_deaf_to_the_stop_is_reported_and_does_not_hold_the_cluster_run(server, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the Dask worker imports the deaf user from here
    behaviour = {"behaviour_path": "scale_behaviours:DeafUser", "timeout_s": 1.0, "teardown_timeout_s": 1.0}
    plan = http_plan(server, users=1, workers=1, duration_s=1.0, **behaviour)
    with (
        cluster.start_local_cluster(1) as local,
        cluster.distributed.Client(local, set_as_default=False) as client,
    ):
        result = DaskCoordinator(plan, None, client).run()
    [row] = result.aggregator.worker_rows()
    assert row["status"] == "done" and row["detail"] == "1 user threads did not stop in time", row
    assert result.end_s - result.start_s < DEAF_S / 2  # not held until the user's step ends by itself


@needs_dask
def test_a_share_started_without_its_ticket_is_refused_and_sends_no_load(client, server):
    prefix = f"test-refused-{uuid.uuid4().hex[:8]}"
    share = worker_shares(http_plan(server, users=1, workers=1), {})[0]
    spec = {
        "results": f"{prefix}-results",
        "claim": f"{prefix}-claim",
        "stop": f"{prefix}-stop",
        "go": f"{prefix}-go",
        "max_concurrent": 0,
        "go_timeout_s": 5.0,
    }
    results = cluster.distributed.Queue(spec["results"], client=client)  # held, as the coordinator holds it
    assert client.submit(run_share, share, spec, pure=False).result(timeout=30) == "refused"
    (note,) = [pickle.loads(item) for item in results.get(batch=True)]
    results.close()
    assert isinstance(note, Crash) and note.worker_id == 0 and "not doubled" in note.text
    assert server.total() == 0


@needs_dask
@pytest.mark.slow
def test_sigterm_reaches_every_remote_worker(dask_cluster, client, tmp_path, server):
    report = tmp_path / "r.json"
    proc = start_cli(
        "run",
        "--profile",
        fast_profile(tmp_path, server),
        "--cluster",
        dask_cluster[0],
        "--users",
        "4",
        "--duration",
        "60s",
        "--report-json",
        str(report),
    )
    try:
        assert server.first_load_request.wait(30)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)  # far below the 60 s each worker's own deadline would take
    finally:
        proc.kill()  # a no-op when it ended; no run left behind when it did not
    assert proc.returncode == 130, err
    data = read_report(report)
    assert data["meta"]["stop_reason"] == "terminated"
    assert [w["status"] for w in data["workers"]] == ["done", "done"]
    assert data["totals"]["requests"] == server.counts["/ok"]
    assert "Traceback" not in err


def kill_when_loaded(server, pid: int) -> threading.Thread:
    def kill() -> None:
        if server.first_load_request.wait(30):
            os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@needs_dask
@pytest.mark.slow
def test_a_killed_dask_worker_is_reported_with_its_users(dask_cluster, client, tmp_path, server, capsys):
    victim = sorted(client.run(os.getpid).values())[0]
    killer = kill_when_loaded(server, victim)
    report = tmp_path / "r.json"
    code = main(
        [
            "run",
            "--profile",
            fast_profile(tmp_path, server),
            "--cluster",
            dask_cluster[0],
            "--users",
            "4",
            "--duration",
            "4s",
            "--spawn-rate",
            "100",
            "--report-json",
            str(report),
            "--quiet",
        ]
    )
    killer.join(5)
    assert code == 1
    data = read_report(report)
    dead = [w for w in data["workers"] if w["status"] == "died"]
    assert len(dead) == 1 and dead[0]["pid"] == victim
    assert "its 2 users stopped, not re-run" in dead[0]["detail"]
    assert [w["status"] for w in data["workers"] if w["pid"] != victim] == ["done"]
    assert "WORKER PROBLEMS" in capsys.readouterr().out
