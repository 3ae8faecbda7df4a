"""Serving the sandbox: in this process (start_sandbox) or in a child process (launch_sandbox_process)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from .app import ADMIN_USERNAME, build_state, create_app, remove_temp_dir, resolve
from .config import SandboxConfig

HOST = "127.0.0.1"  # never bind anything else
READY_PREFIX = "SANDBOX READY "
LAUNCH_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = (3.0, 30.0)


class QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request log line."""

    def log_request(self, *args, **kwargs) -> None:
        pass


class SandboxServer:
    """A sandbox served by a threaded Werkzeug server in a background thread of this process."""

    def __init__(self, cfg: SandboxConfig, log_requests: bool = False):
        self._state = build_state(cfg)
        handler = WSGIRequestHandler if log_requests else QuietHandler
        try:
            self._server = make_server(
                HOST, cfg.port, create_app(self._state), threaded=True, request_handler=handler
            )
        except OSError:
            self._release()
            raise
        self.url = f"http://{HOST}:{self._server.server_port}"
        self.cfg = self._state.cfg
        self.admin_username, self.admin_password = ADMIN_USERNAME, self.cfg.admin_password
        self.db_path, self.truth_path, self.mode = self.cfg.db_path, self._state.truth_path, self.cfg.mode
        self.server_log_path, self.debug = self.cfg.log_path, self.cfg.debug
        self._stopped = threading.Lock()
        self._done = False
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="amanflix-sandbox",
            daemon=True,
        )
        self._thread.start()

    @property
    def engine(self):
        """The SQLAlchemy engine the request threads share (its pool is upstream's 5 + 10)."""
        return self._state.store.engine

    def wait_for_writes(self, count: int, timeout_s: float) -> bool:
        """True once `count` requests are inside the commit helper at once (e.g. queued behind a lock)."""
        return self._state.store.wait_for_writes(count, timeout_s)

    def truth(self) -> dict:
        """Ground truth right now (same as GET /api/sandbox/truth)."""
        return self._state.truth.snapshot(self._state.store.engine)

    def stop(self) -> dict | None:
        """Stop serving, write the truth file, release the DB. Idempotent; returns the final truth once."""
        with self._stopped:
            if self._done:
                return None
            self._done = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(STOP_TIMEOUT_S)
            final = self._state.truth.write(self.truth_path, self._state.store.engine)
            self._release()
            return final

    def _release(self) -> None:
        """Close the DB and the log; remove the temp folder if this sandbox created one (truth file included:
        the final truth is what stop() returns)."""
        self._state.store.engine.dispose()
        self._state.log.close()
        remove_temp_dir(self._state.temp_dir)

    def info(self) -> dict:
        """Plain facts a parent process or a user needs."""
        return {
            "url": self.url,
            "admin_username": self.admin_username,
            "admin_password": self.admin_password,
            "db_path": self.db_path,
            "truth_path": self.truth_path,
            "mode": self.mode,
            "debug": self.debug,
            "server_log_path": self.server_log_path,
            "temp_db": self._state.temp_dir is not None,
            "pid": os.getpid(),
        }

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_sandbox(cfg: SandboxConfig | None = None, log_requests: bool = False) -> SandboxServer:
    """Serve a sandbox on 127.0.0.1 in a background thread; returns its handle."""
    return SandboxServer(cfg or SandboxConfig(), log_requests)


def cli_args(cfg: SandboxConfig) -> list[str]:
    """The `python -m amanflix_stress.sandbox` arguments equivalent to `cfg` (db and password resolved)."""
    if cfg.db_path is None or cfg.admin_password is None:
        raise ValueError("cli_args needs a resolved config: db_path and admin_password set")
    args = [
        "--port",
        str(cfg.port),
        "--mode",
        cfg.mode,
        "--db",
        cfg.db_path,
        "--busy-timeout-s",
        repr(cfg.busy_timeout_s),
        "--catalog",
        cfg.catalog,
        f"--admin-password={cfg.admin_password}",  # one word: a random password may start with "-"
        "--hash-iterations",
        str(cfg.hash_iterations),
        "--debug",
        "on" if cfg.debug else "off",
        "--log-path",
        str(cfg.log_path),
    ]
    return args + (["--truth-path", cfg.truth_path] if cfg.truth_path else [])


class SandboxLaunchError(RuntimeError):
    """The child sandbox did not come up in time."""


class ChildSandbox:
    """A sandbox running in a child process; same attributes as SandboxServer."""

    def __init__(
        self, proc: subprocess.Popen, info: dict, log_path: str, pump: threading.Thread, temp_dir=None
    ):
        self._proc, self.log_path, self._pump, self._temp_dir = proc, log_path, pump, temp_dir
        self.url, self.mode, self.pid = info["url"], info["mode"], proc.pid
        self.admin_username, self.admin_password = info["admin_username"], info["admin_password"]
        self.db_path, self.truth_path = info["db_path"], info["truth_path"]
        self.server_log_path, self.debug = info["server_log_path"], info["debug"]

    def admin_token(self) -> str:
        form = {"username": self.admin_username, "password": self.admin_password}
        resp = requests.post(f"{self.url}/api/admin/login", data=form, timeout=HTTP_TIMEOUT_S)
        resp.raise_for_status()
        return resp.json()["api_key"]

    def truth(self) -> dict:
        """GET /api/sandbox/truth with a fresh admin token."""
        headers = {"Authorization": f"Bearer {self.admin_token()}"}
        resp = requests.get(f"{self.url}/api/sandbox/truth", headers=headers, timeout=HTTP_TIMEOUT_S)
        resp.raise_for_status()
        return resp.json()

    def stop(self) -> int:
        """SIGTERM the child (it writes its truth file) and wait; kill it if it hangs. Idempotent."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(STOP_TIMEOUT_S)
        self._pump.join(STOP_TIMEOUT_S)  # stdout reaches EOF once the child is gone
        remove_temp_dir(self._temp_dir)  # the parent created it (the child was given --db)
        return self._proc.returncode

    def __enter__(self) -> ChildSandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _pump(stream, lines: queue.Queue) -> None:
    with stream:
        for line in stream:
            lines.put(line)
    lines.put(None)


def _wait_ready(proc, lines: queue.Queue, deadline: float, log_path: str) -> dict:
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            continue
        if line is None:
            break
        if line.startswith(READY_PREFIX):
            return json.loads(line[len(READY_PREFIX) :])
    raise SandboxLaunchError(
        f"sandbox child (pid {proc.pid}, exit {proc.poll()}) not ready; log: {_tail(log_path)}"
    )


def _tail(path: str, n: int = 2000) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()[-n:]
    except OSError:
        return "(no log)"


def _wait_answers(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/api/service/status", timeout=(1.0, 2.0))
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise SandboxLaunchError(f"sandbox at {url} does not answer")


def launch_sandbox_process(
    cfg: SandboxConfig | None = None, timeout_s: float = LAUNCH_TIMEOUT_S
) -> ChildSandbox:
    """Run `python -m amanflix_stress.sandbox` as a child and wait (bounded) until it answers."""
    cfg, temp_dir = resolve(cfg or SandboxConfig())
    log_path = f"{cfg.db_path}.log"
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    with open(log_path, "ab") as log:
        # its own session: a Ctrl-C meant for the load run must not stop the target before cleanup
        proc = subprocess.Popen(
            [sys.executable, "-m", "amanflix_stress.sandbox", *cli_args(cfg)],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )
    lines: queue.Queue = queue.Queue()
    pump = threading.Thread(target=_pump, args=(proc.stdout, lines), name="sandbox-child-stdout", daemon=True)
    pump.start()
    deadline = time.monotonic() + timeout_s
    try:
        info = _wait_ready(proc, lines, deadline, log_path)
        _wait_answers(info["url"], deadline)
    except BaseException:
        proc.kill()
        proc.wait(STOP_TIMEOUT_S)
        remove_temp_dir(temp_dir)
        raise
    return ChildSandbox(proc, info, log_path, pump, temp_dir)
