"""SQLite engine per storage mode, the per-request connection and the commit helpers that decide lock behaviour."""

from __future__ import annotations

import threading
import time

from flask import current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool

from . import schema

POOL_SIZE, POOL_OVERFLOW, POOL_TIMEOUT_S = 5, 10, 30  # Flask-SQLAlchemy defaults upstream runs with
LOCK_RETRIES = 4  # upstream safe_commit: up to 4 tries ...
LOCK_RETRY_SLEEP_S = 0.1  # ... 0.1 s apart


def is_locked(exc: BaseException) -> bool:
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
    """Owns the engine and applies the mode's commit policy; counts lock events and lost writes in `truth`."""

    def __init__(self, engine, mode: str, truth):
        self.engine, self.mode, self.truth = engine, mode, truth
        self._writer = threading.Lock()  # `fixed`: one writer at a time inside this process

    def write(self, conn, endpoint: str, work):
        """Run work(conn) and commit like upstream's safe_commit. Returns (persisted, result of work).

        upstream: a lock rolls back, sleeps, commits the now-empty transaction: the change is lost, reported as success.
        strict: a lock is raised (HTTP 500 naming 'database is locked'). fixed: serialised, replayed on a lock.
        """
        if self.mode == "fixed":
            return True, self._serialised(conn, endpoint, work)
        try:
            result = work(conn)
            conn.commit()
            return True, result
        except OperationalError as exc:
            conn.rollback()
            if not is_locked(exc):
                raise
            self.count_lock(exc, endpoint)
            if self.mode == "strict":
                raise
        except Exception:
            conn.rollback()
            raise
        self._commit_nothing(conn)
        self.truth.lost_write(endpoint)
        return False, None

    def write_direct(self, conn, endpoint: str, work):
        """A direct commit without the helper (notifications): a lock is an unhandled error except in `fixed`."""
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
                    if not is_locked(exc) or attempt == LOCK_RETRIES - 1:
                        raise
                    self.count_lock(exc, endpoint)
                    time.sleep(LOCK_RETRY_SLEEP_S)
                except Exception:
                    conn.rollback()
                    raise

    def _commit_nothing(self, conn) -> None:
        for _ in range(LOCK_RETRIES):
            time.sleep(LOCK_RETRY_SLEEP_S)
            try:
                conn.commit()  # the rollback emptied the transaction: this "succeeds" and saves nothing
                return
            except OperationalError:
                conn.rollback()

    def count_lock(self, exc: BaseException, endpoint: str) -> None:
        if not getattr(exc, "sandbox_counted", False):
            self.truth.lock_event(endpoint)
            exc.sandbox_counted = True


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
