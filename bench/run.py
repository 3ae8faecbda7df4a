"""The generator benchmark: our req/s per core against Locust, latency accuracy, aggregation cost, RSS, scale.

One command (`make bench`); prints a table and writes bench/results.json. Not part of `make test`.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH), str(ROOT / "tests")]

from helpers import worker_pids  # noqa: E402
from targets import pin, start_delay_target, start_fast_target  # noqa: E402

GENERATOR_CORE, TARGET_CORE = 0, 1  # on a 1-core machine both are core 0 and the figures mean less
RUNS = 3  # median of this many runs per generator
THROUGHPUT_USERS = 8  # threads (ours) or greenlets (Locust) on the generator's one core
THROUGHPUT_S = 8.0
LATENCY_USERS, LATENCY_S, DELAY_MS = 20, 30.0, 50.0
SCALE_USERS, SCALE_S, SCALE_THINK_S = 2000, 20.0, (2.0, 4.0)
TARGETS = {"vs_fast_http_user": 1.3, "vs_http_user": 4.0, "p50_ms": 1.0, "p99_ms": 3.0, "cpu_cores": 0.8}


def cores() -> tuple[set[int], set[int]]:
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    return {available[GENERATOR_CORE % len(available)]}, {available[TARGET_CORE % len(available)]}


def pinned(core_set: set[int]):
    return lambda: pin(0, core_set)


def write_profile(folder: str, url: str, think_s=(0.0, 0.0)) -> str:
    path = Path(folder, "bench.toml")
    path.write_text(
        f'# benchmark: GET / in a loop\n[target]\nbase_url = "{url}"\ntimeout_s = 10\n'
        f"[behaviour]\nthink_time_s = [{think_s[0]}, {think_s[1]}]\n"
        '[[requests]]\nname = "GET /"\npath = "/"\n'
    )
    return str(path)


def run_ours(
    folder: str,
    url: str,
    core_set: set[int],
    *flags: str,
    think_s=(0.0, 0.0),
    rss: list | None = None,
    timeout_s: float = 600,
):
    """The real CLI in a subprocess, pinned; returns its JSON report (and samples worker RSS if asked)."""
    report = Path(folder, f"ours-{time.monotonic_ns()}.json")
    argv = [
        sys.executable,
        str(ROOT / "bin" / "amanflix-stress"),
        "run",
        "--profile",
        write_profile(folder, url, think_s),
        "--report-json",
        str(report),
        "--quiet",
        *flags,
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=pinned(core_set),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    sampler = threading.Thread(target=sample_rss, args=(proc, rss), daemon=True) if rss is not None else None
    if sampler:
        sampler.start()
    _out, err = proc.communicate(timeout=timeout_s)
    if sampler:
        sampler.join(5)
    if not report.exists():
        raise RuntimeError(f"our run failed: {err.decode()[-500:]}")
    return json.loads(report.read_text())


def sample_rss(proc: subprocess.Popen, out: list) -> None:
    """Every second: (s since start, MB) of the first worker process's resident set."""
    started = time.monotonic()
    while proc.poll() is None:
        for pid in worker_pids(proc.pid):
            out.append((round(time.monotonic() - started, 1), rss_mb(pid)))
            break
        time.sleep(1.0)  # a sampling period, not a wait for an event


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return float("nan")


def run_locust(folder: str, url: str, core_set: set[int], user_class: str) -> dict:
    locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or shutil.which("locust")
    prefix = Path(folder, f"locust-{user_class}-{time.monotonic_ns()}")
    argv = [
        locust,
        "-f",
        str(BENCH / "locustfile.py"),
        "--headless",
        "-u",
        str(THROUGHPUT_USERS),
        "-r",
        "1000",
        "-t",
        f"{int(THROUGHPUT_S)}s",
        "--host",
        url,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "ERROR",
    ]
    env = {**os.environ, "AMFX_BENCH_LOCUST_CLASS": user_class}
    subprocess.run(argv, env=env, capture_output=True, timeout=120, preexec_fn=pinned(core_set))
    with open(f"{prefix}_stats.csv") as stats:
        rows = list(csv.DictReader(stats))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    return {
        "rps": float(total["Requests/s"]),
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
    }


def throughput(folder: str, gen: set[int], tgt: set[int]) -> dict:
    """Each generator against the same fast target, runs interleaved so a noisy neighbour hits all alike."""
    target = start_fast_target(tgt)
    generators = {
        "ours": lambda: run_ours(
            folder,
            target.url,
            gen,
            "--users",
            str(THROUGHPUT_USERS),
            "--workers",
            "1",
            "--duration",
            f"{THROUGHPUT_S}s",
            "--spawn-rate",
            "1000",
        )
    }
    if locust_installed():
        generators.update(
            {
                name: (lambda name=name: run_locust(folder, target.url, gen, name))
                for name in ("FastHttpUser", "HttpUser")
            }
        )
    runs: dict[str, list] = {name: [] for name in generators}
    try:
        for _ in range(RUNS):
            for name, run in generators.items():
                runs[name].append(run())
    finally:
        target.stop()
    results = {"target": target.name, "users": THROUGHPUT_USERS, "seconds": THROUGHPUT_S, "runs": RUNS}
    ours = runs.pop("ours")
    results["ours"] = {
        "rps": [r["totals"]["throughput_rps"] for r in ours],
        "cpu_cores": [r["health"]["workers"][0]["cpu_cores"] for r in ours],
        "failures": sum(r["totals"]["failures"] for r in ours),
    }
    for name, reports in runs.items():
        results[name] = {"rps": [r["rps"] for r in reports], "failures": sum(r["failures"] for r in reports)}
    return results


def locust_installed() -> bool:
    try:
        import locust  # noqa: F401
    except ImportError:
        return False
    return True


def latency(folder: str, gen: set[int], tgt: set[int]) -> dict:
    """20 users against the 50 ms server: our P50/P99 against the server's own timing of the same requests."""
    timings = Path(folder, "server-timings.json")
    target = start_delay_target(tgt, DELAY_MS, str(timings))
    rss: list = []
    try:
        # as a user runs it: the coordinator free to float, the worker pinning itself to the first core (gen)
        report = run_ours(
            folder,
            target.url,
            set(os.sched_getaffinity(0)),
            "--users",
            str(LATENCY_USERS),
            "--workers",
            "1",
            "--duration",
            f"{LATENCY_S}s",
            "--spawn-rate",
            "1000",
            rss=rss,
        )
    finally:
        target.stop()
    server_us = sorted(json.loads(timings.read_text()))
    (row,) = report["endpoints"]
    server = {"p50_ms": nearest_rank(server_us, 50) / 1000, "p99_ms": nearest_rank(server_us, 99) / 1000}
    warm = [mb for s, mb in rss if s >= 5.0]
    return {
        "users": LATENCY_USERS,
        "seconds": LATENCY_S,
        "requests": report["totals"]["requests"],
        "server_requests": len(server_us),
        "ours": {"p50_ms": row["p50_ms"], "p99_ms": row["p99_ms"]},
        "server": server,
        "diff_p50_ms": round(row["p50_ms"] - server["p50_ms"], 3),
        "diff_p99_ms": round(row["p99_ms"] - server["p99_ms"], 3),
        "rss_mb": rss,
        "rss_growth_after_warmup_mb": round(warm[-1] - warm[0], 1) if len(warm) > 1 else None,
        "health": report["health"]["workers"][0],
    }


def nearest_rank(sorted_values: list[int], p: float) -> float:
    return float(sorted_values[max(0, -(-len(sorted_values) * p // 100) - 1)])


def aggregation_cost() -> dict:
    """Worker-side cost per sample: grouping a batch into Stats, shipping it as plain data, then merging."""
    from amanflix_stress.engine.sample import Sample
    from amanflix_stress.engine.stats import Stats

    rng = random.Random(1)
    names = [f"GET /api/endpoint/{i}" for i in range(8)]
    samples = [
        Sample(
            rng.choice(names),
            200,
            "" if rng.random() > 0.02 else "http_5xx",
            "",
            rng.randint(500, 90_000),
            time.time(),
            rng.randint(0, 99),
            0,
            0,
        )
        for _ in range(100_000)
    ]
    samples = [s._replace(message="boom 42") if s.error else s for s in samples]
    total = Stats()
    started = time.perf_counter()
    for i in range(0, len(samples), 1000):  # a worker's one-second batch at 1,000 req/s
        stats = Stats()
        stats.add_samples(samples[i : i + 1000])
        total.merge(Stats.from_plain(stats.to_plain()))
    elapsed = time.perf_counter() - started
    return {"samples": len(samples), "batch": 1000, "us_per_sample": round(elapsed / len(samples) * 1e6, 3)}


def scale(folder: str, gen: set[int], tgt: set[int]) -> dict:
    """2,000 users thinking 2-4 s between requests, on two workers: is any worker past 80% of a core?"""
    target = start_fast_target(tgt)
    try:
        report = run_ours(
            folder,
            target.url,
            set(os.sched_getaffinity(0)),
            "--users",
            str(SCALE_USERS),
            "--workers",
            "2",
            "--duration",
            f"{SCALE_S}s",
            "--spawn-rate",
            "1000",
            think_s=SCALE_THINK_S,
        )
    finally:
        target.stop()
    workers = report["health"]["workers"]
    return {
        "users": SCALE_USERS,
        "seconds": SCALE_S,
        "think_s": list(SCALE_THINK_S),
        "rps": report["totals"]["throughput_rps"],
        "failures": report["totals"]["failures"],
        "cpu_cores": [w["cpu_cores"] for w in workers],
        "lag_p99_ms": [w["lag_p99_ms"] for w in workers],
        "degraded": report["health"]["degraded"],
    }


def summarise(results: dict) -> list[list]:
    """The results table: what, ours, reference, ratio or difference, target, met."""
    t, lat, sc = results["throughput"], results["latency"], results["scale"]
    ours = statistics.median(t["ours"]["rps"])
    cpu = statistics.median(c or 0 for c in t["ours"]["cpu_cores"])
    rows = [
        [
            f"req/s, generator pinned to one core (ours: 1 worker, 8 threads, {cpu:.2f} cores used)",
            f"{ours:,.0f}",
            "",
            "",
            "",
            "",
        ]
    ]
    for name, key in (("FastHttpUser", "vs_fast_http_user"), ("HttpUser", "vs_http_user")):
        if name in t:
            theirs = statistics.median(t[name]["rps"])
            ratio = ours / theirs if theirs else float("inf")
            rows.append(
                [
                    f"req/s per core vs Locust {name}",
                    f"{ours:,.0f}",
                    f"{theirs:,.0f}",
                    f"{ratio:.2f}x",
                    f">= {TARGETS[key]}x",
                    yes(ratio >= TARGETS[key]),
                ]
            )
    for p in ("p50_ms", "p99_ms"):
        diff = lat[f"diff_{p}"]
        rows.append(
            [
                f"latency {p[:3].upper()} vs server's own, 20 users, 50 ms",
                f"{lat['ours'][p]:.3f}",
                f"{lat['server'][p]:.3f}",
                f"{diff:+.3f} ms",
                f"within {TARGETS[p]} ms",
                yes(abs(diff) <= TARGETS[p]),
            ]
        )
    rows.append(
        [
            "aggregation cost per sample (batch 1,000)",
            f"{results['aggregation']['us_per_sample']} us",
            "",
            "",
            "",
            "",
        ]
    )
    growth = lat["rss_growth_after_warmup_mb"]
    rows.append(
        [
            f"worker RSS growth after 5 s warm-up "
            f"({LATENCY_S:.0f} s, ~{lat['requests'] / LATENCY_S:.0f} req/s)",
            f"{growth} MB",
            "",
            "",
            "< 5 MB",
            yes(growth is not None and growth < 5),
        ]
    )
    peak = max(c or 0 for c in sc["cpu_cores"])
    rows.append(
        [
            f"{sc['users']:,} users, think {sc['think_s'][0]:.0f}-{sc['think_s'][1]:.0f} s, 2 workers: "
            f"max worker CPU ({sc['rps']:,.0f} req/s)",
            f"{peak:.2f} cores",
            "",
            "",
            "< 0.80",
            yes(peak < 0.8),
        ]
    )
    return rows


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def main() -> int:
    gen, tgt = cores()
    folder = tempfile.mkdtemp(prefix="amfx-bench-")
    results = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "generator_cores": sorted(gen),
            "target_cores": sorted(tgt),
            "platform": platform.platform(),
        }
    }
    try:
        results["aggregation"] = aggregation_cost()
        results["throughput"] = throughput(folder, gen, tgt)
        results["latency"] = latency(folder, gen, tgt)
        results["scale"] = scale(folder, gen, tgt)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results["table"] = summarise(results)
    (BENCH / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    from tabulate import tabulate

    print(
        tabulate(
            results["table"],
            ["measure", "ours", "reference", "ratio / diff", "target", "met"],
            tablefmt="github",
            disable_numparse=True,
        )
    )
    print(
        f"\nraw runs: ours {results['throughput']['ours']['rps']}, "
        + ", ".join(
            f"{k} {results['throughput'][k]['rps']}"
            for k in ("FastHttpUser", "HttpUser")
            if k in results["throughput"]
        )
        + f"\nwritten: {BENCH / 'results.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
