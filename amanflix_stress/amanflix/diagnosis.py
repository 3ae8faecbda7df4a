"""The DIAGNOSIS of probe and run: from observations to the causes they support, with cure and evidence."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from amanflix_stress.amanflix.probe_records import LEVELS, TIMING, VERIFIED, Finding
from amanflix_stress.amanflix.records import Accounts, Cause, LockIssues

# cause key -> (name, cure); the sandbox's `fixed` mode applies exactly these cures
CAUSES = {
    "commit_swallowed": (
        "the commit helper swallows the failed commit",
        "re-raise after the rollback and answer 503 (or 409), so the client knows and retries",
    ),
    "busy_timeout": (
        "no busy-timeout headroom / rollback journal",
        "PRAGMA journal_mode=WAL (readers never wait for a writer) and a busy timeout sized to the "
        "longest write",
    ),
    "check_then_insert": (
        "check-then-insert without a unique constraint",
        "a unique index on (user, content type, content id, season, episode) and an upsert "
        "(INSERT … ON CONFLICT DO UPDATE)",
    ),
    "self_delete_no_cascade": (
        "self-delete without cascade",
        "PRAGMA foreign_keys=ON with ON DELETE CASCADE on the user's rows (or delete them as the admin "
        "delete does)",
    ),
    "phantom_token": (
        "registration issues a token although its commit was rolled back",
        "issue the token only after the commit succeeded (and answer 503 when it did not)",
    ),
}


def diagnose(findings: tuple[Finding, ...]) -> tuple[Cause, ...]:
    """The probe's causes: each scenario's observations, named by scenario."""
    return causes_from(
        (o.cause, o.level, f"{f.scenario}: {o.text}") for f in findings for o in f.observations
    )


# What a run observed -> (cause, what it shows). An error class of the lock section (counted per evidence
# level) or a behaviour counter (verified: an echo or a listing showed it). Left out on purpose: db_error
# (an OperationalError need not be a lock), suspected lock waits (writes that succeeded, slowly: no
# failure), and the rows self-delete cleanup counted (counted before the delete, so a cascading server
# shows the same count).
RUN_EVIDENCE: tuple[tuple[str, str, str], ...] = (
    ("lost_update", "commit_swallowed", "updates answered 200 whose echo showed the old values"),
    ("lost_write", "commit_swallowed", "writes answered 200 that a later read-back does not show"),
    ("lost_insert", "commit_swallowed", "first writes answered 500 after the commit, and no row stored"),
    ("phantom_registration", "commit_swallowed", "registrations answered 200 although nothing was stored"),
    ("db_locked", "busy_timeout", "requests refused at the busy timeout while another connection wrote"),
    ("auth_locked", "busy_timeout", "token checks (reads) failed while a writer held the database"),
    ("pool_timeout", "busy_timeout", "every pooled connection waited on the lock until the pool ran out"),
    ("duplicate_rows", "check_then_insert", "duplicate watch-history rows from concurrent first writes"),
    (
        "inherited_mylist_items",
        "self_delete_no_cascade",
        "my-list items a brand-new account already held: a deleted user's reused id and rows",
    ),
    ("phantom_registration", "phantom_token", "tokens for a user that was never stored (sub 'None')"),
)
COUNTER_EVIDENCE = ("duplicate_rows", "inherited_mylist_items")  # behaviour counters, verified


def diagnose_run(locks: LockIssues, accounts: Accounts) -> tuple[Cause, ...]:
    """The run's causes, from its lock issues by evidence level and its behaviour counters."""
    counts = run_counts(locks, accounts)
    causes = causes_from(run_observations(counts, locks.endpoints))
    return tuple(replace(c, counts=cause_counts(c.key, counts)) for c in causes)


def run_counts(locks: LockIssues, accounts: Accounts) -> dict[str, dict[str, int]]:
    """What was observed -> evidence level -> count: the lock classes' evidence, then the counters."""
    counts = {cls: dict(levels) for cls, levels in (locks.evidence or {}).items()}
    for key in COUNTER_EVIDENCE:
        if accounts.counters.get(key):
            counts[key] = {VERIFIED: accounts.counters[key]}
    return counts


def run_observations(
    counts: Mapping[str, Mapping[str, int]], endpoints: Mapping[str, Mapping[str, int]]
) -> list[tuple[str, str, str]]:
    """(cause, level, text) for each observed thing a cause rests on, one per evidence level."""
    seen = []
    for observed, cause, meaning in RUN_EVIDENCE:
        for level in LEVELS:
            n = counts.get(observed, {}).get(level, 0)
            if n:
                where = endpoints_of(observed, endpoints) if level != TIMING else ""
                note = " (timing only: suspected, not counted as found)" if level == TIMING else ""
                seen.append((cause, level, f"{observed} {n:,}: {meaning}{where}{note}"))
    return seen


def endpoints_of(observed: str, endpoints: Mapping[str, Mapping[str, int]], limit: int = 3) -> str:
    names = [name for name, classes in endpoints.items() if classes.get(observed)][:limit]
    return f" ({', '.join(names)})" if names else ""


def cause_counts(key: str, counts: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """The observed things a cause rests on, with their counts by evidence level."""
    return {o: dict(counts[o]) for o, cause, _ in RUN_EVIDENCE if cause == key and o in counts}


def causes_from(seen: Iterable[tuple[str, str, str]]) -> tuple[Cause, ...]:
    """Each cause some observation (cause, level, text) supports, in CAUSES order; its level is
    its strongest observation's, so timing-only observations alone never make a cause verified."""
    listed = list(seen)
    causes = []
    for key, (name, cure) in CAUSES.items():
        mine = [(level, text) for cause, level, text in listed if cause == key]
        if not mine:
            continue
        level = min((level for level, _ in mine), key=LEVELS.index)
        texts = tuple(f"[{level}] {text}" for level, text in mine)
        causes.append(Cause(key=key, name=name, level=level, observations=texts, cure=cure))
    return tuple(causes)
