"""Two processes vs one, ours and Locust's, in one run: req/s, the 2-vs-1 ratio, req/s per core used.

Four configurations, each in two modes, in interleaved rounds against the same loopback nginx
(worker_processes 2, keep-alive, a tiny static body, 127.0.0.1 only, started and stopped here):

    ours 1 worker, ours 2 workers, Locust FastHttpUser 1 process, Locust FastHttpUser --processes 2

    shared  no cap: generator, nginx and everything else share the machine's cores. On 2 cores the target
            takes a share that grows with the generator's speed, so the 2-vs-1 ratio is capped by the machine,
            and more so the cheaper the generator is per request (the ceiling is printed).
    budget  each generator process gets --budget cores (a cgroup CFS quota on the generator's whole process
            tree: 1 x budget for one process, 2 x budget for two, coordinator or master included), and nginx
            keeps the rest of the machine, so the ratio measures the tool, not the machine.

Same users (16), same duration (8 s), no think time. Each configuration's req/s is measured from the outside,
the same way for every tool: nginx's own request counter (stub_status) over the steady window of the run (from
1.5 s after the first request to 0.5 s before the last), sampled every SAMPLE_S with the CPU seconds of the
generator's whole process tree (ours: coordinator + workers; Locust: its process, or master + 2 workers) and
of nginx (master + workers), read from /proc. The tools' own req/s figures are kept beside them in the JSON.

    .venv/bin/python bench/scaling.py                     # 3 rounds x 8 runs x 8 s, about 5 minutes
    .venv/bin/python bench/scaling.py --modes shared      # no cgroup needed
    .venv/bin/python bench/scaling.py --rounds 5 --duration 10 --budget 0.4

Writes bench/scaling.json (every round's figures and samples' summary). Bounded: each run has a timeout, the
number of rounds is fixed, nginx is stopped by its PID at the end and the cgroup removed. Loopback only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH)]

from targets import Target, nginx_binary, nginx_requests, start_nginx  # noqa: E402

SAMPLE_S = 0.25  # how often nginx's counter and the processes' CPU are read
LEAD_S, TAIL_S = 1.5, 0.5  # trimmed from the start (start-up, ramp) and the end (stop) of each run's traffic
RUN_GRACE_S = 60.0  # a run not ended this long after its duration is killed
CLK_TCK = os.sysconf("SC_CLK_TCK")
TOOLS = ("ours", "locust")
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
CFS_PERIOD_US = 20_000  # short: a throttled run pauses ~10 ms at a time (at 100 ms, ratios varied 1.9-2.5)


class Config(NamedTuple):
    """One measured configuration: a tool, its number of generator processes, and how its CPU is shared."""

    tool: str
    processes: int
    mode: str  # "shared" or "budget" (see the module's docstring)

    @property
    def name(self) -> str:
        return f"{self.tool}-{self.processes}-{self.mode}"


class CpuBudget:
    """A cgroup (v1 `cpu` controller) whose CFS quota caps the CPU of every process started in it."""

    def __init__(self) -> None:
        if not (CGROUP_V1_CPU / "cpu.cfs_quota_us").exists() or os.geteuid() != 0:
            raise SystemExit(
                "the budget mode needs root and the cgroup v1 cpu controller at /sys/fs/cgroup/cpu; "
                "run with --modes shared here"
            )
        self.path = CGROUP_V1_CPU / f"amfx-scaling-{os.getpid()}"
        self.path.mkdir()

    def cap(self, cores: float) -> None:
        """Cap at `cores` for the processes started from now on."""
        (self.path / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (self.path / "cpu.cfs_quota_us").write_text(str(round(cores * CFS_PERIOD_US)))

    def enter(self) -> None:
        """Run in the child between fork and exec: the generator and all it starts are in the cgroup."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def throttled_periods(self) -> int:
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return int(stat["nr_throttled"])

    def remove(self) -> None:
        for pid in (self.path / "cgroup.procs").read_text().split():  # none, unless a run outlived its kill
            (CGROUP_V1_CPU / "cgroup.procs").write_text(pid)
        self.path.rmdir()


def proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds user + system) for every process we can read."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return table


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores, every process: other sessions' too)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def tree_cpu_s(table: dict[int, tuple[int, float]], root: int) -> tuple[float, int]:
    """CPU seconds of `root` and all its live descendants, and how many processes that is."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, count, todo = 0.0, 0, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            total += table[pid][1]
            count += 1
            todo.extend(children.get(pid, []))
    return total, count


class Sampler:
    """Every SAMPLE_S: (time, nginx requests, generator tree CPU s, nginx tree CPU s, generator processes,
    machine busy CPU s)."""

    def __init__(self, nginx: Target, generator_pid: int, limit_s: float) -> None:
        self.nginx, self.pid, self.done = nginx, generator_pid, threading.Event()
        self.rows: list[tuple] = []
        self.until = time.monotonic() + limit_s
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while time.monotonic() < self.until:  # bounded even if stop() were never called
            table = proc_table()
            gen_cpu, gen_procs = tree_cpu_s(table, self.pid)
            tgt_cpu, _ = tree_cpu_s(table, self.nginx.proc.pid)
            busy = machine_busy_s()
            self.rows.append(
                (time.monotonic(), nginx_requests(self.nginx.port), gen_cpu, tgt_cpu, gen_procs, busy)
            )
            if self.done.wait(SAMPLE_S):
                return

    def stop(self) -> list[tuple]:
        self.done.set()
        self.thread.join()
        return self.rows


def steady(rows: list[tuple]) -> dict:
    """Rates over the steady window: from LEAD_S after the first request to TAIL_S before the last."""
    base = rows[0][1]
    started = next((r[0] for r in rows if r[1] > base + 5), None)  # a few: the sampler's own reads
    ended = next((b[0] for a, b in zip(rows[::-1][1:], rows[::-1]) if b[1] - a[1] > 100), None)
    if started is None or ended is None:
        return {"error": "no traffic seen"}
    window = [r for r in rows if started + LEAD_S <= r[0] <= ended - TAIL_S]
    if len(window) < 2:
        return {"error": "run too short for a steady window"}
    first, last = window[0], window[-1]
    wall = last[0] - first[0]
    rps = (last[1] - first[1]) / wall
    gen_cores = (last[2] - first[2]) / wall
    tgt_cores = (last[3] - first[3]) / wall
    busy_cores = (last[5] - first[5]) / wall
    return {
        "window_s": round(wall, 2),
        "rps": round(rps, 1),
        "generator_cores": round(gen_cores, 3),
        "target_cores": round(tgt_cores, 3),
        "machine_busy_cores": round(busy_cores, 3),  # everything: generator, nginx, this script, others
        "other_cores": round(busy_cores - gen_cores - tgt_cores, 3),
        "rps_per_generator_core": round(rps / gen_cores, 1) if gen_cores else None,
        "generator_processes": max(r[4] for r in window),
    }


def profile_file(folder: str, url: str) -> str:
    path = Path(folder, "scaling.toml")
    path.write_text(
        f'# bench: GET / in a loop, no think time\n[target]\nbase_url = "{url}"\ntimeout_s = 10\n'
        '[behaviour]\nthink_time_s = [0.0, 0.0]\n[[requests]]\nname = "GET /"\npath = "/"\n'
    )
    return str(path)


def argv_ours(folder: str, url: str, workers: int, args) -> tuple[list[str], str]:
    report = str(Path(folder, f"ours-{workers}-{time.monotonic_ns()}.json"))
    argv = [sys.executable, str(ROOT / "bin" / "amanflix-stress"), "run", "--profile"]
    argv += [profile_file(folder, url), "--users", str(args.users), "--workers", str(workers)]
    argv += ["--duration", f"{args.duration:g}s", "--spawn-rate", "1000", "--report-json", report, "--quiet"]
    return argv, report


def argv_locust(folder: str, url: str, processes: int, args) -> tuple[list[str], str]:
    locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or shutil.which("locust")
    if not locust:
        raise SystemExit("Locust is not installed: pip install -e '.[bench]'")
    prefix = str(Path(folder, f"locust-{processes}-{time.monotonic_ns()}"))
    argv = [locust, "-f", str(BENCH / "locustfile.py"), "--headless", "-u", str(args.users), "-r", "1000"]
    argv += ["-t", f"{args.duration:g}s", "--host", url, "--csv", prefix, "--only-summary"]
    argv += ["--loglevel", "ERROR"]
    if processes > 1:
        argv += ["--processes", str(processes)]
    return argv, prefix


def own_figures(config: Config, out: str) -> dict:
    """What the tool itself reported: req/s, and for ours each worker's CPU and core."""
    try:
        if config.tool == "ours":
            data = json.loads(Path(out).read_text())
            workers = data["health"]["workers"]
            return {
                "own_rps": data["totals"]["throughput_rps"],
                "failures": data["totals"]["failures"],
                "worker_cpu_cores": [w["cpu_cores"] for w in workers],
                "worker_core": [w["core"] for w in workers],
            }
        with open(f"{out}_stats.csv") as stats:
            total = next(r for r in csv.DictReader(stats) if r["Name"] == "Aggregated")
        return {"own_rps": float(total["Requests/s"]), "failures": int(total["Failure Count"])}
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        return {"own_error": repr(exc)}


def run_config(config: Config, nginx: Target, budget: CpuBudget | None, folder: str, args) -> dict:
    maker = argv_ours if config.tool == "ours" else argv_locust
    argv, out = maker(folder, nginx.url, config.processes, args)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AMFX_BENCH_LOCUST_CLASS": "FastHttpUser"}
    # the shared mode stays out of the cgroup: in one, the whole tree would weigh as one task against nginx's
    capped = budget if config.mode == "budget" else None
    budget_cores = config.processes * args.budget if capped else None
    throttled_before = 0
    if capped:
        capped.cap(budget_cores)
        throttled_before = capped.throttled_periods()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=capped.enter if capped else None,
    )
    sampler = Sampler(nginx, proc.pid, args.duration + RUN_GRACE_S + 5.0)
    try:
        _out, err = proc.communicate(timeout=args.duration + RUN_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    rows = sampler.stop()
    row = {"config": config.name, "exit": proc.returncode, "budget_cores": budget_cores}
    row |= {**steady(rows), **own_figures(config, out)}
    if capped:
        row["throttled_periods"] = capped.throttled_periods() - throttled_before
    if row.get("generator_cores") and all(isinstance(c, float) for c in row.get("worker_cpu_cores", [None])):
        # the coordinator and multiprocessing's resource tracker: the tree less the workers' own figures
        row["coordinator_cores"] = round(row["generator_cores"] - sum(row["worker_cpu_cores"]), 3)
    if proc.returncode not in (0, None) and "error" in row:
        row["stderr"] = err.decode(errors="replace")[-400:]
    return row


def configs(modes: list[str]) -> list[Config]:
    return [Config(tool, n, mode) for mode in modes for tool in TOOLS for n in (1, 2)]


def median_of(rows: list[dict], config: Config, key: str) -> float | None:
    values = [r[key] for r in rows if r["config"] == config.name and r.get(key) is not None]
    return statistics.median(values) if values else None


SUMMARY_KEYS = (
    "rps",
    "generator_cores",
    "target_cores",
    "other_cores",
    "machine_busy_cores",
    "rps_per_generator_core",
    "own_rps",
    "budget_cores",
    "throttled_periods",
)


def summarise(rows: list[dict], modes: list[str], cores: int) -> dict:
    """Per configuration the medians; per tool and mode the median of the rounds' 2-vs-1 ratios."""
    table: dict = {c.name: {key: median_of(rows, c, key) for key in SUMMARY_KEYS} for c in configs(modes)}
    for mode in modes:
        for tool in TOOLS:
            one, two = Config(tool, 1, mode), Config(tool, 2, mode)
            ratios = round_ratios(rows, one.name, two.name)
            key = f"{tool}-{mode}"
            table[f"{key}_ratios"] = [round(x, 3) for x in ratios]
            table[f"{key}_ratio"] = round(statistics.median(ratios), 3) if ratios else None
            if mode == "shared":
                table[f"{key}_ceiling"] = ceiling(table[one.name], table[two.name], cores)
    return table


def round_ratios(rows: list[dict], one: str, two: str) -> list[float]:
    """Each round's req/s with two processes over its req/s with one."""
    ratios = []
    for n in sorted({r["round"] for r in rows}):
        first = next((r for r in rows if r["round"] == n and r["config"] == one), {})
        second = next((r for r in rows if r["round"] == n and r["config"] == two), {})
        if first.get("rps") and second.get("rps"):
            ratios.append(second["rps"] / first["rps"])
    return ratios


def ceiling(one: dict, two: dict, cores: int) -> dict | None:
    """What the machine allows with 2 processes: all its cores spent at the 2-process run's CPU per request
    (generator + nginx), as req/s and as a ratio to the 1-process run; and the share of it reached."""
    if not (one["rps"] and two["rps"] and two["generator_cores"] and two["target_cores"]):
        return None
    us_per_request = (two["generator_cores"] + two["target_cores"]) / two["rps"] * 1e6
    rps = cores / us_per_request * 1e6
    return {
        "cpu_us_per_request": round(us_per_request, 2),
        "rps": round(rps),
        "ratio": round(rps / one["rps"], 3),
        "reached": round(two["rps"] / rps, 3),
    }


def print_table(summary: dict, modes: list[str]) -> None:
    print(
        f"\n{'tool':8} {'procs':>5} {'mode':>7} {'budget':>6} {'req/s':>9} {'ratio 2/1':>9} {'gen cores':>9} "
        f"{'req/s/core':>10} {'nginx cores':>11} {'other cores':>11} {'own req/s':>10}"
    )
    for config in configs(modes):
        s = summary[config.name]
        ratio = summary[f"{config.tool}-{config.mode}_ratio"] if config.processes == 2 else None
        print(
            f"{config.tool:8} {config.processes:>5} {config.mode:>7} {fmt(s['budget_cores'], '.1f'):>6} "
            f"{fmt(s['rps'], ',.0f'):>9} {fmt(ratio, '.2f'):>9} {fmt(s['generator_cores'], '.2f'):>9} "
            f"{fmt(s['rps_per_generator_core'], ',.0f'):>10} {fmt(s['target_cores'], '.2f'):>11} "
            f"{fmt(s['other_cores'], '.2f'):>11} {fmt(s['own_rps'], ',.0f'):>10}"
        )
    for mode in modes:
        print(
            f"per-round ratios ({mode}): ours {summary[f'ours-{mode}_ratios']}, "
            f"Locust {summary[f'locust-{mode}_ratios']}"
        )
    for tool in TOOLS:
        c = summary.get(f"{tool}-shared_ceiling")
        if c:
            print(
                f"{tool} (shared): CPU per request with 2 processes {c['cpu_us_per_request']} us "
                f"(generator + nginx); all cores at that cost: {c['rps']:,} req/s = {c['ratio']:.2f}x "
                f"the 1-process run; reached {c['reached']:.0%}"
            )


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run (each tool's own)")
    parser.add_argument(
        "--users", type=int, default=16, help="users (threads / greenlets), all configurations"
    )
    parser.add_argument("--modes", default="shared,budget", help="shared, budget or both (comma-separated)")
    parser.add_argument(
        "--budget", type=float, default=0.5, help="cores per generator process in the budget mode"
    )
    parser.add_argument("--json", default=str(BENCH / "scaling.json"))
    args = parser.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    if not args.modes or set(args.modes) - {"shared", "budget"}:
        parser.error("--modes takes shared, budget or shared,budget")
    return args


def run_rounds(args: argparse.Namespace, nginx: Target, budget: CpuBudget | None) -> list[dict]:
    rows: list[dict] = []
    every = configs(args.modes)
    with tempfile.TemporaryDirectory(prefix="amfx-scaling-") as folder:
        for n in range(args.rounds):
            order = every[n % len(every) :] + every[: n % len(every)]  # rotate: no fixed slot
            for config in order:
                row = {"round": n, **run_config(config, nginx, budget, folder, args)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def main() -> int:
    args = parse_args()
    binary = nginx_binary()
    if not binary:
        raise SystemExit(
            "nginx is not installed (apt-get install nginx): this benchmark needs a target that is"
        )
    cores = os.sched_getaffinity(0)
    budget = CpuBudget() if "budget" in args.modes else None
    nginx = start_nginx(binary, cores, worker_processes=2)
    try:
        rows = run_rounds(args, nginx, budget)
    finally:
        nginx.stop()
        if budget:
            budget.remove()
    summary = summarise(rows, args.modes, len(cores))
    print_table(summary, args.modes)
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "affinity": sorted(cores),
            "platform": platform.platform(),
            "nginx": subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip(),
        },
        "args": vars(args),
        "window": {"sample_s": SAMPLE_S, "lead_s": LEAD_S, "tail_s": TAIL_S},
        "summary": summary,
        "runs": rows,
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
