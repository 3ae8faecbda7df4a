"""Lock detection: signatures of SQLite lock failures, shown or hidden, and the run's lock-issue summary."""

from __future__ import annotations

import json
import re

from amanflix_stress.amanflix.records import InFlight, LockInterval, LockIssues, TopUser
from amanflix_stress.engine.classify import body_message
from amanflix_stress.engine.client import Reply

# Every error class that a database lock causes, shown or hidden, in the order the report lists them.
LOCK_CLASSES = (
    "db_locked",
    "pool_timeout",
    "auth_locked",
    "db_error",
    "lost_insert",
    "lost_update",
    "lost_write",
    "duplicate_rows",
    "phantom_registration",
    "lock_wait",
)
EXPLAIN = {
    "db_locked": "500 naming 'database is locked' (direct commits, strict servers)",
    "pool_timeout": "500 after 30 s: every pooled SQLite connection was held (QueuePool limit)",
    "auth_locked": "500 auth_error: the token check's database read was blocked by a writer",
    "db_error": "500 'due to database error' or another OperationalError: "
    "a commit failed, most often on a lock",
    "lost_insert": "first write of a title answered 500 NoneType.isoformat: the insert was rolled back",
    "lost_update": "200 echoing old values: the update was rolled back after a lock and silently lost",
    "lost_write": "a write answered 200 that a later read-back does not show",
    "duplicate_rows": "concurrent first writes created two rows for one title (no unique constraint)",
    "phantom_registration": "register answered 200 with a token for user 'None': "
    "the account was never stored",
    "lock_wait": "a write answered after about the server's busy timeout: it most likely waited on a lock "
    "(on the real server such writes of my list, analytics and profile were lost)",
}


_LOCKED = re.compile(rb"database (?:table )?is locked")
NOT_VERIFIABLE = (
    "analytics heartbeats and end-session, logout and profile updates have no safe read-back: "
    "only the lock_wait signature shows their losses"
)
LOCK_WAIT_EARLY_S = 0.2  # timers and clocks differ a little between the server and us


def explicit_lock(reply: Reply) -> tuple[str, str] | None:
    """A failure whose body says it was the database: checked on the whole body, never on 'locked' alone
    (the Werkzeug debugger prints 'The console is locked' on every error page)."""
    if reply.status < 500 or reply.status >= 600:
        return None
    body, message = reply.body, body_message(reply.body, reply.content_type)
    if _LOCKED.search(body):
        return "db_locked", message
    if b"QueuePool limit" in body:
        return "pool_timeout", message
    if b"NoneType" in body and b"isoformat" in body:  # quotes arrive HTML-escaped in several spellings
        return "lost_insert", message
    if b"OperationalError" in body:  # the database failed in another way (disk, schema): not a lock
        return "db_error", message
    if "json" in reply.content_type:
        data = _json(body)
        if data.get("error_reason") == "auth_error":
            return "auth_locked", message
        if "database error" in str(data.get("message", "")):
            return "db_error", message
    return None


def lock_wait(reply: Reply, lock_wait_s: float, tolerance_s: float) -> tuple[str, str] | None:
    """A successful write that took about the busy timeout waited on a lock (and may have lost its change)."""
    if lock_wait_s <= 0 or not 200 <= reply.status < 300:
        return None
    seconds = reply.latency_us / 1e6
    # the real server answers a failed lock wait after the busy timeout plus its 0.1 s retry: 5.0-5.5 s
    if lock_wait_s - LOCK_WAIT_EARLY_S <= seconds <= lock_wait_s + tolerance_s:
        return "lock_wait", f"write answered after {seconds:.1f} s (busy timeout {lock_wait_s:g} s)"
    return None


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def lock_summary(
    errors: list[dict],
    users_rows: list[dict],
    requests: int,
    timeline: list[dict],
    counters: dict,
    verified: dict,
) -> LockIssues:
    """The DATABASE LOCK ISSUES section as a record: totals by class, rate, endpoints, top users, timeline."""
    classes = {c: 0 for c in LOCK_CLASSES}
    endpoints: dict[str, dict[str, int]] = {}
    users: dict[int, int] = {}
    inflight: dict[str, list] = {}  # class -> [sum of writes in flight, max]
    for group in errors:
        if group["class"] not in classes:
            continue
        classes[group["class"]] += group["count"]
        sums = inflight.setdefault(group["class"], [0.0, 0])
        sums[0] += group["inflight_mean"] * group["count"]
        sums[1] = max(sums[1], group["inflight_max"])
        for name, n in group["endpoints"].items():
            endpoints.setdefault(name, {}).setdefault(group["class"], 0)
            endpoints[name][group["class"]] += n
    for row in users_rows:
        lock_errors = sum(n for c, n in row["errors"].items() if c in classes)
        if lock_errors:
            users[row["user"]] = lock_errors
    classes["duplicate_rows"] = counters.get("duplicate_rows", classes["duplicate_rows"])
    total = sum(classes.values())
    return LockIssues(
        detected=total > 0,
        total=total,
        by_class={c: n for c, n in classes.items() if n},
        explain={c: EXPLAIN[c] for c, n in classes.items() if n},
        writes_in_flight={
            c: InFlight(mean=round(s / classes[c], 1), max=m) for c, (s, m) in inflight.items()
        },
        lock_error_rate=round(total / requests, 6) if requests else 0.0,
        endpoints=dict(sorted(endpoints.items(), key=lambda kv: -sum(kv[1].values()))),
        top_users=tuple(
            TopUser(user=u, lock_errors=n) for u, n in sorted(users.items(), key=lambda kv: -kv[1])[:10]
        ),
        timeline=lock_timeline(timeline),
        verified=verified,
        not_verifiable=NOT_VERIFIABLE,
    )


def lock_timeline(timeline: list[dict]) -> tuple[LockInterval, ...]:
    """The time-series intervals that had lock issues, with their counts by lock class."""
    return tuple(
        LockInterval(
            interval=row["interval"],
            start_s=row["start_s"],
            end_s=row["end_s"],
            classes={c: row["errors"][c] for c in LOCK_CLASSES if row["errors"].get(c)},
        )
        for row in timeline
        if any(c in row["errors"] for c in LOCK_CLASSES)
    )
