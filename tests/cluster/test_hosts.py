"""--cluster across hosts: four network namespaces (see conftest.py), real Dask, the sandbox as the target."""

from __future__ import annotations

import json
import os
import pickle
import signal
import time
from pathlib import Path

import netns
import numpy as np
import pytest

from amanflix_stress.engine import cluster, histogram
from amanflix_stress.engine.messages import Batch, Crash
from amanflix_stress.engine.stats import Stats

pytestmark = pytest.mark.slow
RUN_TIMEOUT_S = 60
PATH = "/api/service/status"
SILENCE_S = 4.0  # the silence limit, shrunk for the test (WORKER_SILENCE_S)
LIVENESS_S = 1.0  # cluster.LIVENESS_EVERY_S: how often the coordinator looks


def http_profile(folder: Path, url: str) -> Path:
    """A profile only the coordinator's disk has: the workers must get it in their task."""
    profile = folder / "coordinator-only.toml"
    profile.write_text(f"""# test profile: one public endpoint as fast as it answers
[target]
base_url = "{url}"
timeout_s = 5
[behaviour]
think_time_s = [0.0, 0.01]
[[requests]]
name = "GET {PATH}"
path = "{PATH}"
""")
    return profile


def finish(proc, timeout_s: float = RUN_TIMEOUT_S) -> int:
    try:
        return proc.wait(timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()  # no run left behind when the assertion fails
            proc.wait(5)


def wait_until(check, timeout_s: float, what: str) -> None:
    """Poll a condition held by another host (no event reaches this process from a namespace)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def merged_locally(messages) -> dict[str, Stats]:
    phases = {"setup": Stats(), "run": Stats(), "teardown": Stats()}
    for message in messages:
        if isinstance(message, Batch):
            for _index, plain in message.intervals:
                phases[message.phase].merge(Stats.from_plain(plain))
    return phases


@pytest.fixture(scope="module")
def http_run(hosts, tmp_path_factory):
    """One plain run over both worker hosts, its report and everything the coordinator received."""
    folder = tmp_path_factory.mktemp("http-run")
    tap, report = folder / "tap.pickle", folder / "r.json"
    before = hosts.ask("counts").get(f"GET {PATH}", 0)
    proc, _out, err = hosts.coordinator(
        "--profile",
        str(http_profile(folder, hosts.target_url)),
        "--users",
        "4",
        "--duration",
        "3s",
        "--spawn-rate",
        "100",
        "--seed",
        "424242",
        "--report-json",
        str(report),
        tap=tap,
    )
    code = finish(proc)
    served = hosts.ask("counts").get(f"GET {PATH}", 0) - before
    return {
        "code": code,
        "err": err,
        "report": json.loads(report.read_text()),
        "served": served,
        "tap": pickle.loads(tap.read_bytes()),
        "profile": str(folder / "coordinator-only.toml"),
    }


def test_the_run_counts_exactly_what_the_target_served(hosts, http_run):
    assert http_run["code"] == 0, http_run["err"].text()
    data = http_run["report"]
    workers = data["workers"]
    assert [w["status"] for w in workers] == ["done", "done"]
    on = {role: set(netns.ns_pids(hosts.topo.ns(role))) for role in ("gen1", "gen2")}
    assert sorted(role for w in workers for role, pids in on.items() if w["pid"] in pids) == ["gen1", "gen2"]
    (row,) = [r for r in data["endpoints"] if r["name"] == f"GET {PATH}"]
    phases = http_run["tap"]["phases"]
    sent = sum(Stats.from_plain(p).requests for p in phases.values())
    assert row["requests"] == data["totals"]["requests"] == phases_requests(phases, "run") > 100
    assert sent == http_run["served"]  # every request the workers sent, in any phase, and nothing else


def phases_requests(phases, name) -> int:
    return Stats.from_plain(phases[name]).requests


def test_merged_histograms_equal_the_parts_merged_locally_slot_by_slot(http_run):
    tap = http_run["tap"]
    local = merged_locally(tap["messages"])
    senders = {m.worker_id for m in tap["messages"] if isinstance(m, Batch) and m.phase == "run"}
    assert senders == {0, 1}
    for name, plain in tap["phases"].items():
        remote = Stats.from_plain(plain)
        assert sorted(remote.series) == sorted(local[name].series)
        for key, series in remote.series.items():
            np.testing.assert_array_equal(series.hist, local[name].series[key].hist)
            assert (series.count, series.sum_us, series.min_us, series.max_us) == (
                local[name].series[key].count,
                local[name].series[key].sum_us,
                local[name].series[key].min_us,
                local[name].series[key].max_us,
            )
    run = Stats.from_plain(tap["phases"]["run"])
    (row,) = http_run["report"]["endpoints"]
    (series, _failures) = run.endpoint_series()[f"GET {PATH}"]
    p50 = histogram.percentiles_us(series.hist, [50], series.min_us, series.max_us)[0]
    assert row["p50_ms"] == round(p50 / 1000.0, 3)  # the report is built from that merge


def test_the_task_carries_the_profile_and_seed_but_no_admin_credentials(hosts, http_run):
    tasks = http_run["tap"]["tasks"]
    assert len(tasks) == 2
    for task in tasks:
        _func, (share, _spec), _kwargs = pickle.loads(task)
        assert share.settings["requests"][0]["path"] == PATH and share.seed == 424242
        assert hosts.admin_password.encode() not in task
        assert b"AMANFLIX_ADMIN" not in task and http_run["profile"].encode() not in task
        assert str(Path.cwd()).encode() not in task


def test_hold_lock_on_a_database_that_is_not_local_to_the_coordinator_is_refused(hosts, tmp_path):
    before = hosts.ask("counts")
    db = str(hosts.scratch / "target-amanflix.db")  # the target's file: readable here, not this host's server
    proc, _out, err = hosts.coordinator(
        "--base-url",
        hosts.target_url,
        "--amanflix",
        "--users",
        "2",
        "--duration",
        "2s",
        "--hold-lock",
        db,
        "--report-json",
        str(tmp_path / "r.json"),
    )
    assert finish(proc) == 2
    err.wait_for("<EOF>", 10)
    lines = [line for line in err.text().splitlines() if line != "<EOF>"]
    assert len(lines) == 1 and "--hold-lock" in lines[0] and hosts.topo.addr("target") in lines[0], lines
    assert hosts.ask("counts") == before  # refused before a single request


def test_hold_lock_works_when_the_target_runs_on_the_coordinators_host(hosts, tmp_path):
    local = hosts.start_target(role="sched", port=5002)
    try:
        report = tmp_path / "r.json"
        proc, _out, err = hosts.coordinator(
            "--base-url",
            local["url"],
            "--amanflix",
            "--focus-watch-history",
            "--users",
            "4",
            "--duration",
            "4s",
            "--spawn-rate",
            "100",
            "--hold-lock",
            local["db"],
            "--hold-lock-schedule",
            "1500ms/3s",
            "--fail-on",
            "none",
            "--report-json",
            str(report),
        )
        assert finish(proc) == 0, err.text()
        data = json.loads(report.read_text())
        windows = data["hold_lock"]["windows"]
        assert windows and all(w["end_s"] and not w.get("error") for w in windows)
        assert data["amanflix"]["cleanup"]["left_behind"] == 0
    finally:
        hosts.topo.stop(local["proc"])


def test_sigterm_to_the_coordinator_ends_the_remote_users_within_seconds(hosts, tmp_path):
    report = tmp_path / "r.json"
    before = hosts.ask("counts").get(f"GET {PATH}", 0)
    proc, _out, err = hosts.coordinator(
        "--profile",
        str(http_profile(tmp_path, hosts.target_url)),
        "--users",
        "4",
        "--duration",
        "60s",
        "--report-json",
        str(report),
    )
    try:
        wait_until(lambda: hosts.ask("counts").get(f"GET {PATH}", 0) > before + 20, 30, "load")
        proc.send_signal(signal.SIGTERM)
        sent_at = time.monotonic()
        code = finish(proc, 20)
    finally:
        finish(proc, 1) if proc.poll() is None else None
    assert code == 130, err.text()
    assert time.monotonic() - sent_at < 15
    data = json.loads(report.read_text())
    assert data["meta"]["stop_reason"] == "terminated"
    assert [w["status"] for w in data["workers"]] == ["done", "done"]
    served = hosts.ask("counts").get(f"GET {PATH}", 0) - before
    total = data["setup"]["totals"]["requests"] if "totals" in data.get("setup", {}) else 0
    assert data["totals"]["requests"] + total <= served
    time.sleep(1.0)  # a measurement window, not a wait: a user still running would send in it
    assert hosts.ask("counts").get(f"GET {PATH}", 0) - before == served


def test_a_coordinator_killed_with_sigkill_leaves_no_remote_user_running(hosts, tmp_path):
    """No signal handler runs for -9: the workers notice the coordinator's beat went silent and stop."""
    before = hosts.ask("counts").get(f"GET {PATH}", 0)
    proc, _out, _err = hosts.coordinator(
        "--profile", str(http_profile(tmp_path, hosts.target_url)), "--users", "4", "--duration", "90s"
    )
    try:
        wait_until(lambda: hosts.ask("counts").get(f"GET {PATH}", 0) > before + 20, 30, "load")
        proc.kill()
        proc.wait(5)
    finally:
        finish(proc, 1) if proc.poll() is None else None
    # within the silence limit plus a margin (far below the 90 s run), the target stops getting requests
    deadline_s = cluster.COORDINATOR_SILENCE_S + 15
    wait_until(lambda: served_stays_put(hosts, window_s=1.5), deadline_s, "the remote users to stop")


def served_stays_put(hosts, window_s: float) -> bool:
    first = hosts.ask("counts").get(f"GET {PATH}", 0)
    time.sleep(window_s)  # a measurement window, not a wait: a user still running would send in it
    return hosts.ask("counts").get(f"GET {PATH}", 0) == first


def lost_host_run(hosts, tmp_path, cut):
    """An Amanflix run over both hosts; `cut()` takes gen2 away once the load runs. Returns what it saw."""
    report, tap = tmp_path / "r.json", tmp_path / "tap.pickle"
    sets = {
        "engine.cluster.WORKER_SILENCE_S": SILENCE_S,
        "engine.cluster.REAP_WAIT_S": 1,
        "engine.cluster.RESTART_TIMEOUT_S": 2,
    }
    proc, _out, err = hosts.coordinator(
        "--base-url",
        hosts.target_url,
        "--amanflix",
        "--users",
        "4",
        "--duration",
        "8s",
        "--spawn-rate",
        "100",
        "--fail-on",
        "none",
        "--report-json",
        str(report),
        tap=tap,
        sets=sets,
    )
    writes = "POST /api/watch-history/update"
    before = hosts.ask("counts").get(writes, 0)
    try:
        wait_until(lambda: hosts.ask("counts").get(writes, 0) > before + 4, 30, "load")
        cut_at = time.monotonic()
        cut()
        said = err.wait_for(r"worker 1 .*lost", SILENCE_S + 10)
        code = finish(proc)
    finally:
        finish(proc, 1) if proc.poll() is None else None
    assert said is not None, err.text()
    data = json.loads(report.read_text())
    return code, said[0] - cut_at, said[1], data, pickle.loads(tap.read_bytes())


def check_lost(hosts, code, data, tap, status):
    gen2 = hosts.topo.addr("gen2")
    assert code == 1
    (lost,) = [w for w in data["workers"] if w["id"] == 1]
    assert lost["status"] == status and gen2 in lost["detail"] and "not re-run" in lost["detail"], lost
    assert [w["status"] for w in data["workers"] if w["id"] != 1] == ["done"]
    assert not [m for m in tap["messages"] if isinstance(m, Crash)]  # no second start of its share
    cleanup = data["amanflix"]["cleanup"]
    assert cleanup["created"] == cleanup["deleted"] >= 5 and cleanup["left_behind"] == 0  # 4 users + catalog
    assert hosts.ask("truth")["users_in_db"] == 0
    for task in tap["tasks"]:
        _func, (share, _spec), _kw = pickle.loads(task)
        assert share.shared and hosts.admin_password.encode() not in task  # the catalog travels, admin not


def test_a_killed_worker_host_is_reported_by_name_and_its_accounts_removed(hosts, tmp_path):
    _proc, out = hosts.workers["gen2"]
    seen = len(out.lines)
    victim = hosts.worker_process("gen2")
    code, delay_s, line, data, tap = lost_host_run(hosts, tmp_path, lambda: os.kill(victim, signal.SIGKILL))
    assert delay_s < LIVENESS_S + 2.0, line
    check_lost(hosts, code, data, tap, "died")
    assert out.wait_for(
        r"Registered to:", 30, after=seen
    )  # its nanny started a fresh worker for the next test


def test_a_host_whose_link_goes_down_is_reported_within_the_silence_limit(hosts, tmp_path):
    try:
        code, delay_s, line, data, tap = lost_host_run(
            hosts, tmp_path, lambda: hosts.topo.link("gen2", "down")
        )
    finally:
        hosts.topo.link("gen2", "up")
    assert SILENCE_S - 1.5 < delay_s < SILENCE_S + LIVENESS_S + 1.5, line
    check_lost(hosts, code, data, tap, "hung")
    (lost,) = [w for w in data["workers"] if w["id"] == 1]
    # a host off the network cannot be restarted: the run does not wait for a restart that cannot happen
    assert "was not restarted: the scheduler has not heard from it" in lost["detail"], lost
