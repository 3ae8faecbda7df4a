"""Loopback targets on port 0: a counting HTTP server, and a raw-socket peer that misbehaves on purpose."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.connections = 0
        self.in_flight = self.max_in_flight = 0  # /delay requests being served at once: what a cap limits
        self.first_load_request = threading.Event()  # the reachability check's GET / does not count
        self.release = threading.Event()  # /hang waits on it
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, route: str) -> None:
        with self.lock:
            self.counts[route] = self.counts.get(route, 0) + 1
        if route != "/":
            self.first_load_request.set()

    @contextmanager
    def serving(self):
        """Count a request as in flight while the block runs."""
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self.lock:
                self.in_flight -= 1

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        parts = urlsplit(self.path)
        route = parts.path
        self.server.count(route)
        query = parse_qs(parts.query)
        if route == "/drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if route == "/delay":
            with self.server.serving():
                time.sleep(float(query.get("ms", ["50"])[0]) / 1000.0)  # the server's own fixed delay
        if route == "/hang":
            self.server.release.wait(30)
        if route in ("/chunked", "/eof"):
            return self.send_unframed(chunked=route == "/chunked")
        status = 500 if route == "/500" else 200
        body = b'{"error": "boom 123"}' if status == 500 else b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def send_unframed(self, chunked: bool):
        """A body without Content-Length: chunked, or delimited by closing the connection (old servers do)."""
        parts = [b'{"ok": ', b'"in parts"}']
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        for part in parts:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


CLOSE = object()  # in a RawServer script: close the connection here


class Received(NamedTuple):
    """One request as the raw server read it off the wire."""

    method: str
    target: str
    headers: dict  # names lower-cased
    body: bytes
    connection: int  # 1 for the first connection the server accepted, 2 for the next, ...


class RawServer:
    """A raw-socket HTTP peer on port 0 that answers each request with the bytes a test scripts.

    `answer(received)` returns the chunks to send, each in its own write; CLOSE among them closes the
    connection there. With `hold=True` it accepts connections and never reads or writes (a peer that hangs).
    """

    def __init__(self, answer=None, *, host: str = "127.0.0.1", hold: bool = False) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(16)
        self.host, self.port = self.listener.getsockname()[:2]
        self.listener.settimeout(0.05)  # the accept loop looks at `stopped` this often
        self.answer, self.hold = answer, hold
        self.received: list[Received] = []
        self.peers: list[tuple] = []  # address of each accepted connection
        self.stopped = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        return f"http://[{self.host}]:{self.port}" if ":" in self.host else f"http://{self.host}:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(5)
        for conn in list(self.conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.listener.close()

    def _accept_loop(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, peer = self.listener.accept()
            except TimeoutError:
                continue
            self.conns.append(conn)
            self.peers.append(peer)
            if not self.hold:
                index = len(self.peers)
                threading.Thread(target=self._serve, args=(conn, index), daemon=True).start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = conn.makefile("rb")
        with contextlib.suppress(OSError, ValueError):
            while (request := _read_request(reader, index)) is not None:
                self.received.append(request)
                for chunk in self.answer(request):
                    if chunk is CLOSE:
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                    conn.sendall(chunk)


def _read_request(reader, index: int) -> Received | None:
    """One request head and its Content-Length body, or None when the client closed the connection."""
    line = reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", 0)))
    return Received(method, target, headers, body, index)
