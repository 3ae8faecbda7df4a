"""The Amanflix report sections as typed records: lock issues, accounts and cleanup, held lock windows."""

# ruff: noqa: RUF009  (doc() is dataclasses.field with a docstring: no default value is shared)

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict


def doc(text: str, **json: Any) -> Any:
    """A record field with its documentation; `json` adds how the JSON writes it (see output/model.py):
    name="class" renames the key, omit_none=True leaves it out when None, flatten=True merges a nested
    record's keys into this one's (and leaves them all out when it is None). Both default to None, so
    their records are keyword-only."""
    if json.get("omit_none") or json.get("flatten"):
        return field(default=None, metadata={"doc": text, **json})
    return field(metadata={"doc": text, **json})


@dataclass(frozen=True)
class InFlight:
    """Writes in flight in the worker when issues of one class happened."""

    mean: float = doc("mean over the issues")
    max: int = doc("most at once")


@dataclass(frozen=True)
class TopUser:
    """A simulated user with lock errors."""

    user: int = doc("the user's global index")
    lock_errors: int = doc("lock issues this user met")


@dataclass(frozen=True)
class LockInterval:
    """A time-series interval with lock issues."""

    interval: int = doc("interval index from the start of the measured phase")
    start_s: float = doc("interval start, epoch seconds")
    end_s: float = doc("interval end, epoch seconds")
    classes: Mapping[str, int] = doc("lock class -> count in this interval")


@dataclass(frozen=True)
class SuspectedWait:
    """Unverifiable writes of one endpoint answered 2xx inside the busy-timeout window: maybe a lock wait."""

    endpoint: str = doc("endpoint template")
    count: int = doc("writes answered inside the window")
    min_s: float = doc("fastest of them, seconds (100 ms buckets)")
    max_s: float = doc("slowest of them, seconds (100 ms buckets, upper edge)")


@dataclass(frozen=True)
class DataIntegrity:
    """DATA INTEGRITY: writes a lock lost, apart from duplicate rows a race created (not a lock)."""

    lock_caused_losses: int = doc("found lost writes of every loss class (lock-caused)")
    race_duplicates: int = doc(
        "duplicate watch-history rows: concurrent first writes, check-then-insert with no unique key"
    )


@dataclass(frozen=True, kw_only=True)
class LockIssues:
    """DATABASE LOCK ISSUES: what SQLite locks did to the run, shown or hidden, with the evidence for each."""

    detected: bool = doc("any found lock issue (evidence verified or server-said)")
    total: int = doc("found lock issues of every class, all phases; timing-only suspicions are not in it")
    by_class: Mapping[str, int] = doc(
        "class -> found count, in the report's class order; zero classes left out"
    )
    explain: Mapping[str, str] = doc("class -> what it means")
    writes_in_flight: Mapping[str, InFlight] = doc("class -> writes in flight when found issues happened")
    lock_error_rate: float = doc("total / requests of all phases (0-1)")
    endpoints: Mapping[str, Mapping[str, int]] = doc("endpoint -> class -> found count, most issues first")
    top_users: tuple[TopUser, ...] = doc("up to 10 users with the most lock issues (timing-only included)")
    timeline: tuple[LockInterval, ...] = doc("the intervals with lock issues, every evidence level")
    verified: Mapping[str, int] = doc("what was checked: counter -> how many")
    not_verifiable: str = doc("which writes the API gives no way to read back, and how many; '' if none")
    # the parts below came with evidence levels; a report written before them reads back with None
    evidence: Mapping[str, Mapping[str, int]] | None = doc(
        "class -> evidence level (verified, server-said, timing) -> count, timing-only ones included",
        omit_none=True,
    )
    suspected: Mapping[str, int] | None = doc(
        "class -> issues with timing evidence only (a bare 500 at the busy timeout): not in total",
        omit_none=True,
    )
    unverifiable_writes: Mapping[str, int] | None = doc(
        "endpoint -> writes answered 2xx with no safe read-back", omit_none=True
    )
    suspected_lock_waits: tuple[SuspectedWait, ...] | None = doc(
        "unverifiable writes answered inside the busy-timeout window: not failures, not in the error rate",
        omit_none=True,
    )
    lock_wait_window_s: tuple[float, float] | None = doc(
        "[low, high] seconds of the busy-timeout signature (detection.lock_wait_s); left out when off",
        omit_none=True,
    )
    integrity: DataIntegrity | None = doc(
        "DATA INTEGRITY: lock-caused losses beside race-caused duplicate rows", omit_none=True
    )


@dataclass(frozen=True)
class LeftAccount:
    """A test account cleanup did not remove (or could not check), and why."""

    name: str = doc("the account's username")
    reason: str = doc("why it is still there, or why nobody knows")


@dataclass(frozen=True, kw_only=True)
class Cleanup:
    """What cleanup did with the run's test accounts, counted from the server after the workers stopped."""

    method: str = doc("admin batch delete, self-delete, or none")
    created: int = doc("test accounts the server held at cleanup (with the catalog account)")
    found: int | None = doc("admin cleanup: accounts found by name prefix", omit_none=True)
    deleted: int = doc("accounts deleted and checked gone")
    left_behind: int = doc("accounts still in the database")
    rows_left_behind: int | None = doc(
        "self-delete: watch-history titles and my-list items the deleted accounts held (the server keeps "
        "them)",
        omit_none=True,
    )
    note: str | None = doc("self-delete: why rows stay behind", omit_none=True)
    error: str | None = doc("why cleanup could not run", omit_none=True)
    not_removed: tuple[LeftAccount, ...] | None = doc(
        "each account left behind or not checked, with the reason", omit_none=True
    )
    unchecked: int | None = doc(
        "accounts nobody could check (cleanup abandoned or the server did not answer)", omit_none=True
    )


@dataclass(frozen=True)
class Accounts:
    """The `amanflix` section: catalog sizes, behaviour counters, cleanup."""

    catalog: Mapping[str, int] = doc("catalog part -> items read from the target")
    counters: Mapping[str, int] = doc(
        "accounts created/deleted, phantom registrations, setup retries, relogins, echoes checked, "
        "read-backs, final keys verified, duplicate rows, rows left behind, ... (sorted by name)"
    )
    cleanup: Cleanup = doc("what cleanup did")
    bursts_s: tuple[float, ...] | None = doc(
        "the scheduled same-title bursts, seconds from the start of the measured phase (none: no bursts)",
        omit_none=True,
    )


@dataclass(frozen=True, kw_only=True)
class Cause:
    """A cause of the DIAGNOSIS (probe and run): the observations behind it, its cure, its strongest
    evidence."""

    key: str = doc(
        "commit_swallowed, busy_timeout, check_then_insert, self_delete_no_cascade or phantom_token"
    )
    name: str = doc("the cause in words")
    level: str = doc(
        "its strongest observation's evidence: verified, server-said or timing (timing alone stays timing)"
    )
    observations: tuple[str, ...] = doc("each observation behind it, led by its evidence level in brackets")
    cure: str = doc("what cures it in the server (the sandbox's fixed mode applies it)")
    counts: Mapping[str, Mapping[str, int]] | None = doc(
        "run: what was observed (error class or counter) -> evidence level -> count", omit_none=True
    )


class RunFindings(TypedDict):
    """What finish_run adds to the run's extra sections, keyed by report section."""

    amanflix: Accounts
    lock_issues: LockIssues
    diagnosis: tuple[Cause, ...]


@dataclass(frozen=True, kw_only=True)
class HeldWindow:
    """One window in which --hold-lock held the target's SQLite lock."""

    kind: str = doc("reserved or exclusive")
    start_s: float = doc("when the lock was taken, epoch seconds")
    end_s: float | None = doc("when it was released; null if it never was")
    error: str | None = doc("why the lock could not be taken", omit_none=True)
    lock_issues_detected: int = doc("lock issues answered while held (and up to the lag after)")


@dataclass(frozen=True)
class HoldLock:
    """The `hold_lock` section (with --hold-lock): the schedule and each held window."""

    path: str = doc("the SQLite file held")
    kind: str = doc("reserved or exclusive")
    hold_s: float = doc("how long each hold lasted")
    every_s: float = doc("how often a hold started")
    windows: tuple[HeldWindow, ...] = doc("each held window")
    windows_detected: int = doc("windows in which lock issues were found")
