"""Lock detection: SQLite lock failures' signatures, the evidence for each, and the run's lock summary."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from amanflix_stress.amanflix.records import (
    DataIntegrity,
    InFlight,
    LockInterval,
    LockIssues,
    SuspectedWait,
    TopUser,
)
from amanflix_stress.engine.classify import body_message
from amanflix_stress.engine.client import Reply

# Every error class a database lock causes, in the order the report lists them. `duplicate_rows` is a race,
# not a lock (DATA INTEGRITY), and `lock_wait` is no longer produced (a slow write is a suspected lock wait,
# not a failure): both stay in this tuple only so profiles whose thresholds name them still load.
LOCK_CLASSES = (
    "db_locked",
    "pool_timeout",
    "auth_locked",
    "db_error",
    "lost_insert",
    "lost_update",
    "lost_write",
    "phantom_registration",
    "duplicate_rows",
    "lock_wait",
)
NOT_LOCK_CAUSED = ("duplicate_rows", "lock_wait")
LOCK_CAUSED = tuple(c for c in LOCK_CLASSES if c not in NOT_LOCK_CAUSED)  # what the lock count counts
LOSS_CLASSES = ("lost_insert", "lost_update", "lost_write", "phantom_registration")
EXPLAIN = {
    "db_locked": "500 naming 'database is locked', or a bare 500 at the busy timeout (timing only)",
    "pool_timeout": "500 after 30 s: every pooled SQLite connection was held (QueuePool limit)",
    "auth_locked": "500 auth_error: the token check's database read was blocked by a writer",
    "db_error": "500 'due to database error' or another OperationalError: "
    "a commit failed, most often on a lock",
    "lost_insert": "first write of a title answered 500, and no row was stored (rolled back on a lock)",
    "lost_update": "200 echoing old values: the update was rolled back after a lock and silently lost",
    "lost_write": "a write answered 200 that a later read-back does not show",
    "phantom_registration": "register answered 200 with a token for user 'None': "
    "the account was never stored",
}

# Evidence levels: what proves an issue. Only the first two make a lock issue "found".
VERIFIED, SERVER_SAID, TIMING = "verified", "server-said", "timing"
EVIDENCE = (VERIFIED, SERVER_SAID, TIMING)
EVIDENCE_MEANS = {
    VERIFIED: "a read-back or the server's own echo proved the write missing",
    SERVER_SAID: "the answer's body names the cause",
    TIMING: "only the busy-timeout signature: a bare 500 after about the busy timeout",
}
# the evidence a class has when its message carries no tag (a check that names none)
CLASS_EVIDENCE = {c: VERIFIED for c in LOSS_CLASSES} | {
    c: SERVER_SAID for c in ("db_locked", "pool_timeout", "auth_locked", "db_error")
}

_LOCKED = re.compile(rb"database (?:table )?is locked")
LOCK_WAIT_EARLY_S = 0.2  # timers and clocks differ a little between the server and us
# the real server answered writes that met a lock up to 2.1 s after its 5 s busy timeout under load (its
# commit helper's retries plus queueing: 5.0-7.1 s, amanflix-api.md section 7)
LOCK_WAIT_LATE_S = 2.2
# the commit helper pauses 0.1 s after a locked commit before answering: a 500 that came this much after the
# busy timeout had tried to commit (a rolled-back insert); one sooner was refused before writing anything
COMMIT_RETRY_S = 0.05
SUSPECT_KEY = "suspected_lock_wait_ms"  # counter "<key>:<endpoint>:<latency bucket ms>"
UNVERIFIABLE_KEY = "unverifiable_writes"  # counter "<key>:<endpoint>"
SUSPECT_BUCKET_MS = 100


def tagged(evidence: str, message: str) -> str:
    """A lock verdict's message, led by its evidence level (it survives message grouping)."""
    return f"{evidence}: {message}"


def evidence_of(kind: str, message: str) -> str:
    """The evidence level of a lock issue, from its message's tag or its class."""
    head = message.split(":", 1)[0]
    return head if head in EVIDENCE else CLASS_EVIDENCE.get(kind, TIMING)


def explicit_lock(reply: Reply) -> tuple[str, str] | None:
    """A failure whose body says it was the database: checked on the whole body, never on 'locked' alone
    (the Werkzeug debugger prints 'The console is locked' on every error page)."""
    if reply.status < 500 or reply.status >= 600:
        return None
    body, message = reply.body, tagged(SERVER_SAID, body_message(reply.body, reply.content_type))
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


def busy_window_s(busy_timeout_s: float, tolerance_s: float) -> tuple[float, float] | None:
    """(low, high) seconds in which an answer carries the busy-timeout signature; None when switched off."""
    if busy_timeout_s <= 0:
        return None
    return max(0.0, busy_timeout_s - LOCK_WAIT_EARLY_S), busy_timeout_s + max(tolerance_s, LOCK_WAIT_LATE_S)


def in_window(reply: Reply, window: tuple[float, float] | None) -> bool:
    return window is not None and window[0] <= reply.latency_us / 1e6 <= window[1]


def timing_lock(reply: Reply, window: tuple[float, float] | None, write: bool) -> tuple[str, str] | None:
    """A bare 500 answered at the busy timeout: the database refused it, on timing alone (a suspicion)."""
    if reply.status != 500 or not in_window(reply, window):
        return None
    what = "a write nothing could verify" if write else "a read the database refused"
    seconds = reply.latency_us / 1e6
    status = body_message(reply.body, reply.content_type)[:60]
    return "db_locked", tagged(TIMING, f"{status} after {seconds:.1f} s, the busy timeout: {what}")


def missing_write_class(reply: Reply, busy_timeout_s: float, first_write: bool) -> str:
    """The class of a 500'd write a read-back proved missing: rolled back at its commit (lost_insert or
    lost_update: the helper's retry pause is in its latency), or refused before writing (db_locked)."""
    seconds = reply.latency_us / 1e6
    if busy_timeout_s - LOCK_WAIT_EARLY_S <= seconds < busy_timeout_s + COMMIT_RETRY_S:
        return "db_locked"
    return "lost_insert" if first_write else "lost_update"


def suspect_counter(endpoint: str, reply: Reply) -> str:
    """The counter key of a slow unverifiable write: its endpoint and latency bucket (mergeable by sum)."""
    bucket_ms = int(reply.latency_us / 1000 // SUSPECT_BUCKET_MS * SUSPECT_BUCKET_MS)
    return f"{SUSPECT_KEY}:{endpoint}:{bucket_ms}"


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class _Tally:
    """Lock issues summed over the error groups: by class and evidence, endpoint, writes in flight."""

    def __init__(self) -> None:
        self.evidence: dict[str, dict[str, int]] = {}
        self.endpoints: dict[str, dict[str, int]] = {}
        self.inflight: dict[str, list] = {}  # class -> [sum of writes in flight, max]

    def add(self, group: dict) -> None:
        kind, count = group["class"], group["count"]
        level = evidence_of(kind, group["message"])
        by_level = self.evidence.setdefault(kind, {})
        by_level[level] = by_level.get(level, 0) + count
        if level == TIMING:
            return
        sums = self.inflight.setdefault(kind, [0.0, 0])
        sums[0] += group["inflight_mean"] * count
        sums[1] = max(sums[1], group["inflight_max"])
        for name, n in group["endpoints"].items():
            self.endpoints.setdefault(name, {}).setdefault(kind, 0)
            self.endpoints[name][kind] += n

    def found(self) -> dict[str, int]:
        """Class -> issues proven by a verification or the server's own words, in LOCK_CLASSES order."""
        counts = {c: sum(n for e, n in self.evidence.get(c, {}).items() if e != TIMING) for c in LOCK_CLASSES}
        return {c: n for c, n in counts.items() if n}

    def suspected(self) -> dict[str, int]:
        counts = {c: self.evidence.get(c, {}).get(TIMING, 0) for c in LOCK_CLASSES}
        return {c: n for c, n in counts.items() if n}


def lock_summary(
    errors: list[dict],
    users_rows: list[dict],
    requests: int,
    timeline: list[dict],
    counters: Mapping[str, int],
    verified: dict,
    window: tuple[float, float] | None,
) -> LockIssues:
    """The DATABASE LOCK ISSUES section as a record: found issues by class with their evidence, timing-only
    suspicions apart, suspected lock waits, data integrity, endpoints, top users, timeline."""
    tally = _Tally()
    for group in errors:
        if group["class"] in LOCK_CAUSED:
            tally.add(group)
    found = tally.found()
    total = sum(found.values())
    return LockIssues(
        detected=total > 0,
        total=total,
        by_class=found,
        evidence={c: dict(sorted(tally.evidence[c].items())) for c in LOCK_CLASSES if c in tally.evidence},
        suspected=tally.suspected(),
        explain={c: EXPLAIN[c] for c in LOCK_CLASSES if c in tally.evidence},
        writes_in_flight={
            c: InFlight(mean=round(s / found[c], 1), max=m) for c, (s, m) in tally.inflight.items()
        },
        lock_error_rate=round(total / requests, 6) if requests else 0.0,
        endpoints=dict(sorted(tally.endpoints.items(), key=lambda kv: -sum(kv[1].values()))),
        top_users=top_users(users_rows),
        timeline=lock_timeline(timeline),
        verified=verified,
        not_verifiable=not_verifiable_text(counters),
        unverifiable_writes=unverifiable_writes(counters),
        suspected_lock_waits=suspected_waits(counters),
        lock_wait_window_s=window,
        integrity=DataIntegrity(
            lock_caused_losses=sum(n for c, n in found.items() if c in LOSS_CLASSES),
            race_duplicates=counters.get("duplicate_rows", 0),
        ),
    )


def top_users(users_rows: list[dict]) -> tuple[TopUser, ...]:
    """Up to 10 users with the most lock issues (timing-only included: evidence is not kept per user)."""
    users = {r["user"]: sum(n for c, n in r["errors"].items() if c in LOCK_CAUSED) for r in users_rows}
    ranked = sorted(((u, n) for u, n in users.items() if n), key=lambda kv: -kv[1])[:10]
    return tuple(TopUser(user=u, lock_errors=n) for u, n in ranked)


def unverifiable_writes(counters: Mapping[str, int]) -> dict[str, int]:
    """Endpoint -> writes answered 2xx that the API gives no way to read back."""
    prefix = UNVERIFIABLE_KEY + ":"
    return {k[len(prefix) :]: n for k, n in sorted(counters.items()) if k.startswith(prefix)}


def suspected_waits(counters: Mapping[str, int]) -> tuple[SuspectedWait, ...]:
    """Per endpoint: unverifiable writes answered inside the busy-timeout window, with their latency range."""
    buckets: dict[str, dict[int, int]] = {}
    for key, n in counters.items():
        if key.startswith(SUSPECT_KEY + ":") and n:
            endpoint, bucket = key[len(SUSPECT_KEY) + 1 :].rsplit(":", 1)
            buckets.setdefault(endpoint, {})[int(bucket)] = n
    return tuple(
        SuspectedWait(
            endpoint=name,
            count=sum(seen.values()),
            min_s=min(seen) / 1000,
            max_s=(max(seen) + SUSPECT_BUCKET_MS) / 1000,
        )
        for name, seen in sorted(buckets.items())
    )


def not_verifiable_text(counters: Mapping[str, int]) -> str:
    """Which writes stayed unverifiable, and how many."""
    writes = unverifiable_writes(counters)
    if not writes:
        return ""
    listed = ", ".join(f"{name} {n:,}" for name, n in writes.items())
    return (
        f"{sum(writes.values()):,} writes answered 2xx have no safe read-back ({listed}); "
        "a lost one shows only as a suspected lock wait"
    )


def lock_timeline(timeline: list[dict]) -> tuple[LockInterval, ...]:
    """The time-series intervals that had lock issues (every evidence level), with counts by lock class."""
    return tuple(
        LockInterval(
            interval=row["interval"],
            start_s=row["start_s"],
            end_s=row["end_s"],
            classes={c: row["errors"][c] for c in LOCK_CAUSED if row["errors"].get(c)},
        )
        for row in timeline
        if any(row["errors"].get(c) for c in LOCK_CAUSED)
    )
