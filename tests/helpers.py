"""Test helpers: run the real CLI in a subprocess and find its worker processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bin" / "amanflix-stress"


def start_cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def worker_pids(parent_pid: int) -> list[int]:
    """Child processes started by multiprocessing's spawn (the workers), not its resource tracker."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent_pid and "spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


def read_report(path) -> dict:
    return json.loads(Path(path).read_text())


def fast_profile(tmp_path, server, path="/ok", think="[0.0, 0.01]") -> str:
    """A profile that loops one call against the counting server as fast as it answers."""
    profile = tmp_path / "p.toml"
    profile.write_text(f"""# test profile: fast loop against the counting server
[target]
base_url = "{server.url}"
timeout_s = 2
[behaviour]
think_time_s = {think}
[[requests]]
name = "GET /ok"
path = "{path}"
""")
    return str(profile)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_args(
    profile, report, *extra: str, users: int = 2, workers: int = 1, duration: str = "1s"
) -> list[str]:
    """`run` with the flags most tests give it; `extra` adds the test's own."""
    sizing = ["--users", str(users), "--workers", str(workers), "--duration", duration]
    return ["run", "--profile", str(profile), *sizing, "--report-json", str(report), *extra]
