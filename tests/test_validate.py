"""`validate`: each line is what happened, checked against the sandbox and a server in maintenance mode."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from amanflix_stress.cli import main
from amanflix_stress.sandbox import SandboxConfig, start_sandbox

FAST_HASH = 1000
SLOW_HASH = 400_000  # PBKDF2 iterations: a registration takes ~0.15 s, far beyond a 0.02 s timeout
GENERIC_500 = (  # Werkzeug's page with debug off (contract §7)
    b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
    b"<h1>Internal Server Error</h1>"
)
MAINTENANCE = {
    "error": "service_unavailable",
    "message": "We are moving to a bigger database.",
    "title": "Scheduled maintenance",
    "estimated_downtime": "30 minutes",
    "maintenance_mode": True,
}


@pytest.fixture
def no_admin_env(monkeypatch):
    monkeypatch.delenv("AMANFLIX_ADMIN_USER", raising=False)
    monkeypatch.delenv("AMANFLIX_ADMIN_PASSWORD", raising=False)


def lines(capsys) -> dict[str, str]:
    """check name -> its line, after asserting the output is only check lines (no traceback, no b'...')."""
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "b'" not in captured.out and 'b"' not in captured.out
    found = dict(re.fullmatch(r"[✓✗] ([a-z ]+): .*", line).group(1, 0) for line in captured.out.splitlines())
    return found


def test_an_account_registered_behind_a_timeout_is_found_and_removed(no_admin_env, capsys):
    with start_sandbox(SandboxConfig(mode="fixed", hash_iterations=SLOW_HASH)) as srv:
        assert main(["validate", "--base-url", srv.url, "--timeout", "0.02"]) == 6
        truth = srv.truth()
    out = lines(capsys)
    assert out["registration"].startswith("✗ registration: POST /api/auth/register answered nothing (timeout")
    assert re.fullmatch(
        r"✓ cleanup: test account amfxval[0-9a-f]{8} \(created although the registration got no answer\) "
        r"deleted by itself .*; it no longer logs in",
        out["cleanup"],
    )
    assert truth["users_registered"] == 1 and truth["users_in_db"] == 0


def test_wrong_admin_credentials_are_a_failed_check_and_cleanup_still_happens(monkeypatch, capsys):
    with start_sandbox(SandboxConfig(mode="fixed", hash_iterations=FAST_HASH)) as srv:
        monkeypatch.setenv("AMANFLIX_ADMIN_USER", srv.admin_username)
        monkeypatch.setenv("AMANFLIX_ADMIN_PASSWORD", "not-" + srv.admin_password)
        assert main(["validate", "--base-url", srv.url]) == 6
        truth = srv.truth()
    out = lines(capsys)
    assert out["admin"].startswith("✗ admin: POST /api/admin/login as superadmin answered 401 ")
    assert "run refuses these admin credentials (exit 2)" in out["admin"]
    assert srv.admin_password not in "".join(out.values())
    others = [name for name in out if name != "admin"]
    assert others == ["connectivity", "registration", "authentication", "content", "watch history", "cleanup"]
    assert all(out[name].startswith("✓") for name in others) and "deleted by itself" in out["cleanup"]
    assert truth["users_in_db"] == 0


def test_right_admin_credentials_are_a_passed_check_and_remove_the_rows(monkeypatch, capsys):
    with start_sandbox(SandboxConfig(mode="fixed", hash_iterations=FAST_HASH)) as srv:
        monkeypatch.setenv("AMANFLIX_ADMIN_USER", srv.admin_username)
        monkeypatch.setenv("AMANFLIX_ADMIN_PASSWORD", srv.admin_password)
        assert main(["validate", "--base-url", srv.url]) == 0
        truth = srv.truth()
    out = lines(capsys)
    assert len(out) == 7 and all(line.startswith("✓") for line in out.values())
    assert "admin batch delete" in out["cleanup"] and truth["orphan_watch_history_rows"] == 0


class Gate(BaseHTTPRequestHandler):
    """A server behind upstream's maintenance gate (contract §1): /api/service/status answers (or, on an older
    server, is missing), every other route is the 503 JSON; or, with `html500`, registration is the generic
    500 page of a server with debug off and logins are refused."""

    variant = "maintenance"

    def do_GET(self):
        if self.path == "/api/service/status" and self.variant != "no status":
            available = self.variant == "html500"
            status = {
                "service_enabled": available,
                "maintenance_mode": not available,
                "is_available": available,
            }
            status.update(maintenance_title=MAINTENANCE["title"], maintenance_message=MAINTENANCE["message"])
            return self.answer(200, json.dumps(status).encode())
        if self.variant == "html500" and self.path == "/api/auth/register":
            return self.answer(500, GENERIC_500, "text/html; charset=utf-8")
        if self.variant == "html500" and self.path == "/api/auth/login":
            return self.answer(401, b'{"message": "Login failed! Check your credentials."}')
        if self.variant == "html500":
            return self.answer(200, b"{}")
        return self.answer(503, json.dumps(MAINTENANCE).encode())

    do_POST = do_GET

    def answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def gate():
    servers = []

    def start(variant: str) -> str:
        handler = type("Handler", (Gate,), {"variant": variant})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_maintenance_mode_is_named_with_the_servers_title_and_message(gate, no_admin_env, capsys):
    assert main(["validate", "--base-url", gate("maintenance")]) == 6
    out = lines(capsys)
    assert out["connectivity"].endswith(
        'answered, but the service is in maintenance mode: "Scheduled maintenance": '
        "We are moving to a bigger database."
    )
    assert out["registration"] == "✗ registration: skipped: the connectivity check failed"
    assert out["cleanup"] == "✓ cleanup: nothing was created"


def test_a_503_from_the_maintenance_gate_is_the_servers_message_not_a_byte_dump(gate, no_admin_env, capsys):
    assert main(["validate", "--base-url", gate("no status")]) == 6
    out = lines(capsys)
    assert out["registration"] == (
        "✗ registration: POST /api/auth/register answered 503: the service is in maintenance mode: "
        '"Scheduled maintenance": We are moving to a bigger database. (estimated downtime 30 minutes)'
    )
    assert out["cleanup"] == "✓ cleanup: nothing was created: the maintenance gate refused the registration"


def test_a_generic_500_page_is_its_title_and_the_account_is_looked_for(gate, no_admin_env, capsys):
    assert main(["validate", "--base-url", gate("html500")]) == 6
    out = lines(capsys)
    assert out["registration"] == "✗ registration: POST /api/auth/register answered 500 Internal Server Error"
    assert re.fullmatch(
        r"✓ cleanup: nothing was created: the registration failed, and amfxval[0-9a-f]{8} cannot log in",
        out["cleanup"],
    )


@pytest.mark.parametrize("timeout", ["nan", "-1", "0", "inf", "soon"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(timeout, capsys):
    assert main(["validate", "--base-url", "http://127.0.0.1:9", "--timeout", timeout]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument --timeout: '{timeout}' is not a positive number" in err
