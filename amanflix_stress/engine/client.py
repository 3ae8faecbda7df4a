"""The measured HTTP call: one keep-alive connection per user (socket + httptools), one Sample per request."""

from __future__ import annotations

import errno
import json as jsonlib
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import httptools

from amanflix_stress import __version__
from amanflix_stress.engine.classify import body_message, classify_exception, classify_status
from amanflix_stress.engine.sample import Sample
from amanflix_stress.errors import TargetUnreachable

Check = Callable[["Reply"], "tuple[str, str] | None"]
OK_STATUSES = range(200, 300)
RECV_BYTES = 65536  # one recv per small response; larger bodies take several
# Receive buffers are lent per read from one pool per process, not owned per connection: a user thinking
# holds none, so 10,000 users cost as many buffers as requests in flight (measured: bench/rss_per_user.py)
POOL_KEEP = 64  # buffers the pool keeps for the next reads; more in flight at once are freed after use
_POOL: list[tuple[bytearray, memoryview]] = []
FD_ERRNOS = (errno.EMFILE, errno.ENFILE)  # too many open files: the generator's limit, not the target's
NO_BODY_STATUSES = (204, 304)
SWITCHING_PROTOCOLS = 101
REACHABLE_TIMEOUT_S = 3.0
# what a request target may hold as is: RFC 3986 pchar, "/" and "?", and a "%" that starts a %XX escape;
# compiled once: the hot path runs one fullmatch, and almost every path needs nothing more
_PLAIN_TARGET = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")
_UNSAFE_IN_TARGET = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]|%(?![0-9A-Fa-f]{2})")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: what a header name may be
_HEAD_BREAKERS = ("\r", "\n", "\0")


@dataclass(frozen=True)
class Reply:
    """What came back: status 0 means no response (the Sample says why)."""

    status: int
    body: bytes
    content_type: str
    error: str = ""
    latency_us: int = 0

    def json(self):
        """The body as JSON, or None when it is not JSON."""
        try:
            return jsonlib.loads(self.body)
        except ValueError:
            return None


class InflightGauge:
    """Writes (non-GET requests) in flight in one worker process, for the Sample's `inflight` field."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def __enter__(self) -> int:
        with self._lock:
            self.value += 1
            return self.value

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.value -= 1


class _Unmeasured:
    """Reads do not count as writes in flight."""

    def __enter__(self) -> int:
        return 0

    def __exit__(self, *exc) -> None:
        pass


_NO_GAUGE = _Unmeasured()


def parse_base_url(base_url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path prefix) of a base URL, or ValueError saying what is wrong."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{base_url!r} is not an http:// or https:// URL with a host, e.g. http://127.0.0.1:5001"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValueError(f"{base_url!r} has a bad port: {exc}") from None
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


def quote_target(path: str) -> str:
    """A path safe for the request line: spaces, unicode, CR/LF and a stray % become %XX; `/`, reserved
    characters and existing %XX escapes stay as they are."""
    if _PLAIN_TARGET.fullmatch(path):  # the common case: nothing to do, no new string
        return path
    return _UNSAFE_IN_TARGET.sub(_quote_match, path)


def _quote_match(match: re.Match) -> str:
    return quote(match.group(), safe="")


def check_header(name: str, value) -> None:
    """Refuse a header that would break the request head: ValueError naming the header, one line."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError(
            f"header name {name!r} is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~ only)"
        )
    text = str(value)
    if any(c in text for c in _HEAD_BREAKERS):
        raise ValueError(
            f"header {name!r}: its value holds a line break (CR or LF) or NUL, which would split the request"
        )


class Headers(dict):
    """The headers a client sends with every request; each is checked when set, so not on every request."""

    def __setitem__(self, name: str, value: str) -> None:
        check_header(name, value)
        super().__setitem__(name, value)

    def update(self, *args, **kwargs) -> None:
        for name, value in dict(*args, **kwargs).items():
            self[name] = value


class ConnectFailed(Exception):
    """No connection could be opened: carries the error class and message for the Sample."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


class _Response:
    """httptools' callback target for one response: status comes from the parser, the rest lands here.

    Interim answers (100 Continue, 103 Early Hints, ...) are parsed and forgotten: the final one follows on
    the same connection, often in the same packet, and is the one that counts.
    """

    __slots__ = (
        "body",
        "complete",
        "content_type",
        "framed",
        "headers_done",
        "interim",
        "keep_alive",
        "parser",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.content_type = ""
        self.framed = self.keep_alive = self.headers_done = self.complete = self.interim = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self.content_type = value.decode("latin-1")
        elif name in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != SWITCHING_PROTOCOLS:  # 101 is final: the connection is done
            self.interim = True
            return
        self.headers_done = True
        self.keep_alive = (
            self.parser.should_keep_alive()
        )  # valid only now: the parser resets after the message

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        if self.interim:  # forget the interim answer's headers; the final answer's come next
            self.interim = self.framed = False
            self.content_type = ""
            return
        self.complete = True


class Connection:
    """One keep-alive HTTP/1.1 connection on a plain socket, parsed by httptools' C parser (llhttp).

    The hot path of every request: urllib3's pool and http.client's email-based header parser cost several
    times more CPU per request than this (measured in bench/run.py), and a generator's CPU is its accuracy.
    """

    def __init__(self, scheme: str, host: str, port: int, timeout_s: float, connect_timeout_s: float) -> None:
        self.address, self.host = (host, port), host
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.tls = ssl.create_default_context() if scheme == "https" else None
        self.fixed_head = (
            f"Host: {host_header(host, port)}\r\nUser-Agent: amanflix-stress/{__version__}\r\n"
            "Accept-Encoding: identity\r\n"
        )
        self.sock: socket.socket | None = None
        self.poller = select.poll()

    def request(
        self, method: str, target: str, header_lines: str, body: bytes | None
    ) -> tuple[int, bytes, str]:
        """Send one request and read the whole response: (status, body, content type). Faults raise."""
        sock = self._socket()
        # a bodiless POST/PUT/DELETE still says so: some servers answer 411 Length Required otherwise
        length = (
            f"Content-Length: {len(body) if body is not None else 0}\r\n"
            if body is not None or method not in ("GET", "HEAD")
            else ""
        )
        head = f"{method} {target} HTTP/1.1\r\n{self.fixed_head}{header_lines}{length}\r\n".encode()
        try:
            sock.sendall(head + body if body else head)
            return self._read(sock, method)
        except BaseException:
            self.close()  # the connection's state is unknown after a fault: the next request opens a new one
            raise

    def _socket(self) -> socket.socket:
        if self.sock is not None and self.poller.poll(0):  # an idle keep-alive socket is readable only at EOF
            self.close()
        if self.sock is None:
            self.sock = self._connect()
            self.poller.register(self.sock, select.POLLIN)
        return self.sock

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection(self.address, timeout=self.connect_timeout_s)
        except TimeoutError:
            raise ConnectFailed("timeout", "connect timed out") from None
        except OSError as exc:
            kind = "fd_exhausted" if exc.errno in FD_ERRNOS else "connect"
            raise ConnectFailed(kind, exc.strerror or str(exc)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            sock = self._handshake(sock, self.tls)
        sock.settimeout(self.timeout_s)
        return sock

    def _handshake(self, sock: socket.socket, tls: ssl.SSLContext) -> ssl.SSLSocket:
        """TLS on the connect timeout: the handshake opens the connection, it does not read a reply.

        A handshake that never finishes is classed `timeout` like a connect that never finishes (a server too
        busy to finish opening connections), not `tls`, which stays for what TLS itself refused (certificates,
        versions), so a `tls = 0` threshold keeps meaning "the TLS setup is wrong".
        """
        try:
            return tls.wrap_socket(sock, server_hostname=self.host)
        except TimeoutError:
            raise ConnectFailed("timeout", "TLS handshake timed out") from None
        finally:
            sock.close()  # a no-op after a good handshake (the TLS socket took over the descriptor)

    def _read(self, sock: socket.socket, method: str) -> tuple[int, bytes, str]:
        response = _Response()
        parser = response.parser
        try:  # list.pop and append are atomic: the pool needs no lock
            buffer, view = _POOL.pop()
        except IndexError:
            buffer = bytearray(RECV_BYTES)
            view = memoryview(buffer)
        try:
            while not response.complete and not (method == "HEAD" and response.headers_done):
                count = sock.recv_into(buffer)
                if count == 0:
                    if response.headers_done and not response.framed:  # a body that ends with the connection
                        break
                    raise ConnectionResetError(_cut_short(response))
                parser.feed_data(view[:count])  # httptools copies what it hands on: the buffer is free after
        except httptools.HttpParserUpgrade:
            response.keep_alive = False  # a 101 nobody asked for: the connection speaks something else now
        finally:
            del response.parser  # no reference cycle left for the GC
            if len(_POOL) < POOL_KEEP:
                _POOL.append((buffer, view))
        status = parser.get_status_code()
        if not response.keep_alive or not (response.framed or status in NO_BODY_STATUSES):
            self.close()
        return status, b"".join(response.body), response.content_type

    def close(self) -> None:
        if self.sock is not None:
            self.poller.unregister(self.sock)
            self.sock.close()
            self.sock = None


def host_header(host: str, port: int) -> str:
    """The Host header's value: an IPv6 literal goes in brackets, as in the URL."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _cut_short(response: _Response) -> str:
    """Why a read ended early, for the `read` error's message."""
    if response.headers_done:
        return "connection closed mid-body"
    return "connection closed before the response ended"


class HttpClient:
    """A simulated user's connection to the target; `call` times one request and records one Sample."""

    def __init__(
        self,
        base_url: str,
        user: int,
        record: Callable[[Sample], None],
        *,
        timeout_s: float,
        connect_timeout_s: float,
        gauge: InflightGauge | None = None,
        limiter=None,
    ) -> None:
        scheme, host, port, prefix = parse_base_url(base_url)
        self.prefix = quote_target(prefix)
        self.connection = Connection(scheme, host, port, timeout_s, connect_timeout_s)
        self.user, self.record, self.gauge, self.limiter = user, record, gauge or InflightGauge(), limiter
        self.headers: dict[str, str] = Headers()  # sent with every request (e.g. Authorization), checked once
        self.intended_ns: int | None = None  # open model: the next call's scheduled start (perf_counter_ns)

    def call(
        self,
        name: str,
        method: str,
        path: str,
        *,
        query: dict | None = None,
        form: dict | None = None,
        json=None,
        headers: dict | None = None,
        expect=OK_STATUSES,
        check: Check | None = None,
        intended_ns: int | None = None,
    ) -> Reply:
        """Send one request, record exactly one Sample, return the Reply (never raises for target faults)."""
        url = self.prefix + quote_target(path) + ("?" + urlencode(query) if query else "")
        body, header_lines = _encode(form, json, self.headers, headers)
        # the open model waits from the arrival's intended start; a --max-concurrent slot from this call
        wait_start_ns = intended_ns or self.intended_ns
        self.intended_ns = None  # an arrival's intended start belongs to its first request only
        if self.limiter is not None:
            wait_start_ns = wait_start_ns or time.perf_counter_ns()
            self.limiter.acquire()
        try:
            reply, sample = self._send(name, method, url, body, header_lines, wait_start_ns)
        finally:
            if self.limiter is not None:
                self.limiter.release()
        error, message = _judge(reply, expect, check)
        self.record(sample._replace(error=error, message=message) if error else sample)
        return (
            reply
            if reply.error == error
            else Reply(reply.status, reply.body, reply.content_type, error, reply.latency_us)
        )

    def _send(self, name, method, url, body, header_lines, wait_start_ns) -> tuple[Reply, Sample]:
        with self.gauge if method != "GET" else _NO_GAUGE as inflight:
            start_s, start_ns = time.time(), time.perf_counter_ns()
            error = ""
            try:
                status, data, content_type = self.connection.request(method, url, header_lines, body)
            except ConnectFailed as exc:
                status, data, content_type, error = 0, exc.message.encode(), "text/plain", exc.kind
            except httptools.HttpParserError as exc:
                status, data, content_type, error = (
                    0,
                    f"malformed response: {exc}".encode(),
                    "text/plain",
                    "read",
                )
            except Exception as exc:  # classify_exception re-raises anything that is not a network fault
                error, message = classify_exception(exc)
                status, data, content_type = 0, message.encode(), "text/plain"
            end_ns = time.perf_counter_ns()
        latency_us = (end_ns - start_ns) // 1000
        reply = Reply(status, data, content_type, error, latency_us)
        sample = Sample(
            name,
            status,
            error,
            data.decode() if error else "",
            latency_us,
            start_s,
            self.user,
            max(0, start_ns - wait_start_ns) // 1000 if wait_start_ns else 0,
            inflight,
        )
        return reply, sample

    def close(self) -> None:
        self.connection.close()


def _encode(form, json, headers: dict, extra: dict | None) -> tuple[bytes | None, str]:
    """The body and the request's own header lines (the connection adds Host, User-Agent and the length)."""
    if extra:
        for name, value in extra.items():
            check_header(name, value)
        headers = {**headers, **extra}  # a call's own header replaces the user's of the same name
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) if headers else ""
    if form is not None:
        return urlencode(form).encode(), lines + "Content-Type: application/x-www-form-urlencoded\r\n"
    if json is not None:
        return jsonlib.dumps(json).encode(), lines + "Content-Type: application/json\r\n"
    return None, lines


def _judge(reply: Reply, expect, check: Check | None) -> tuple[str, str]:
    """The error class and message of a reply: no response, an unexpected status, or the caller's check."""
    if reply.error:
        return reply.error, reply.body.decode()
    if check is not None:
        verdict = check(reply)
        if verdict:
            return verdict
    if reply.status not in expect:
        return classify_status(reply.status), body_message(reply.body, reply.content_type)
    return "", ""


def check_reachable(base_url: str, timeout_s: float = REACHABLE_TIMEOUT_S) -> None:
    """Any HTTP answer will do; no answer within the timeout raises TargetUnreachable."""
    client = HttpClient(base_url, -1, lambda sample: None, timeout_s=timeout_s, connect_timeout_s=timeout_s)
    try:
        reply = client.call("GET /", "GET", "/", expect=range(100, 600))
    finally:
        client.close()
    if reply.error:
        why = {
            "connect": "nothing accepts connections there",
            "timeout": f"no answer within {timeout_s:g} s",
            "read": "the connection broke or the answer was not HTTP",
        }
        raise TargetUnreachable(
            f"target {base_url} is unreachable ({why.get(reply.error, reply.body.decode())}): "
            "start the server or fix --base-url"
        )
