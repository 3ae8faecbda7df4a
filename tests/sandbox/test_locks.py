"""Lock behaviour per mode and debug setting, made deterministic by holding a real SQLite lock outside."""

import contextlib
import sqlite3

import pytest

from amanflix_stress.sandbox import SandboxConfig, start_sandbox, tokens

from .conftest import FAST_HASH, Api, is_500_page, lock_retry_lines, server_log

BUSY_S = 0.05
UPDATE = "POST /api/watch-history/update"
DEBUG = [pytest.param(True, id="debug-on"), pytest.param(False, id="debug-off")]


@contextlib.contextmanager
def held_lock(db_path: str, kind: str = "IMMEDIATE"):
    """IMMEDIATE = RESERVED (other writers blocked); EXCLUSIVE = readers blocked too (rollback journal)."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=5)
    conn.execute(f"BEGIN {kind}")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def sandbox_api(tmp_path, mode, debug):
    cfg = SandboxConfig(
        mode=mode,
        db_path=str(tmp_path / f"{mode}.db"),
        busy_timeout_s=BUSY_S,
        hash_iterations=FAST_HASH,
        debug=debug,
    )
    return start_sandbox(cfg)


@pytest.fixture(params=DEBUG)
def upstream(tmp_path, request):
    with sandbox_api(tmp_path, "upstream", request.param) as srv:
        yield Api(srv)


@pytest.fixture(params=DEBUG)
def strict(tmp_path, request):
    with sandbox_api(tmp_path, "strict", request.param) as srv:
        yield Api(srv)


def test_upstream_lost_update_answers_200_with_the_old_values(upstream):
    _, token = upstream.register()
    upstream.watch(token, 550, 10)
    with held_lock(upstream.server.db_path):
        resp = upstream.watch(token, 550, 20)
    assert resp.status_code == 200 and resp.json()["watch_timestamp"] == 10
    assert upstream.get("/api/watch-history/get/movie/550", token).json()["watch_timestamp"] == 10
    truth = upstream.server.truth()
    assert truth["lost_writes_by_endpoint"] == {UPDATE: 1} and truth["lock_events"] == 1
    assert len(lock_retry_lines(upstream.server)) == truth["lock_events_in_commit_helper"] == 1


def test_upstream_lost_first_insert_is_the_isoformat_500(upstream):
    _, token = upstream.register()
    with held_lock(upstream.server.db_path):
        resp = upstream.watch(token, 550, 20)
    message = "AttributeError: &#x27;NoneType&#x27; object has no attribute &#x27;isoformat&#x27;"
    assert is_500_page(resp, upstream.server.debug, message)
    assert upstream.get("/api/watch-history/get/movie/550", token).status_code == 404
    log = server_log(upstream.server)
    assert log.rstrip().endswith("AttributeError: 'NoneType' object has no attribute 'isoformat'")
    assert ("ERROR in app: Exception on /api/watch-history/update [POST]" in log) is not upstream.server.debug


def test_upstream_lost_mylist_add_and_logout_still_say_ok(upstream):
    _, token = upstream.register()
    upstream.get("/api/auth/profile", token)  # warm the token caches
    with held_lock(upstream.server.db_path):
        added = upstream.post("/api/mylist/add", token, data={"content_type": "movie", "content_id": "13"})
        logout = upstream.post("/api/auth/logout", token)
    assert added.status_code == 200 and logout.status_code == 200
    assert upstream.server.truth()["lost_writes"] == 2
    assert upstream.post("/api/auth/logout", token).json()["error_reason"] == "user_logged_out"  # cache only


def test_upstream_lost_register_gives_a_token_for_user_none(upstream):
    with held_lock(upstream.server.db_path):
        resp = upstream.post("/api/auth/register", data={"username": "ghost", "password": "pw"})
    assert resp.status_code == 200 and tokens.decode(resp.json()["api_key"])["sub"] == "None"
    assert upstream.get("/api/auth/profile", resp.json()["api_key"]).json()["error_reason"] == "auth_error"
    assert upstream.server.truth()["users_registered"] == 0


def test_upstream_direct_commit_lock_is_an_operational_error_page(upstream):
    _, token = upstream.register()
    upstream.get("/api/notifications", token)
    with held_lock(upstream.server.db_path):
        resp = upstream.call("PUT", "/api/notifications/read-all", token)
    prefix = "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked"
    assert is_500_page(resp, upstream.server.debug, prefix)
    truth = upstream.server.truth()
    assert truth["lock_events_by_endpoint"] == {"PUT /api/notifications/read-all": 1}
    assert truth["lock_events_in_commit_helper"] == 0 and lock_retry_lines(upstream.server) == []
    assert "sqlite3.OperationalError: database is locked" in server_log(upstream.server)


def test_lock_during_a_cold_token_check_is_a_500_auth_error(upstream):
    _, token = upstream.register()
    with held_lock(upstream.server.db_path, "EXCLUSIVE"):
        resp = upstream.get("/api/auth/profile", token)
    assert resp.status_code == 500  # JSON in both debug settings: the token check catches it
    assert resp.json() == {"message": "Authentication error", "error_reason": "auth_error"}
    assert upstream.server.truth()["lock_events"] == 1
    assert "[ERROR] ✗ [utils.py:219] Unexpected error in token_required: (sqlite3.OperationalError) " + (
        "database is locked"
    ) in server_log(upstream.server)


def test_reads_under_an_exclusive_hold_are_500_pages(upstream):
    _, token = upstream.register()
    upstream.get("/api/auth/profile", token)  # warm the token caches: the route's own read fails
    with held_lock(upstream.server.db_path, "EXCLUSIVE"):
        resp = upstream.get("/api/watch-history/get/movie/550", token)
    prefix = "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked"
    assert is_500_page(resp, upstream.server.debug, prefix)
    assert upstream.server.truth()["lock_events"] == 1


def test_log_counts_exactly_the_commit_helper_locks(upstream):
    """Helper locks (update, my-list add, register) each log one WARNING; a direct commit and a token check
    lock count in the truth but log none."""
    _, token = upstream.register()
    _, cold = upstream.register()
    upstream.watch(token, 550, 10)
    upstream.get("/api/notifications", token)
    with held_lock(upstream.server.db_path):
        upstream.watch(token, 550, 20)
        upstream.post("/api/mylist/add", token, data={"content_type": "movie", "content_id": "13"})
        upstream.post("/api/auth/register", data={"username": "ghost", "password": "pw"})
        upstream.call("PUT", "/api/notifications/read-all", token)
    with held_lock(upstream.server.db_path, "EXCLUSIVE"):
        upstream.get("/api/auth/profile", cold)
    truth = upstream.server.truth()
    assert truth["lock_events"] == 5 and truth["lock_events_in_commit_helper"] == 3
    assert len(lock_retry_lines(upstream.server)) == truth["lock_events_in_commit_helper"]


def test_strict_mode_surfaces_the_lock(strict):
    _, token = strict.register()
    strict.watch(token, 550, 10)
    with held_lock(strict.server.db_path):
        resp = strict.watch(token, 550, 20)
    assert is_500_page(
        resp, strict.server.debug, "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError)"
    )
    assert "database is locked" in server_log(strict.server)
    assert strict.server.truth()["lost_writes"] == 0 and strict.server.truth()["lock_events"] == 1
