"""Loopback benchmark targets: nginx (else a raw asyncio server) and a fixed-delay server timing itself."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BODY = b'{"ok": true}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    b"Connection: keep-alive\r\n\r\n%s" % (len(BODY), BODY)
)
# 30,000 connections a worker: the 10,000-user runs keep one each, and nginx closes idle keep-alive
# connections to make room when it runs short (a request racing that close fails `read`)
NGINX_CONF = """daemon off;
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {dir}/nginx.pid;
error_log {dir}/error.log crit;
events {{ worker_connections 30000; }}
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout_s: float = 10.0) -> None:
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)  # a process start-up, not a test: nothing to wait on but the port
    raise RuntimeError(f"benchmark target on port {port} did not start")


class Target:
    """A target process on loopback, pinned to the given cores; stop() ends it."""

    def __init__(
        self, name: str, argv: list[str], port: int, cores: set[int], workdir: str | None = None
    ) -> None:
        self.name, self.port, self.workdir = name, port, workdir
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        pin(self.proc.pid, cores)
        wait_listening(port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return err.decode(errors="replace")


def pin(pid: int, cores: set[int]) -> None:
    if hasattr(os, "sched_setaffinity") and cores:
        os.sched_setaffinity(pid, cores)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def start_nginx(binary: str, cores: set[int], worker_processes: int = 1) -> Target:
    """nginx on 127.0.0.1 returning a fixed body, its config and temp files in a folder of its own."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="amfx-bench-nginx-")
    conf = NGINX_CONF.format(dir=workdir, port=port, workers=worker_processes)
    Path(workdir, "nginx.conf").write_text(conf)
    return Target("nginx", [binary, "-c", f"{workdir}/nginx.conf", "-p", workdir], port, cores, workdir)


def nginx_requests(port: int) -> int:
    """nginx's own count of requests served (stub_status), this read included."""
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
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


def start_fast_target(cores: set[int]) -> Target:
    """nginx returning a fixed body when it is installed, else the raw asyncio server below."""
    binary = nginx_binary()
    if binary:
        return start_nginx(binary, cores)
    port = free_port()
    return Target("python-asyncio", [sys.executable, __file__, "fast", str(port)], port, cores)


def start_delay_target(cores: set[int], delay_ms: float, timings_path: str) -> Target:
    port = free_port()
    argv = [sys.executable, __file__, "delay", str(port), str(delay_ms), timings_path]
    return Target("delay", argv, port, cores)


class FastProtocol(asyncio.Protocol):
    """Answers every request head with the same bytes: no parsing beyond counting the blank lines."""

    def connection_made(self, transport) -> None:
        self.transport, self.buffer = transport, b""
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        heads = self.buffer.count(b"\r\n\r\n")
        if heads:
            self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * heads)


class DelayProtocol(asyncio.Protocol):
    """Answers each request after a fixed delay and times itself from request head to response write."""

    def __init__(self, delay_s: float, timings_us: list[int]) -> None:
        self.delay_s, self.timings_us, self.buffer = delay_s, timings_us, b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            received_ns = time.perf_counter_ns()
            asyncio.get_running_loop().call_later(self.delay_s, self.answer, received_ns)

    def answer(self, received_ns: int) -> None:
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)
            self.timings_us.append((time.perf_counter_ns() - received_ns) // 1000)


async def serve(kind: str, port: int, delay_ms: float = 0.0, timings_path: str = "") -> None:
    loop = asyncio.get_running_loop()
    timings_us: list[int] = []
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    factory = FastProtocol if kind == "fast" else (lambda: DelayProtocol(delay_ms / 1000.0, timings_us))
    server = await loop.create_server(factory, "127.0.0.1", port, backlog=4096)
    await stop.wait()
    server.close()
    if timings_path:
        Path(timings_path).write_text(json.dumps(timings_us))


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "fast":
        asyncio.run(serve(kind, port))
    else:
        asyncio.run(serve(kind, port, float(sys.argv[3]), sys.argv[4]))
