"""Where a worker's memory goes: 500 Amanflix users (think 2-4 s) on one worker against a fixed-mode sandbox.

Usage: .venv/bin/python bench/memory_soak.py [MINUTES] [--frames N] [--no-trace] [--users N] [--out PATH]
  (default 30 minutes; loopback only; writes bench/memory_soak.json and keeps the snapshots in a temp folder)
  where the growth goes: bench/memory_soak.py 5 --frames 6      the figure: bench/memory_soak.py 30 --no-trace

The real CLI runs as a user runs it. The worker's resident set (and a breakdown of its mappings) is read from
/proc every 10 s; inside the worker, bench/memtrace/sitecustomize.py (put on the worker's PYTHONPATH by this
script, nothing in the engine changes) runs tracemalloc, writes its traced bytes and glibc's mallinfo2 every
10 s and a snapshot every minute. At the end the top growing allocation sites are printed between minute 1,
minute 3 and the end of the measured phase. RSS with tracemalloc on includes tracemalloc's own tables: the
JSON gives that figure too (`tracemalloc_own`), or run with --no-trace for the bare figure.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from run import child_pids, rss_mb  # noqa: E402

from amanflix_stress.sandbox import SandboxConfig, launch_sandbox_process  # noqa: E402

USERS, THINK_S, SPAWN_RATE = 500, (2.0, 4.0), 50  # a 10 s ramp: minute 1 is after it
SAMPLE_S = 10.0  # how often the worker's RSS is read
HASH_ITERATIONS = 1000  # the sandbox's PBKDF2 cost: 500 registrations must not be the bench
MARKS_MIN = (0, 1, 3, 5, 10, 20, 30)  # minutes of the measured phase the RSS curve is reported at
TOP_SITES = 12
PROFILE = """# memory soak: Amanflix journeys, think {low}-{high} s
[target]
base_url = "{url}"
[load]
users = {users}
spawn_rate = {spawn}
[behaviour]
kind = "amanflix"
think_time_s = [{low}, {high}]
"""


def mappings(pid: int) -> dict[str, float]:
    """The worker's RSS by kind of mapping, MB: brk heap, 8 MB anonymous (thread stacks), 64 MB-aligned
    anonymous (glibc arenas), other anonymous (pymalloc arenas, large mallocs), files."""
    kinds: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return kinds
    kind = "file"
    for line in text.splitlines():
        head = line.split()
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            kind = mapping_kind(head)
        elif head[0] == "Rss:":
            kinds[kind] = kinds.get(kind, 0.0) + int(head[1]) / 1024.0
    return {k: round(v, 1) for k, v in sorted(kinds.items())}


def mapping_kind(head: list[str]) -> str:
    start, end = (int(x, 16) for x in head[0].split("-"))
    name = head[5] if len(head) > 5 else ""
    size_kb = (end - start) // 1024
    if name in ("[heap]", "[stack]"):
        return name
    if name:
        return "file"
    if size_kb in (8188, 8192):
        return "anon 8 MB (thread stacks)"
    if start % (64 << 20) == 0:
        return "anon 64 MB-aligned (glibc arenas)"
    return "anon other"


def sample(proc: subprocess.Popen, rows: list, stop: threading.Event) -> None:
    """Every SAMPLE_S: wall time, the worker's and the coordinator's RSS, threads, and the mapping kinds."""
    while proc.poll() is None and not stop.is_set():
        row: dict = {"wall": round(time.time(), 1), "coordinator_mb": rss_mb(proc.pid)}
        for pid in child_pids(proc.pid)[:1]:
            row.update(worker_mb=rss_mb(pid), threads=threads(pid), maps=mappings(pid))
        rows.append(row)
        stop.wait(SAMPLE_S)


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def run_cli(args, url: str, admin: tuple[str, str], folder: str, rows: list) -> dict:
    profile = Path(folder, "memory.toml")
    low, high = THINK_S
    profile.write_text(PROFILE.format(url=url, users=args.users, spawn=SPAWN_RATE, low=low, high=high))
    report = Path(folder, "report.json")
    argv = [
        *(sys.executable, str(ROOT / "bin" / "amanflix-stress"), "run", "--profile", str(profile)),
        *("--workers", "1", "--duration", f"{args.minutes:g}m", "--seed", "1", "--quiet"),
        *("--report-json", str(report), "--fail-on", "none"),
        f"--admin-user={admin[0]}",
        f"--admin-password={admin[1]}",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH / "memtrace"), str(ROOT)])}
    env.update(  # --no-trace: the probe's rows (threads, mallinfo) without tracemalloc
        AMFX_MEMTRACE_DIR=folder,
        AMFX_MEMTRACE_FRAMES="0" if args.no_trace else str(args.frames),
        AMFX_MEMTRACE_LIMIT_S=str(args.minutes * 60 + 900),
    )
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    stop = threading.Event()
    sampler = threading.Thread(target=sample, args=(proc, rows, stop), daemon=True)
    sampler.start()
    try:
        _out, err = proc.communicate(timeout=args.minutes * 60 + 900)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    if not report.exists():
        raise RuntimeError(f"the run failed: {err.decode()[-800:]}")
    return json.loads(report.read_text())


def started_wall(report: dict) -> float:
    stamp = report["meta"]["started_at"]
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def curve(rows: list, start: float, minutes: float) -> list[dict]:
    """The sample nearest each mark (minutes into the measured phase)."""
    marks = [m for m in MARKS_MIN if m <= minutes] + ([minutes] if minutes not in MARKS_MIN else [])
    worker_rows = [r for r in rows if "worker_mb" in r]
    out = []
    for mark in marks:
        row = min(worker_rows, key=lambda r: abs(r["wall"] - (start + mark * 60)))
        out.append({"minute": mark, "at_s": round(row["wall"] - start), **row})
    return out


def probe_rows(folder: str) -> list[dict]:
    rows = []
    for path in glob.glob(os.path.join(folder, "probe-*.jsonl")):
        rows += [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["wall"])


def snapshot_at(folder: str, probes: list[dict], wall: float) -> tuple[float, tracemalloc.Snapshot] | None:
    with_snap = [r for r in probes if "snapshot" in r]
    if not with_snap:
        return None
    row = min(with_snap, key=lambda r: abs(r["wall"] - wall))
    snap = tracemalloc.Snapshot.load(os.path.join(folder, row["snapshot"]))
    ignore = [
        tracemalloc.Filter(False, "*memtrace/sitecustomize.py"),
        tracemalloc.Filter(False, "*tracemalloc.py"),
    ]
    return row["wall"], snap.filter_traces(ignore)


def growth(folder: str, probes: list[dict], start: float, end: float, frames: int) -> list[dict]:
    """Top growing sites between minute 1 and 3, and between minute 3 and the end."""
    walls = {"1 min": start + 60, "3 min": start + 180, "end": end}
    snaps = {name: snapshot_at(folder, probes, wall) for name, wall in walls.items()}
    out = []
    for a, b in (("1 min", "3 min"), ("3 min", "end"), ("1 min", "end")):
        first, last = snaps[a], snaps[b]
        if first is None or last is None or first[0] >= last[0]:
            continue
        key = "traceback" if frames > 1 else "lineno"
        stats = last[1].compare_to(first[1], key)
        total = sum(s.size_diff for s in stats)
        sites = [
            {
                "size_diff_kb": round(s.size_diff / 1024, 1),
                "count_diff": s.count_diff,
                "size_kb": round(s.size / 1024, 1),
                "where": [f"{f.filename}:{f.lineno}" for f in s.traceback][-frames:],
            }
            for s in sorted(stats, key=lambda s: -s.size_diff)[:TOP_SITES]
        ]
        out.append(
            {
                "from": a,
                "to": b,
                "minutes": round((last[0] - first[0]) / 60, 1),
                "traced_diff_kb": round(total / 1024, 1),
                "top": sites,
            }
        )
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("minutes", type=float, nargs="?", default=30.0)
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc frames per allocation")
    parser.add_argument("--no-trace", action="store_true", help="RSS only, no tracemalloc in the worker")
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--out", default=str(BENCH / "memory_soak.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    folder = tempfile.mkdtemp(prefix="amfx-memory-")
    rows: list[dict] = []
    config = SandboxConfig(
        mode="fixed", db_path=os.path.join(folder, "amanflix.db"), hash_iterations=HASH_ITERATIONS
    )
    with launch_sandbox_process(config) as sandbox:
        report = run_cli(args, sandbox.url, (sandbox.admin_username, sandbox.admin_password), folder, rows)
    start = started_wall(report)
    end = start + report["totals"]["duration_s"]
    probes = probe_rows(folder)
    result = {
        "minutes": args.minutes,
        "users": args.users,
        "think_s": THINK_S,
        "traced": not args.no_trace,
        "frames": args.frames,
        "folder": folder,
        "requests": report["totals"]["requests"],
        "rps": report["totals"]["throughput_rps"],
        "error_rate": report["totals"].get("error_rate"),
        "health": report.get("health", {}).get("workers"),
        "rss_curve": curve(rows, start, args.minutes),
        "growth": growth(folder, probes, start, end, args.frames) if probes else [],
        "probe_every_minute": probes[::6],
        "samples": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print_summary(result)
    return 0


def print_summary(result: dict) -> None:
    print(f"{result['requests']} requests, {result['rps']} req/s, folder {result['folder']}")
    for row in result["rss_curve"]:
        worker, coordinator = row["worker_mb"], row["coordinator_mb"]
        print(
            f"min {row['minute']:>4}  worker {worker:6.1f} MB  coordinator {coordinator:6.1f} MB"
            f"  threads {row['threads']}  {row['maps']}"
        )
    for part in result["growth"]:
        span = f"{part['from']} -> {part['to']} ({part['minutes']} min)"
        print(f"\n{span}: traced {part['traced_diff_kb']:+.1f} KB")
        for site in part["top"]:
            where = " <- ".join(reversed(site["where"]))
            print(f"  {site['size_diff_kb']:+9.1f} KB {site['count_diff']:+7d}  {where}")


if __name__ == "__main__":
    sys.exit(main())
