"""Deterministic lock reproduction: holds a write lock on the target's SQLite file on a schedule."""

from __future__ import annotations

import bisect
import contextlib
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from amanflix_stress.amanflix.detect import LOCK_CAUSED, LOCK_CLASSES
from amanflix_stress.amanflix.records import HeldWindow, HoldLock, LockInterval, doc
from amanflix_stress.errors import UsageError
from amanflix_stress.units import parse_duration_s

SQLITE_HEADER = b"SQLite format 3\x00"
ACQUIRE_TIMEOUT_S = 10.0  # the server may be mid-write when a hold starts


def parse_schedule(text: str) -> tuple[float, float]:
    """'7s/30s' -> (hold 7.0 s, every 30.0 s)."""
    try:
        hold, every = (parse_duration_s(part) for part in text.split("/"))
    except ValueError as exc:
        raise UsageError(f"--hold-lock-schedule: expected HOLD/EVERY like 7s/30s ({exc})") from None
    if hold >= every:
        raise UsageError(
            f"--hold-lock-schedule: the hold ({hold:g} s) must be shorter than the period ({every:g} s)"
        )
    return hold, every


def check_database(path: str, flag: str = "--hold-lock") -> Path:
    """The target's SQLite file on this machine, or one line naming `flag` and the file (UsageError)."""
    file = Path(path)
    try:
        header = read_header(file) if file.is_file() else b""
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {path}: {exc}") from None
    if header != SQLITE_HEADER:
        raise UsageError(
            f"{flag}: {path} is not a SQLite database; give the target's database file "
            "(e.g. api/instance/amanflix_db.db) on this machine"
        )
    return file


def read_header(file: Path) -> bytes:
    """The first 16 bytes only: a production database can be gigabytes."""
    with file.open("rb") as db:
        return db.read(len(SQLITE_HEADER))


@contextlib.contextmanager
def database_locked(path: Path, kind: str) -> Iterator[None]:
    """A connection of our own holds a `reserved` (writers wait) or `exclusive` (readers too) lock on the
    database for the block, and rolls back after it: the server's data is never changed."""
    connection = sqlite3.connect(
        str(path), timeout=ACQUIRE_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        connection.execute("BEGIN EXCLUSIVE" if kind == "exclusive" else "BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
    finally:
        connection.close()


class LockHolder:
    """A thread with its own SQLite connection that takes the lock for `hold_s` every `every_s`."""

    def __init__(self, path: str, hold_s: float, every_s: float, kind: str = "reserved") -> None:
        self.path, self.hold_s, self.every_s = check_database(path), hold_s, every_s
        self.kind = kind
        self.stop_event = threading.Event()
        self.windows: list[dict] = []
        self.thread: threading.Thread | None = None

    def start(self, for_s: float, first_after_s: float | None = None) -> None:
        """Hold on schedule for `for_s` seconds (the measured phase), so cleanup afterwards is not blocked."""
        first = self.every_s / 3 if first_after_s is None else first_after_s
        self.thread = threading.Thread(
            target=self._loop, args=(first, time.monotonic() + for_s), daemon=True, name="hold-lock"
        )
        self.thread.start()

    def stop(self) -> list[dict]:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(self.hold_s + ACQUIRE_TIMEOUT_S)
        return self.windows

    def _loop(self, first_after_s: float, until_mono: float) -> None:
        next_start = time.monotonic() + first_after_s
        while next_start < until_mono and not self.stop_event.wait(max(0.0, next_start - time.monotonic())):
            self._hold_once(min(self.hold_s, until_mono - time.monotonic()))
            next_start += self.every_s

    def _hold_once(self, hold_s: float) -> None:
        window: dict = {"kind": self.kind, "start_s": None, "end_s": None}
        try:
            with database_locked(self.path, self.kind):
                window["start_s"] = time.time()
                self.windows.append(window)
                self.stop_event.wait(hold_s)
            window["end_s"] = time.time()
        except sqlite3.Error as exc:
            self.windows.append({"kind": self.kind, "start_s": time.time(), "end_s": None, "error": str(exc)})


def windows_with_detections(
    windows: list[dict], lock_timeline: tuple[LockInterval, ...], lag_s: float
) -> tuple[HeldWindow, ...]:
    """Each held window with the lock issues answered in the intervals it touched, up to `lag_s` after it.
    `lock_timeline` is the lock summary's: intervals with lock issues and their counts by class."""
    rows = []
    for window in windows:
        end_s = (window.get("end_s") or window["start_s"]) + lag_s
        found = sum(
            sum(row.classes.values())
            for row in lock_timeline
            if row.start_s < end_s and row.end_s > window["start_s"]
        )
        rows.append(
            HeldWindow(
                kind=window["kind"],
                start_s=window["start_s"],
                end_s=window["end_s"],
                error=window.get("error"),
                lock_issues_detected=found,
            )
        )
    return tuple(rows)


def is_local_host(host: str) -> bool:
    """True when every address `host` resolves to belongs to this machine (its network namespace): a
    socket can be bound to it. A name that does not resolve is not local."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    for family, kind, proto, _name, address in infos:
        try:
            with contextlib.closing(socket.socket(family, kind, proto)) as probe:
                probe.bind((address[0], 0))
        except OSError:
            return False
    return bool(infos)


def check_local_target(base_url: str, path: str) -> None:
    """--hold-lock locks a file on the coordinator's machine: that is the target's database only when the
    target runs on this machine too (with --cluster as well: the lock is held by the coordinator)."""
    host = urlsplit(base_url).hostname or ""
    if not is_local_host(host):
        raise UsageError(
            f"--hold-lock: the target ({host}) is not on this machine, so {path} cannot be its database "
            "(a lock held here never reaches another host's SQLite file): run amanflix-stress on the "
            "target's machine, or leave out --hold-lock"
        )


def lock_holder(args, base_url: str) -> LockHolder | None:
    """The holder --hold-lock asks for, checked before the run starts; None without the flag."""
    if not getattr(args, "hold_lock", None):
        return None
    check_local_target(base_url, args.hold_lock)
    hold_s, every_s = parse_schedule(args.hold_lock_schedule)
    return LockHolder(args.hold_lock, hold_s, every_s, args.hold_lock_kind)


def hold_lock_section(holder: LockHolder, lock_timeline: tuple[LockInterval, ...], lag_s: float) -> HoldLock:
    """The hold_lock report section: the schedule and each window with the lock issues found in it."""
    windows = windows_with_detections(holder.windows, lock_timeline, lag_s)
    return HoldLock(
        path=str(holder.path),
        kind=holder.kind,
        hold_s=holder.hold_s,
        every_s=holder.every_s,
        windows=windows,
        windows_detected=sum(1 for w in windows if w.lock_issues_detected),
    )


# lock classes the server answers with a 500 (shown): the rest were answered 2xx and found by checking
ANSWERED_500 = frozenset({"db_locked", "pool_timeout", "auth_locked", "db_error", "lost_insert"})


@dataclass(frozen=True, kw_only=True)
class WindowEvidence:
    """One held window with every lock class the tool found in it and, with --server-log, what the server
    logged in it. Each interval and each logged event belongs to the last window started before it, up to
    the lag after that window's end, so no finding is counted in two windows."""

    window: int = doc("1-based window number")
    kind: str = doc("reserved or exclusive")
    start_s: float = doc("when the lock was taken, epoch seconds")
    end_s: float | None = doc("when it was released; null if it never was")
    error: str | None = doc("why the lock could not be taken", omit_none=True)
    lock_classes: Mapping[str, int] = doc("lock class -> count found in the window, every class")
    answered_500: int = doc("of those, failures the server answered with a 500")
    answered_2xx: int = doc(
        "of those, failures answered 2xx (hidden, found by a check); not lock_wait or duplicate_rows"
    )
    bare_5xx: int = doc("500s in the window the tool did not attribute to a lock (class http_5xx)")
    server_events: int | None = doc("with --server-log: lock events the server logged in the window")


def owner(time_s: float, starts: list[float], ends: list[float], lag_s: float) -> int | None:
    """The window a time belongs to: the last one started at or before it, if it ended at most lag_s ago."""
    index = bisect.bisect_right(starts, time_s) - 1
    return index if index >= 0 and time_s <= ends[index] + lag_s else None


def window_evidence(
    windows: list[dict], intervals: list[dict], lag_s: float, server_times: list[float] | None
) -> tuple[WindowEvidence, ...]:
    """Each held window with the tool's lock classes and bare 500s (from the intervals that ended in it)
    and the server's logged lock events (their times), for the held-window table."""
    starts = [w["start_s"] for w in windows]
    ends = [w.get("end_s") or w["start_s"] for w in windows]
    classes: list[Counter] = [Counter() for _ in windows]
    for row in intervals:
        index = owner(row["end_s"], starts, ends, lag_s)
        if index is not None:
            classes[index].update(row["errors"])
    logged = [0] * len(windows)
    for time_s in server_times or ():
        if (index := owner(time_s, starts, ends, lag_s)) is not None:
            logged[index] += 1
    return tuple(
        evidence_row(i, window, classes[i], logged[i] if server_times is not None else None)
        for i, window in enumerate(windows)
    )


def evidence_row(index: int, window: dict, errors: Counter, logged: int | None) -> WindowEvidence:
    found = {c: errors[c] for c in LOCK_CLASSES if errors.get(c)}
    shown = sum(n for c, n in found.items() if c in ANSWERED_500)
    hidden = sum(n for c, n in found.items() if c in LOCK_CAUSED and c not in ANSWERED_500)
    return WindowEvidence(
        window=index + 1,
        kind=window["kind"],
        start_s=window["start_s"],
        end_s=window["end_s"],
        error=window.get("error"),
        lock_classes=found,
        answered_500=shown,
        answered_2xx=hidden,
        bare_5xx=errors.get("http_5xx", 0),
        server_events=logged,
    )
