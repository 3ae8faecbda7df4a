"""Contract: generic 404 JSON, 405 HTML, headers every response carries, 500 pages with debug on and off."""

import re
import socket
import threading

import flask
import pytest
from werkzeug.serving import make_server

from amanflix_stress.sandbox import SandboxConfig, start_sandbox, storage
from amanflix_stress.sandbox.errors import debug_page, exception_title

from .conftest import FAST_HASH, GENERIC_500_BODY, Api, is_500_page, server_log


def test_unknown_url_is_the_json_404(api):
    resp = api.get("/api/definitely/not/here")
    assert resp.status_code == 404
    assert resp.json() == {
        "error": "The page you're looking for seems to have vanished into thin air.",
        "error_reason": "not_found",
    }


def test_wrong_method_is_html_405(api):
    resp = api.get("/api/auth/login")
    assert resp.status_code == 405 and resp.headers["Content-Type"].startswith("text/html")


def test_every_response_closes_the_connection_and_allows_cors(api, token):
    for resp in (api.get("/api/movies", token), api.get("/nope"), api.post("/api/auth/login", json={})):
        assert resp.headers["Connection"] == "close"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_debug_page_titles_like_werkzeug():
    try:
        None > 1  # noqa: B015
    except TypeError as exc:
        assert (
            exception_title(exc) == "TypeError: '>' not supported between instances of 'NoneType' and 'int'"
        )
        page = debug_page(exc).get_data(as_text=True)
        assert "// Werkzeug Debugger</title>" in page and "The console is locked" in page


# --- debug on and off: every unhandled 500 follows the setting; the JSON 500s stay JSON ---


def raw_get(url: str) -> tuple[bytes, dict, bytes]:
    """(status line, headers, body) exactly as the server sent them."""
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n".encode())
        data = b"".join(iter(lambda: conn.recv(65536), b""))
    head, body = data.split(b"\r\n\r\n", 1)
    status, *lines = head.split(b"\r\n")
    headers = dict(line.decode().split(": ", 1) for line in lines)
    return status, headers, body


@pytest.fixture(scope="module")
def real_flask_debug_off():
    """A minimal real Flask app with debug off, to compare the sandbox's generic page with Flask's own."""
    app = flask.Flask("reference")
    app.debug = False
    app.logger.disabled = True  # its 'Exception on ...' record is not what this test reads

    @app.get("/boom")
    def boom():
        raise KeyError("username")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture(params=[True, False], ids=["debug-on", "debug-off"], scope="module")
def any_debug(tmp_path_factory, request):
    db = tmp_path_factory.mktemp("debug") / "amanflix.db"
    cfg = SandboxConfig(db_path=str(db), hash_iterations=FAST_HASH, debug=request.param)
    with start_sandbox(cfg) as srv:
        yield Api(srv)


def test_debug_off_page_is_flasks_own_and_the_measured_one(real_flask_debug_off, tmp_path):
    cfg = SandboxConfig(db_path=str(tmp_path / "off.db"), hash_iterations=FAST_HASH, debug=False)
    with start_sandbox(cfg) as srv:
        sandbox = raw_get(srv.url + "/api/sandbox/raise-for-test")  # unknown: 404, a control
        assert sandbox[0] == b"HTTP/1.1 404 NOT FOUND"
        resp = Api(srv).post("/api/auth/login", data={"username": "x"})  # no password field: KeyError
    status, headers, body = raw_get(real_flask_debug_off + "/boom")
    assert status == b"HTTP/1.1 500 INTERNAL SERVER ERROR"
    assert body == GENERIC_500_BODY and resp.content == body
    assert resp.headers["Content-Type"] == headers["Content-Type"] == "text/html; charset=utf-8"
    assert (resp.status_code, resp.reason) == (500, "INTERNAL SERVER ERROR")


@pytest.mark.parametrize(
    "call, title",
    [
        (lambda api, tok: api.post("/api/auth/login", json={}), "KeyError: &#x27;username&#x27;"),
        (
            lambda api, tok: api.watch(tok, 550, 5, duration="long"),
            "TypeError: &#x27;&gt;&#x27; not supported",
        ),
    ],
    ids=["login-keyerror", "total-duration-typeerror"],
)
def test_unhandled_errors_follow_the_debug_setting(any_debug, call, title):
    resp = call(any_debug, any_debug.register()[1])
    assert is_500_page(resp, any_debug.server.debug, title)
    if not any_debug.server.debug:
        assert title.split(":")[0] not in resp.text  # the generic page names no exception


@pytest.mark.parametrize("debug", [True, False], ids=["debug-on", "debug-off"])
def test_pool_timeout_follows_the_debug_setting(tmp_path, monkeypatch, debug):
    monkeypatch.setattr(storage, "POOL_TIMEOUT_S", 0.2)  # read when the engine is made
    cfg = SandboxConfig(db_path=str(tmp_path / "pool.db"), hash_iterations=FAST_HASH, debug=debug)
    with start_sandbox(cfg) as srv:
        api = Api(srv)
        _, token = api.register()
        api.get("/api/auth/profile", token)  # warm the token caches: only the route needs a connection
        held = [srv.engine.connect() for _ in range(storage.POOL_SIZE + storage.POOL_OVERFLOW)]
        try:
            resp = api.get("/api/watch-history/get/movie/550", token)
        finally:
            for conn in held:
                conn.close()
    assert is_500_page(resp, debug, "sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10")


def test_json_500s_stay_json(any_debug):
    resp = any_debug.call("GET", "/api/auth/profile", headers={"Authorization": "no-space"})
    assert resp.status_code == 500 and resp.json() == {
        "message": "Authentication error",
        "error_reason": "auth_error",
    }


def test_the_log_has_flasks_error_record_only_with_debug_off(any_debug):
    any_debug.post("/api/auth/login", data={"password": "x"})
    log = server_log(any_debug.server)
    assert log.rstrip().endswith("KeyError: 'username'")
    record = re.compile(
        r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] ERROR in app: Exception on /api/auth/login \[POST\]\n"
        r"Traceback \(most recent call last\):$",
        re.M,
    )
    assert bool(record.search(log)) is not any_debug.server.debug
