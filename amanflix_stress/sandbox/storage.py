"""SQLite engine per storage mode, the per-request connection, and the commit helpers that decide locks."""

from __future__ import annotations

import threading
import time
import weakref
from typing import TypeGuard

from flask import current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

from . import schema, serverlog

POOL_SIZE, POOL_OVERFLOW, POOL_TIMEOUT_S = 5, 10, 30  # Flask-SQLAlchemy defaults upstream runs with
LOCK_RETRIES = 4  # upstream safe_commit: up to 4 tries ...
LOCK_RETRY_BASE_S, LOCK_RETRY_MAX_S = 0.1, 1.0  # ... 0.1 s, 0.2 s, 0.4 s apart (doubling, capped at 1 s)


def retry_delay_s(attempt: int) -> float:
    """Upstream's pause after failed attempt `attempt` (0-based)."""
    return min(LOCK_RETRY_BASE_S * 2**attempt, LOCK_RETRY_MAX_S)


def is_locked(exc: BaseException) -> TypeGuard[OperationalError]:
    """True for SQLite's 'database is locked' / 'database table is locked'."""
    return isinstance(exc, OperationalError) and "is locked" in str(exc.orig)


def _pragmas(mode: str):
    journal, fks = ("WAL", "ON") if mode == "fixed" else ("DELETE", "OFF")

    def on_connect(dbapi_conn, _record):
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA journal_mode={journal}")
        cursor.execute(f"PRAGMA foreign_keys={fks}")
        cursor.close()

    return on_connect


def make_engine(db_path: str, mode: str, busy_timeout_s: float):
    """A pysqlite engine with upstream's pool; journal mode and FK enforcement depend on `mode`."""
    engine = create_engine(
        f"sqlite:///{db_path}",
        poolclass=QueuePool,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
    )
    event.listen(engine, "connect", _pragmas(mode))
    return engine


def create_schema(engine, mode: str) -> None:
    """Create missing tables; `fixed` mode also gets the unique watch-history key."""
    schema.metadata.create_all(engine)
    if mode == "fixed":
        with engine.begin() as conn:
            conn.exec_driver_sql(schema.UNIQUE_WATCH_HISTORY)


class Store:
    """Owns the engine and applies the mode's commit policy; counts lock events and lost writes in `truth`
    and logs each retried commit attempt to the server log as upstream's safe_commit does."""

    def __init__(self, engine, mode: str, truth, log):
        self.engine, self.mode, self.truth, self.log = engine, mode, truth, log
        self._writer = threading.Lock()  # `fixed`: one writer at a time inside this process
        self._in_flight = threading.Condition()
        self.writes_in_flight = 0  # requests inside write(): under a held lock, all are waiting on it
        self._counted: weakref.WeakSet[OperationalError] = weakref.WeakSet()  # lock errors already counted

    def write(self, conn, endpoint: str, work):
        """Run work(conn) and commit like upstream's safe_commit. Returns (persisted, result of work).

        upstream: a lock rolls back, sleeps, commits the now-empty transaction: the change is lost, reported
        as success. strict: a lock is raised (HTTP 500 naming 'database is locked').
        fixed: serialised, replayed.
        """
        self._entered(+1)
        try:
            if self.mode == "fixed":
                return True, self._serialised(conn, endpoint, work)
            return self._write_once(conn, endpoint, work)
        finally:
            self._entered(-1)

    def _write_once(self, conn, endpoint: str, work):
        try:
            result = work(conn)
            conn.commit()
            return True, result
        except OperationalError as exc:
            conn.rollback()
            if not is_locked(exc):
                self.log.record("ERROR", serverlog.NON_LOCKING_SOURCE, f"Database error (non-locking): {exc}")
                raise
            if self.mode == "strict":
                self.count_lock(exc, endpoint)
                raise
            self.count_lock(exc, endpoint, retried=True)
        except SQLAlchemyError as exc:  # e.g. an IntegrityError: upstream logs it and answers its JSON 500
            conn.rollback()
            self.log.record("ERROR", serverlog.COMMIT_ERROR_SOURCE, f"Unexpected error during commit: {exc}")
            raise
        except Exception:
            conn.rollback()
            raise
        self._commit_nothing(conn)
        self.truth.lost_write(endpoint)
        return False, None

    def write_direct(self, conn, endpoint: str, work):
        """A direct commit, no helper (notifications): a lock is an unhandled error except in `fixed`."""
        if self.mode == "fixed":
            return self._serialised(conn, endpoint, work)
        try:
            result = work(conn)
            conn.commit()
            return result
        except OperationalError as exc:
            conn.rollback()
            if is_locked(exc):
                self.count_lock(exc, endpoint)
            raise
        except Exception:
            conn.rollback()
            raise

    def _serialised(self, conn, endpoint: str, work):
        with self._writer:
            for attempt in range(LOCK_RETRIES):
                try:
                    result = work(conn)
                    conn.commit()
                    return result
                except OperationalError as exc:
                    conn.rollback()
                    if not is_locked(exc):
                        raise
                    if attempt == LOCK_RETRIES - 1:
                        self._log_gave_up()
                        raise
                    self.count_lock(exc, endpoint, retried=True)
                    self._pause_after_lock(attempt)
                except Exception:
                    conn.rollback()
                    raise

    def _commit_nothing(self, conn) -> None:
        """Upstream's remaining tries after a locked first attempt (attempt 0)."""
        for attempt in range(LOCK_RETRIES - 1):
            self._pause_after_lock(attempt)
            try:
                conn.commit()  # the rollback emptied the transaction: this "succeeds" and saves nothing
                return
            except OperationalError:
                conn.rollback()
        self._log_gave_up()

    def _pause_after_lock(self, attempt: int) -> None:
        delay_s = retry_delay_s(attempt)
        self.log.record(
            "WARNING", serverlog.SAFE_COMMIT_SOURCE, serverlog.lock_retry_line(attempt + 1, delay_s)
        )
        time.sleep(delay_s)  # upstream's own back-off, not a wait for a test

    def _log_gave_up(self) -> None:
        message = f"safe_commit failed after {LOCK_RETRIES} attempts"
        self.log.record("ERROR", serverlog.SAFE_COMMIT_FAILED_SOURCE, message)

    def _entered(self, step: int) -> None:
        with self._in_flight:
            self.writes_in_flight += step
            self._in_flight.notify_all()

    def wait_for_writes(self, count: int, timeout_s: float) -> bool:
        """Block until at least `count` requests are inside write() (e.g. queued behind a held lock)."""
        with self._in_flight:
            return self._in_flight.wait_for(lambda: self.writes_in_flight >= count, timeout_s)

    def count_lock(self, exc: OperationalError, endpoint: str, retried: bool = False) -> None:
        if exc not in self._counted:
            self.truth.lock_event(endpoint, retried)
            self._counted.add(exc)


def count_unhandled_lock(exc: BaseException, endpoint: str) -> None:
    """Count a lock error that escaped to the error page without passing through a helper."""
    if is_locked(exc):
        sandbox().store.count_lock(exc, endpoint)


def sandbox():
    """The running sandbox's shared state (see app.SandboxState)."""
    return current_app.extensions["amanflix_sandbox"]


def db():
    """The request's connection: checked out of the pool on first use, returned at teardown."""
    if "sandbox_db" not in g:
        g.sandbox_db = sandbox().store.engine.connect()
    return g.sandbox_db


def release_db(_exc=None) -> None:
    conn = g.pop("sandbox_db", None)
    if conn is not None:
        conn.close()


def endpoint_name() -> str:
    """The endpoint template, e.g. 'POST /api/watch-history/update' (never the raw URL)."""
    from flask import request

    rule = request.url_rule.rule if request.url_rule else request.path
    return f"{request.method} {rule}"
