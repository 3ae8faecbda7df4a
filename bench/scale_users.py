"""Many users on one machine: N users thinking 2-4 s against a fast loopback target, through the real CLI.

Prints, per run: requests and req/s, each worker's status (hung yes/no), errors by class, schedule lag p99,
and worker RSS per user (peak resident set of the worker processes / users). With --delay-ms the target is a
server that answers after a fixed delay and times each request itself (from the request's head read to the
answer written): the run's P50/P99 are then printed beside the server's own, and the difference is what the
generator adds. Bounded: each run lasts the given duration plus its ramp; the target and every process it
starts are stopped at the end. Loopback only.

    .venv/bin/python bench/scale_users.py --users 10000 --runs 3           # the issue's acceptance run
    .venv/bin/python bench/scale_users.py --users 2000 --workers 1 --duration 20
    .venv/bin/python bench/scale_users.py --users 1000,2000,5000 --workers 1 --delay-ms 5 --duration 30
    (two processes vs one, and against Locust: bench/scaling.py)

Writes bench/scale_users.json with every run's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]

from helpers import worker_pids  # noqa: E402
from targets import start_delay_target, start_fast_target  # noqa: E402

SCRIPT = ROOT / "bin" / "amanflix-stress"
SAMPLE_S = 0.5  # how often the worker processes' RSS is read
RUN_GRACE_S = 120.0  # a run that has not ended this long after its duration and ramp is killed


def profile_text(url: str, think: tuple[float, float], timeout_s: float) -> str:
    return f"""# bench: one cheap request, users thinking between requests
[target]
base_url = "{url}"
timeout_s = {timeout_s}
[behaviour]
think_time_s = [{think[0]}, {think[1]}]
[[requests]]
name = "GET /"
path = "/"
"""


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssWatch:
    """Peak of the summed RSS of a CLI's worker processes, read every SAMPLE_S until stopped."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.peak_kib, self.done = proc, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            pids = worker_pids(self.proc.pid)
            if pids:
                self.peak_kib = max(self.peak_kib, sum(rss_kib(p) for p in pids))

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak_kib


def run_once(url: str, folder: str, args, users: int, workers: int, tag: str) -> dict:
    """One CLI run; its report's figures plus the workers' peak RSS."""
    profile = Path(folder, f"{tag}.toml")
    profile.write_text(profile_text(url, (args.think_low, args.think_high), args.timeout))
    report = Path(folder, f"{tag}.json")
    argv = [sys.executable, str(SCRIPT), "run", "--profile", str(profile), "--users", str(users)]
    argv += ["--workers", str(workers), "--duration", f"{args.duration:g}s", "--spawn-rate"]
    argv += [str(args.spawn_rate), "--report-json", str(report), "--quiet"]
    env = {**os.environ, "PYTHONPATH": args.source or str(ROOT)}
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watch = RssWatch(proc)
    try:
        _out, err = proc.communicate(timeout=args.duration + users / args.spawn_rate + RUN_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    peak_kib = watch.stop()
    return summarise(report, proc.returncode, peak_kib, users, workers, time.monotonic() - started, err)


def summarise(report: Path, code: int, peak_kib: int, users: int, workers: int, wall_s: float, err: str):
    row: dict = {"users": users, "workers": workers, "exit": code, "wall_s": round(wall_s, 1)}
    row["worker_rss_mib"] = round(peak_kib / 1024, 1)
    row["rss_per_user_kib"] = round(peak_kib / users, 1)
    if not report.exists():
        row["error"] = err.strip().splitlines()[-1:] or ["no report"]
        return row
    data = json.loads(report.read_text())
    row["requests"] = data["totals"]["requests"]
    row["rps"] = data["totals"]["throughput_rps"]
    row["error_classes"] = data["error_classes"]
    row["workers_status"] = [
        f"{w['status']}{': ' + w['detail'] if w['detail'] else ''}" for w in data["workers"]
    ]
    row["hung"] = any(w["status"] in ("hung", "died") for w in data["workers"])
    lags = [w["lag_p99_ms"] for w in data["health"]["workers"] if w["lag_p99_ms"] is not None]
    row["lag_p99_ms"] = max(lags, default=None)
    row["cpu_cores"] = [w["cpu_cores"] for w in data["health"]["workers"]]
    row["verdict"] = data["verdict"]["summary"]
    return row


def latency_gap(row: dict, report: Path, timings: Path) -> None:
    """Our P50/P99 over the run beside the delay server's own timing of the same requests."""
    if not (report.exists() and timings.exists()):
        return
    server_us = sorted(json.loads(timings.read_text()))
    (endpoint,) = json.loads(report.read_text())["endpoints"]
    server = {f"p{p}_ms": nearest_rank(server_us, p) / 1000 for p in (50, 99)}
    row["server_requests"] = len(server_us)
    row["ours_p50_p99_ms"] = [endpoint["p50_ms"], endpoint["p99_ms"]]
    row["server_p50_p99_ms"] = [server["p50_ms"], server["p99_ms"]]
    row["gap_p50_p99_ms"] = [
        round(endpoint["p50_ms"] - server["p50_ms"], 2),
        round(endpoint["p99_ms"] - server["p99_ms"], 2),
    ]


def nearest_rank(sorted_values: list[int], p: float) -> float:
    return float(sorted_values[max(0, -(-len(sorted_values) * p // 100) - 1)])


def one_target_run(folder: str, args, users: int, tag: str) -> dict:
    """A run against a target of its own: the delay server's timings are those of this run alone."""
    cores = set(range(os.cpu_count() or 1))  # the target shares the cores
    timings = Path(folder, f"{tag}-server.json")
    if args.delay_ms:
        target = start_delay_target(cores, args.delay_ms, str(timings))
    else:
        target = start_fast_target(cores)
    try:
        row = {"target": target.name, **run_once(target.url, folder, args, users, args.workers, tag)}
    finally:
        target.stop()
    if args.delay_ms:
        latency_gap(row, Path(folder, f"{tag}.json"), timings)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="10000", help="users, or several comma-separated (one run each)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=60.0, help="measured phase, seconds")
    parser.add_argument("--spawn-rate", type=float, default=1000.0)
    parser.add_argument("--think-low", type=float, default=2.0)
    parser.add_argument("--think-high", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="a target answering after this delay")
    parser.add_argument("--source", help="PYTHONPATH of another checkout to measure instead of this one")
    parser.add_argument("--json", default=str(ROOT / "bench" / "scale_users.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="amfx-scale-") as folder:
        for n in range(args.runs):
            for users in [int(u) for u in args.users.split(",")]:
                rows.append(one_target_run(folder, args, users, f"run{n}-{users}"))
                print(json.dumps(rows[-1]), flush=True)
    Path(args.json).write_text(json.dumps({"args": vars(args), "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
