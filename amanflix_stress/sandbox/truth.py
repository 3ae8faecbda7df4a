"""Ground truth: thread-safe counters of what the sandbox really did, plus facts read from the DB."""

from __future__ import annotations

import json
import threading
from collections import Counter

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

DUPLICATES_SQL = """
SELECT COUNT(*), COALESCE(SUM(n - 1), 0) FROM (
  SELECT COUNT(*) AS n FROM watch_history
  GROUP BY user_id, content_type, content_id, season_number, episode_number HAVING COUNT(*) > 1)
"""
ORPHANS_SQL = (
    'SELECT COUNT(*) FROM {table} WHERE user_id IS NOT NULL AND user_id NOT IN (SELECT id FROM "user")'
)


class Truth:
    """Counters updated by request threads; `snapshot` adds what the database says."""

    def __init__(self, mode: str, busy_timeout_s: float):
        self._lock = threading.Lock()
        self.mode, self.busy_timeout_s = mode, busy_timeout_s
        self.lock_events: Counter = Counter()
        self.lost_writes: Counter = Counter()
        self.lock_retries = 0  # locks the commit helper logged and retried: one WARNING line each
        self.users_registered = 0
        self.users_deleted = 0
        self.duplicates_created = (
            0  # rows inserted beside an existing row for the same title: survives deletes
        )

    def lock_event(self, endpoint: str, retried: bool = False) -> None:
        with self._lock:
            self.lock_events[endpoint] += 1
            self.lock_retries += retried

    def lost_write(self, endpoint: str) -> None:
        with self._lock:
            self.lost_writes[endpoint] += 1

    def duplicate_created(self) -> None:
        with self._lock:
            self.duplicates_created += 1

    def user_registered(self) -> None:
        with self._lock:
            self.users_registered += 1

    def user_deleted(self) -> None:
        with self._lock:
            self.users_deleted += 1

    def counters(self) -> dict:
        """The in-process counters as plain JSON-able values."""
        with self._lock:
            return {
                "mode": self.mode,
                "busy_timeout_s": self.busy_timeout_s,
                "lock_events": sum(self.lock_events.values()),
                "lock_events_by_endpoint": dict(self.lock_events),
                "lock_events_in_commit_helper": self.lock_retries,
                "lost_writes": sum(self.lost_writes.values()),
                "lost_writes_by_endpoint": dict(self.lost_writes),
                "users_registered": self.users_registered,
                "users_deleted": self.users_deleted,
                "duplicate_watch_history_rows_created": self.duplicates_created,
            }

    def snapshot(self, engine) -> dict:
        """Counters plus duplicate and orphan rows counted in the database right now."""
        result = self.counters()
        try:
            result.update(db_facts(engine))
        except SQLAlchemyError as exc:  # e.g. locked by an outside writer: report, don't fail
            result["db_error"] = str(exc).splitlines()[0]
        return result

    def write(self, path: str, engine) -> dict:
        """Write the snapshot as JSON to `path` and return it."""
        data = self.snapshot(engine)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        return data


def db_facts(engine) -> dict:
    """Duplicate watch-history groups/rows and rows left behind by deleted users."""
    with engine.connect() as conn:
        groups, extra = conn.execute(text(DUPLICATES_SQL)).one()
        orphan_wh = conn.execute(text(ORPHANS_SQL.format(table="watch_history"))).scalar_one()
        orphan_ml = conn.execute(text(ORPHANS_SQL.format(table="my_list"))).scalar_one()
        users = conn.execute(text('SELECT COUNT(*) FROM "user"')).scalar_one()
    return {
        "duplicate_watch_history_groups": groups,
        "duplicate_watch_history_rows": extra,
        "orphan_watch_history_rows": orphan_wh,
        "orphan_my_list_rows": orphan_ml,
        "users_in_db": users,
    }
