"""Cluster figures (docs/cluster.md): hosts as network namespaces on this machine, and Dask's queue alone.

    sudo .venv/bin/python bench/cluster_bench.py [--seconds 10] [--json bench/cluster_results.json]

1. throughput and the scheduler's CPU with 1 and 2 worker hosts against the same target (needs root);
2. the cost of one stats message over the Dask queue at 1, 10 and 100 workers' rates (one Batch a second each,
   simulated by one sender task), on the scheduler, at the sender, and at the coordinator (get + unpickle +
   aggregate);
3. the size of one interval's Batch with 50 endpoints.
Every load loop is bounded in time; all traffic stays on 127.0.0.1 or inside the namespaces."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import queue
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cluster"))

import conftest  # noqa: E402  (the namespace hosts of the cluster tests)
import distributed  # noqa: E402
import netns  # noqa: E402

from amanflix_stress.engine.aggregator import Aggregator  # noqa: E402
from amanflix_stress.engine.cluster import ResultSender, ResultStream  # noqa: E402
from amanflix_stress.engine.messages import Batch  # noqa: E402
from amanflix_stress.engine.sample import Sample  # noqa: E402
from amanflix_stress.engine.stats import Stats  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def interval_batch(endpoints: int = 50, per_endpoint: int = 200, users: int = 100, seed: int = 1) -> Batch:
    """One worker's one-second Batch: `endpoints` templates, a few error groups, `users` users."""
    rng = random.Random(seed)
    stats = Stats()
    samples = []
    for e in range(endpoints):
        for _ in range(per_endpoint):
            failed = rng.random() < 0.02
            samples.append(
                Sample(
                    f"GET /api/endpoint{e}/{{id}}",
                    500 if failed else 200,
                    "http_5xx" if failed else "",
                    "Internal Server Error" if failed else "",
                    int(rng.lognormvariate(9.5, 0.6)),
                    time.time(),
                    rng.randrange(users),
                )
            )
    stats.add_samples(samples)
    return Batch(
        0, "run", ((3, stats.to_plain()),), active_users=users, inflight=5, cpu_s=1.0, wall_s=time.time()
    )


def send_at_rate(spec: dict) -> dict:
    """A Dask task: put `rate` pickled Batches a second for `seconds` on the queue (simulated workers)."""
    client = distributed.get_client()
    distributed.secede()
    sender = ResultSender(distributed.Queue(spec["queue"], client=client))
    message = pickle.loads(spec["message"])
    put_s, sent, start = 0.0, 0, time.monotonic()
    for tick in range(int(spec["seconds"] * spec["rate"])):
        due = start + tick / spec["rate"]
        time.sleep(max(0.0, due - time.monotonic()))  # pacing a bounded load loop
        began = time.perf_counter()
        sender.put(message)
        put_s += time.perf_counter() - began
        sent += 1
    sender.queue.close()
    return {
        "sent": sent,
        "put_ms": 1000 * put_s / max(sent, 1),
        "late_s": time.monotonic() - start - spec["seconds"],
    }


def coordinator_end(address: str, rate: int, seconds: float) -> dict:
    """Run in the sched host: submit the sender, read and aggregate everything, measure our CPU."""
    message = interval_batch()
    with distributed.Client(address, set_as_default=False) as client:
        name = f"bench-{rate}-{time.time_ns()}"
        stream = ResultStream(distributed.Queue(name, client=client))
        spec = {"queue": name, "rate": rate, "seconds": seconds, "message": pickle.dumps(message)}
        future = client.submit(send_at_rate, spec, pure=False)
        aggregator = Aggregator(1.0)
        aggregator.begin(time.time())
        got, cpu0, wall0 = 0, time.process_time(), time.monotonic()
        while got < rate * seconds and time.monotonic() - wall0 < seconds * 4 + 10:
            try:
                item = stream.get(timeout=0.05)
            except queue.Empty:
                continue
            aggregator.handle(item)
            got += 1
        cpu = time.process_time() - cpu0
        sender = future.result(timeout=30)
        stream.queue.close()
    return {"rate": rate, "received": got, "coordinator_cpu_ms_per_msg": 1000 * cpu / max(got, 1), **sender}


def run_load(hosts: conftest.Hosts, roles: list[str], seconds: int, folder: Path) -> dict:
    for role in ("gen1", "gen2"):
        if role in hosts.workers and role not in roles:
            proc, _out = hosts.workers.pop(role)
            hosts.topo.stop(proc)
        elif role in roles and role not in hosts.workers:
            hosts.start_worker(role)
    profile = folder / "bench.toml"
    profile.write_text(f"""# bench: one cheap public endpoint, no think time
[target]
base_url = "{hosts.target_url}"
timeout_s = 5
[behaviour]
think_time_s = [0.0, 0.0]
[[requests]]
name = "GET /api/service/status"
path = "/api/service/status"
""")
    report = folder / f"r{len(roles)}.json"
    sched_pid = hosts.scheduler_pid
    cpu0, wall0 = cpu_s(sched_pid), time.monotonic()
    proc, _out, _err = hosts.coordinator(
        "--profile",
        str(profile),
        "--users",
        str(8 * len(roles)),
        "--duration",
        f"{seconds}s",
        "--spawn-rate",
        "100",
        "--fail-on",
        "none",
        "--report-json",
        str(report),
    )
    code = proc.wait(seconds + 120)
    sched_cpu = (cpu_s(sched_pid) - cpu0) / (time.monotonic() - wall0)
    data = json.loads(report.read_text())
    return {
        "hosts": len(roles),
        "exit": code,
        "rps": data["totals"]["throughput_rps"],
        "requests": data["totals"]["requests"],
        "scheduler_cpu_cores": round(sched_cpu, 4),
        "workers": [w["status"] for w in data["workers"]],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--json", default=str(ROOT / "bench" / "cluster_results.json"))
    parser.add_argument("--coordinator-end", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.coordinator_end:  # inside the sched host
        address, rate, seconds = args.coordinator_end
        print(json.dumps(coordinator_end(address, int(rate), float(seconds))))
        return 0
    results: dict = {}
    batch = interval_batch()
    results["batch_50_endpoints"] = {
        "pickled_bytes": len(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)),
        "samples": 50 * 200,
        "users": 100,
    }
    reason = netns.why_not_available()
    if reason:
        print(f"cluster bench: {reason}", file=sys.stderr)
        return 2
    netns.clean_stale()
    topo = netns.Topology()
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"amfx-bench-{os.getpid()}"
    home = scratch / "home"
    home.mkdir(parents=True)
    try:
        topo.build()
        hosts = conftest.Hosts(topo, home, scratch)
        hosts.start_scheduler()
        hosts.start_target()
        results["load"] = [run_load(hosts, r, args.seconds, scratch) for r in (["gen1"], ["gen1", "gen2"])]
        for role in ("gen2",):
            proc, _out = hosts.workers.pop(role)
            topo.stop(proc)
        results["queue"] = []
        sched_pid = hosts.scheduler_pid
        for rate in (1, 10, 100):
            cpu0 = cpu_s(sched_pid)
            done = topo.run(
                "sched",
                [
                    sys.executable,
                    __file__,
                    "--coordinator-end",
                    hosts.scheduler,
                    str(rate),
                    str(args.seconds),
                ],
                timeout=args.seconds * 6 + 60,
            )
            row = (
                json.loads(done.stdout.strip().splitlines()[-1])
                if done.returncode == 0
                else {"error": done.stderr[-500:]}
            )
            row["scheduler_cpu_ms_per_msg"] = (
                1000 * (cpu_s(sched_pid) - cpu0) / max(row.get("received", 1), 1)
            )
            results["queue"].append(row)
    finally:
        topo.destroy()
        shutil.rmtree(scratch, ignore_errors=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
