"""Four hosts on this machine (network namespaces): `sched` (Dask scheduler + coordinator), `gen1` and `gen2`
(one `dask worker` each, the documented command in an empty folder with an empty environment) and `target`
(the sandbox). Built once for the cluster tests; every process stopped by pid, every namespace and the bridge
removed at the end, also when a test fails. Skips with one line where namespaces cannot be made."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import netns
import pytest

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # the venv's bin: python, dask, amanflix-stress
SCHED_PORT = 8786
TARGET_PORT = 5001
START_TIMEOUT_S = 60.0
WORKER_CMD = ["dask", "worker", "tcp://{sched}:8786", "--nworkers", "1", "--nthreads", "1"]
WORKER_CMD += ["--memory-limit", "0", "--no-dashboard"]  # docs/cluster.md, step 2 (one process per host)


class Output:
    """A process's output lines, each stamped with time.monotonic() on arrival; wait for a pattern."""

    def __init__(self, stream) -> None:
        self.lines: list[tuple[float, str]] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            with self.changed:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.changed.notify_all()
        with self.changed:
            self.lines.append((time.monotonic(), "<EOF>"))
            self.changed.notify_all()

    def wait_for(self, pattern: str, timeout_s: float, after: int = 0) -> tuple[float, str] | None:
        regex = re.compile(pattern)
        with self.changed:
            found = self.changed.wait_for(
                lambda: any(regex.search(text) for _t, text in self.lines[after:]) or self._ended(), timeout_s
            )
            hits = [(t, text) for t, text in self.lines[after:] if regex.search(text)]
            return hits[0] if found and hits else None

    def _ended(self) -> bool:
        return bool(self.lines) and self.lines[-1][1] == "<EOF>"

    def text(self) -> str:
        with self.changed:
            return "\n".join(text for _t, text in self.lines)


class Hosts:
    """The running topology and what the tests do with it."""

    def __init__(self, topo: netns.Topology, home: Path, scratch: Path) -> None:
        self.topo, self.home, self.scratch = topo, home, scratch
        self.admin_password = secrets.token_urlsafe(16)
        self.scheduler = f"tcp://{topo.addr('sched')}:{SCHED_PORT}"
        self.target_url = f"http://{topo.addr('target')}:{TARGET_PORT}"
        self.workers: dict[str, tuple[subprocess.Popen, Output]] = {}

    # starting
    def start_scheduler(self) -> None:
        env = {**self.bare_env(), "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
        argv = [
            str(BIN / "dask"),
            "scheduler",
            "--host",
            "0.0.0.0",
            "--port",
            str(SCHED_PORT),
            "--no-dashboard",
        ]
        proc = self.topo.spawn("sched", argv, env=env, cwd=self.home, **pipes())
        self.scheduler_pid = proc.pid  # `ip netns exec` execs: this is the scheduler itself
        out = self.scheduler_log = Output(proc.stderr)
        if out.wait_for(r"Scheduler at:", START_TIMEOUT_S) is None:
            raise RuntimeError(f"the Dask scheduler did not start:\n{out.text()}")

    def start_worker(self, role: str) -> None:
        """The documented command, in an empty folder, with an environment that names nothing of ours."""
        argv = [a.format(sched=self.topo.addr("sched")) for a in WORKER_CMD]
        proc = self.topo.spawn(role, argv, env=self.bare_env(), cwd=self.home, **pipes())
        out = Output(proc.stderr)
        self.workers[role] = (proc, out)
        if out.wait_for(r"Registered to:", START_TIMEOUT_S) is None:
            raise RuntimeError(f"the Dask worker on {role} did not register:\n{out.text()}")

    def bare_env(self) -> dict[str, str]:
        return {
            "PATH": f"{BIN}:/usr/bin:/bin",
            "HOME": str(self.home),
            "TMPDIR": str(self.home),
            "LANG": "C.UTF-8",
        }

    def start_target(self, role: str = "target", port: int = TARGET_PORT) -> dict:
        db = self.scratch / f"{role}-amanflix.db"
        argv = [sys.executable, str(HERE / "target_main.py"), self.topo.addr(role), "--port", str(port)]
        # one argument with "=": a generated password may start with "-" (1 in 64), read as a flag otherwise
        argv += ["--db", str(db), "--hash-iterations", "1000", f"--admin-password={self.admin_password}"]
        proc = self.topo.spawn(role, argv, **pipes())
        out = Output(proc.stdout)
        ready = out.wait_for(r"^SANDBOX READY ", START_TIMEOUT_S)
        if ready is None:
            raise RuntimeError(
                f"the sandbox on {role} did not start: {proc.stderr.read() if proc.poll() else ''}"
            )
        info = json.loads(ready[1].split(" ", 2)[2])
        return {"url": info["url"], "db": info["db_path"], "proc": proc}

    # using
    def ask(self, what: str, url: str | None = None) -> dict:
        env = {**self.bare_env(), "AMFX_ADMIN_PASSWORD": self.admin_password}
        done = self.topo.run(
            "sched", [sys.executable, str(HERE / "ask.py"), url or self.target_url, what], env=env
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def coordinator(
        self, *run_args: str, tap: Path | None = None, sets: dict | None = None, admin: bool = True
    ) -> tuple[subprocess.Popen, Output, Output]:
        """`amanflix-stress run` on the sched host, with the admin credentials in its environment only."""
        argv = [sys.executable, str(HERE / "coordinator_main.py")]
        for name, value in (sets or {}).items():
            argv += ["--set", f"{name}={value}"]
        argv += ["--tap", str(tap)] if tap else []
        argv += ["--", "run", "--cluster", self.scheduler, "--quiet", *run_args]
        env = {
            **os.environ,
            "AMANFLIX_ADMIN_USER": "superadmin",
            "AMANFLIX_ADMIN_PASSWORD": self.admin_password,
        }
        if not admin:
            env.pop("AMANFLIX_ADMIN_USER"), env.pop("AMANFLIX_ADMIN_PASSWORD")
        proc = self.topo.spawn("sched", argv, env=env, **pipes())
        return proc, Output(proc.stdout), Output(proc.stderr)

    def worker_process(self, role: str) -> int:
        """The pid of the Dask worker process (the nanny's child) on a host."""
        for pid in netns.ns_pids(self.topo.ns(role)):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
                return pid
        raise AssertionError(f"no Dask worker process on {role}")


def pipes() -> dict:
    return {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}


@pytest.fixture(scope="session")
def hosts(tmp_path_factory):
    reason = netns.why_not_available()
    if reason:
        pytest.skip(reason)
    netns.clean_stale()
    topo = netns.Topology()
    home = tmp_path_factory.mktemp("workerhost")  # empty: no profiles, no project files
    scratch = tmp_path_factory.mktemp("cluster")
    try:
        topo.build()
        hosts = Hosts(topo, home, scratch)
        hosts.start_scheduler()
        hosts.start_target()
        for role in ("gen1", "gen2"):
            hosts.start_worker(role)
        yield hosts
    finally:
        topo.destroy()
        left = topo.exists()
        assert not left, f"left behind: {left}"
