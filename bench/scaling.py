"""Two processes vs one, ours and Locust's, in one run: req/s, the 2-vs-1 ratio, req/s per core used.

Four configurations, in interleaved rounds against the same loopback nginx (worker_processes 2, keep-alive,
a tiny static body, 127.0.0.1 only, started and stopped here with its own config in a temp folder):

    ours 1 worker, ours 2 workers, Locust FastHttpUser 1 process, Locust FastHttpUser --processes 2

Same users (16), same duration (8 s), no think time. Each configuration's req/s is measured from the outside,
the same way for every tool: nginx's own request counter (stub_status) over the steady window of the run (from
1.5 s after the first request to 0.5 s before the last), sampled every SAMPLE_S with the CPU seconds of the
generator's whole process tree (ours: coordinator + workers; Locust: its process, or master + 2 workers) and
of nginx (master + workers), read from /proc. The tools' own req/s figures are kept beside them in the JSON.

    .venv/bin/python bench/scaling.py                     # 3 rounds x 8 s, about 2 minutes
    .venv/bin/python bench/scaling.py --rounds 5 --duration 10

Writes bench/scaling.json (every round's figures and samples' summary). Bounded: each run has a timeout, the
number of rounds is fixed, nginx is stopped by its PID at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH)]

from targets import free_port, wait_listening  # noqa: E402

SAMPLE_S = 0.25  # how often nginx's counter and the processes' CPU are read
LEAD_S, TAIL_S = 1.5, 0.5  # trimmed from the start (start-up, ramp) and the end (stop) of each run's traffic
RUN_GRACE_S = 60.0  # a run not ended this long after its duration is killed
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONFIGS = ("ours-1", "ours-2", "locust-1", "locust-2")
NGINX_CONF = """daemon off;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log crit;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /__status {{ stub_status; }}
    location / {{ default_type application/json; return 200 '{{"ok": true}}'; }}
  }}
}}
"""


class Nginx:
    """nginx on 127.0.0.1 with 2 worker processes, its config and temp files in a folder of its own."""

    def __init__(self, binary: str) -> None:
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="amfx-scaling-nginx-")
        conf = Path(self.workdir, "nginx.conf")
        conf.write_text(NGINX_CONF.format(dir=self.workdir, port=self.port))
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf), "-p", self.workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_listening(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> int:
        """nginx's own count of requests served (stub_status), this read included."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2.0) as sock:
            sock.sendall(b"GET /__status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            for _ in range(64):  # a few hundred bytes: bounded reads
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        # "... server accepts handled requests\n 1 1 1\n": the third number
        lines = data.split(b"\r\n\r\n", 1)[1].decode().splitlines()
        return int(lines[2].split()[2])

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the workers end with the master
        try:
            _out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        shutil.rmtree(self.workdir, ignore_errors=True)
        return err.decode(errors="replace")


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

    def __init__(self, nginx: Nginx, generator_pid: int, limit_s: float) -> None:
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
            self.rows.append((time.monotonic(), self.nginx.requests(), gen_cpu, tgt_cpu, gen_procs, busy))
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


def own_figures(config: str, out: str) -> dict:
    """What the tool itself reported: req/s, and for ours each worker's CPU and core."""
    try:
        if config.startswith("ours"):
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


def run_config(config: str, nginx: Nginx, folder: str, args) -> dict:
    tool, count = config.split("-")
    maker = argv_ours if tool == "ours" else argv_locust
    argv, out = maker(folder, nginx.url, int(count), args)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AMFX_BENCH_LOCUST_CLASS": "FastHttpUser"}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    sampler = Sampler(nginx, proc.pid, args.duration + RUN_GRACE_S + 5.0)
    try:
        _out, err = proc.communicate(timeout=args.duration + RUN_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    rows = sampler.stop()
    row = {"config": config, "exit": proc.returncode, **steady(rows), **own_figures(config, out)}
    if row.get("generator_cores") and all(isinstance(c, float) for c in row.get("worker_cpu_cores", [None])):
        # the coordinator and multiprocessing's resource tracker: the tree less the workers' own figures
        row["coordinator_cores"] = round(row["generator_cores"] - sum(row["worker_cpu_cores"]), 3)
    if proc.returncode not in (0, None) and "error" in row:
        row["stderr"] = err.decode(errors="replace")[-400:]
    return row


def median_of(rows: list[dict], config: str, key: str) -> float | None:
    values = [r[key] for r in rows if r["config"] == config and r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(rows: list[dict], rounds: int, cores: int) -> dict:
    """Per configuration the medians; per tool the median over rounds of each round's 2-vs-1 ratio."""
    table: dict = {}
    for config in CONFIGS:
        table[config] = {
            key: median_of(rows, config, key)
            for key in (
                "rps",
                "generator_cores",
                "target_cores",
                "other_cores",
                "machine_busy_cores",
                "rps_per_generator_core",
                "own_rps",
            )
        }
    for tool in ("ours", "locust"):
        ratios = []
        for n in range(rounds):
            one = next((r for r in rows if r["round"] == n and r["config"] == f"{tool}-1"), {})
            two = next((r for r in rows if r["round"] == n and r["config"] == f"{tool}-2"), {})
            if one.get("rps") and two.get("rps"):
                ratios.append(two["rps"] / one["rps"])
        table[f"{tool}_ratios"] = [round(x, 3) for x in ratios]
        table[f"{tool}_ratio"] = round(statistics.median(ratios), 3) if ratios else None
        table[f"{tool}_ceiling"] = ceiling(table[f"{tool}-1"], table[f"{tool}-2"], cores)
    return table


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


def print_table(summary: dict) -> None:
    print(
        f"\n{'tool':8} {'procs':>5} {'req/s':>9} {'ratio 2/1':>9} {'gen cores':>9} "
        f"{'req/s/core':>10} {'nginx cores':>11} {'other cores':>11} {'own req/s':>10}"
    )
    for config in CONFIGS:
        tool, count = config.split("-")
        s = summary[config]
        ratio = f"{summary[f'{tool}_ratio']:.2f}x" if count == "2" and summary[f"{tool}_ratio"] else ""
        print(
            f"{tool:8} {count:>5} {fmt(s['rps'], ',.0f'):>9} {ratio:>9} "
            f"{fmt(s['generator_cores'], '.2f'):>9} "
            f"{fmt(s['rps_per_generator_core'], ',.0f'):>10} {fmt(s['target_cores'], '.2f'):>11} "
            f"{fmt(s['other_cores'], '.2f'):>11} "
            f"{fmt(s['own_rps'], ',.0f'):>10}"
        )
    print(f"per-round ratios: ours {summary['ours_ratios']}, Locust {summary['locust_ratios']}")
    for tool in ("ours", "locust"):
        c = summary[f"{tool}_ceiling"]
        if c:
            print(
                f"{tool}: CPU per request with 2 processes {c['cpu_us_per_request']} us (generator + nginx); "
                f"all cores at that cost: {c['rps']:,} req/s = {c['ratio']:.2f}x the 1-process run; "
                f"reached {c['reached']:.0%}"
            )


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run (each tool's own)")
    parser.add_argument(
        "--users", type=int, default=16, help="users (threads / greenlets), all configurations"
    )
    parser.add_argument("--json", default=str(BENCH / "scaling.json"))
    args = parser.parse_args()
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not binary:
        raise SystemExit(
            "nginx is not installed (apt-get install nginx): this benchmark needs a target that is"
        )
    nginx = Nginx(binary)
    rows: list[dict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="amfx-scaling-") as folder:
            for n in range(args.rounds):
                order = CONFIGS[n % len(CONFIGS) :] + CONFIGS[: n % len(CONFIGS)]  # rotate: no fixed slot
                for config in order:
                    row = {"round": n, **run_config(config, nginx, folder, args)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        nginx.stop()
    summary = summarise(rows, args.rounds, len(os.sched_getaffinity(0)))
    print_table(summary)
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)),
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
