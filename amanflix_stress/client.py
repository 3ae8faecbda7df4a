"""The measured HTTP call: one urllib3 connection pool per simulated user, one Sample per request."""
from __future__ import annotations

import json as jsonlib
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlencode, urlsplit

import urllib3

from .classify import body_message, classify_exception, classify_status
from .sample import Sample

Check = Callable[["Reply"], "tuple[str, str] | None"]
OK_STATUSES = range(200, 300)


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
        raise ValueError(f"{base_url!r} is not an http:// or https:// URL with a host, e.g. http://127.0.0.1:5001")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValueError(f"{base_url!r} has a bad port: {exc}") from None
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


class HttpClient:
    """A simulated user's connection to the target; `call` times one request and records one Sample."""

    def __init__(self, base_url: str, user: int, record: Callable[[Sample], None], *, timeout_s: float,
                 connect_timeout_s: float, gauge: InflightGauge | None = None, limiter=None) -> None:
        scheme, host, port, self.prefix = parse_base_url(base_url)
        pool_class = urllib3.HTTPSConnectionPool if scheme == "https" else urllib3.HTTPConnectionPool
        self.pool = pool_class(host, port, maxsize=1, block=False, retries=False,
                               timeout=urllib3.Timeout(connect=connect_timeout_s, read=timeout_s))
        self.user, self.record, self.gauge, self.limiter = user, record, gauge or InflightGauge(), limiter
        self.headers: dict[str, str] = {}  # sent with every request (e.g. Authorization)

    def call(self, name: str, method: str, path: str, *, query: dict | None = None, form: dict | None = None,
             json=None, headers: dict | None = None, expect=OK_STATUSES, check: Check | None = None,
             intended_ns: int | None = None) -> Reply:
        """Send one request, record exactly one Sample, and return the Reply (never raises for the target's faults)."""
        url = self.prefix + path + ("?" + urlencode(query) if query else "")
        body, all_headers = _encode(form, json, {**self.headers, **(headers or {})})
        wait_start_ns = intended_ns or time.perf_counter_ns()
        if self.limiter is not None:
            self.limiter.acquire()
        try:
            reply, sample = self._send(name, method, url, body, all_headers, wait_start_ns)
        finally:
            if self.limiter is not None:
                self.limiter.release()
        error, message = _judge(reply, expect, check)
        self.record(sample._replace(error=error, message=message) if error else sample)
        return reply if reply.error == error else Reply(reply.status, reply.body, reply.content_type, error,
                                                        reply.latency_us)

    def _send(self, name, method, url, body, headers, wait_start_ns) -> tuple[Reply, Sample]:
        with (self.gauge if method != "GET" else _NO_GAUGE) as inflight:
            start_s, start_ns = time.time(), time.perf_counter_ns()
            try:
                response = self.pool.urlopen(method, url, body=body, headers=headers, redirect=False,
                                             retries=False, preload_content=True)
                reply = Reply(response.status, response.data, response.headers.get("Content-Type", ""))
            except Exception as exc:  # classify_exception re-raises anything that is not a network fault
                error, message = classify_exception(exc)
                reply = Reply(0, message.encode(), "text/plain", error)
            end_ns = time.perf_counter_ns()
        latency_us = (end_ns - start_ns) // 1000
        reply = Reply(reply.status, reply.body, reply.content_type, reply.error, latency_us)
        sample = Sample(name, reply.status, reply.error, reply.body.decode() if reply.error else "",
                        latency_us, start_s, self.user, max(0, start_ns - wait_start_ns) // 1000, inflight)
        return reply, sample

    def close(self) -> None:
        self.pool.close()


def _encode(form, json, headers) -> tuple[bytes | None, dict]:
    if form is not None:
        return urlencode(form).encode(), {**headers, "Content-Type": "application/x-www-form-urlencoded"}
    if json is not None:
        return jsonlib.dumps(json).encode(), {**headers, "Content-Type": "application/json"}
    return None, headers


def _judge(reply: Reply, expect, check: Check | None) -> tuple[str, str]:
    """The error class and message of a reply: no response, an unexpected status, or the caller's own check."""
    if reply.error:
        return reply.error, reply.body.decode()
    if check is not None:
        verdict = check(reply)
        if verdict:
            return verdict
    if reply.status not in expect:
        return classify_status(reply.status), body_message(reply.body, reply.content_type)
    return "", ""
