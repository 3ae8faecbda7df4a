"""Fixtures: real sandbox servers on 127.0.0.1 port 0 and a tiny client for them."""

from __future__ import annotations

import itertools
import re

import pytest
import requests

from amanflix_stress.sandbox import SandboxConfig, start_sandbox

FAST_HASH = 1000  # PBKDF2 iterations: keep registrations cheap in tests
TIMEOUT = (3.0, 20.0)
_names = itertools.count()


class Api:
    """requests against one sandbox; no retries, always a timeout."""

    def __init__(self, server):
        self.server, self.url = server, server.url
        self.http = requests.Session()
        self.http.trust_env = False

    def call(self, method: str, path: str, token: str | None = None, headers=None, **kwargs):
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.url + path, headers=headers, timeout=TIMEOUT, **kwargs)

    def get(self, path, token=None, **kw):
        return self.call("GET", path, token, **kw)

    def post(self, path, token=None, **kw):
        return self.call("POST", path, token, **kw)

    def register(self, password: str = "pw") -> tuple[str, str]:
        """A fresh user: (username, token)."""
        name = f"user{next(_names)}"
        resp = self.post("/api/auth/register", data={"username": name, "password": password})
        assert resp.status_code == 200, resp.text
        return name, resp.json()["api_key"]

    def admin_token(self) -> str:
        form = {"username": self.server.admin_username, "password": self.server.admin_password}
        resp = self.post("/api/admin/login", data=form)
        assert resp.status_code == 200, resp.text
        return resp.json()["api_key"]

    def watch(self, token: str, content_id: int, ts: float, duration: float = 100.0, **extra):
        body = {
            "content_id": content_id,
            "content_type": "movie",
            "watch_timestamp": ts,
            "total_duration": duration,
            **extra,
        }
        return self.post("/api/watch-history/update", token, json=body)


# Werkzeug's generic 500 page, byte for byte as measured on the real server, debug off (amanflix-api.md §7)
GENERIC_500_BODY = (
    b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
    b"<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable to complete "
    b"your request. Either the server is overloaded or there is an error in the application.</p>\n"
)
LOCK_RETRY_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[WARNING\] ⚠ \[db_utils\.py:153\] "
    r"Database locked during commit, attempt 1, retrying in 0\.10s$"
)


def is_generic_page(resp) -> bool:
    """Werkzeug's generic 500 page, which names no exception."""
    return (
        resp.status_code == 500
        and resp.headers["Content-Type"] == "text/html; charset=utf-8"
        and resp.content == GENERIC_500_BODY
    )


def is_500_page(resp, debug: bool, exception_prefix: str) -> bool:
    """The page a sandbox with this debug setting serves for an unhandled exception."""
    return is_debug_page(resp, exception_prefix) if debug else is_generic_page(resp)


def server_log(server) -> str:
    with open(server.server_log_path, encoding="utf-8") as handle:
        return handle.read()


def lock_retry_lines(server) -> list[str]:
    """The server log's 'Database locked during commit' lines; each must be in upstream's exact format."""
    lines = [line for line in server_log(server).splitlines() if "Database locked during commit" in line]
    assert all(LOCK_RETRY_LINE.match(line) for line in lines), lines
    return lines


def is_debug_page(resp, exception_prefix: str) -> bool:
    """A 500 Werkzeug-debugger-style page whose <title> starts with `exception_prefix`."""
    return (
        resp.status_code == 500
        and resp.headers["Content-Type"].startswith("text/html")
        and f"<title>{exception_prefix}" in resp.text
        and "The console is locked" in resp.text
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("sandbox") / "amanflix.db"
    # debug on: these contract tests read the exception the debugger page names (test_errors covers off)
    with start_sandbox(SandboxConfig(db_path=str(db), hash_iterations=FAST_HASH, debug=True)) as srv:
        yield srv


@pytest.fixture(scope="session")
def api(server):
    return Api(server)


@pytest.fixture
def token(api):
    return api.register()[1]


@pytest.fixture(scope="session")
def admin(api):
    return api.admin_token()
