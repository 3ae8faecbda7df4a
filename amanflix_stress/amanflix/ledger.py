"""The write ledger of one account: what each session sent and what the server acknowledged, to judge echoes,
read-backs and the final state without blaming the server for another session's legitimate write."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

KEEP_PER_KEY = 32  # a backstop: writes kept per title (pruning leaves ~1-3: see WriteLedger.prune)
KEEP_KEYS = 64  # titles kept per account, the least recently written dropped first (journeys verifies 50)


@dataclass(slots=True)
class Write:
    session: int
    value: float
    send_mono: float
    done_mono: float | None = None
    outcome: str = "in_flight"  # in_flight, acked, lost, unknown


def prune(history: list[Write]) -> list[Write]:
    """The writes of one title that can still explain a value: a finished write (acknowledged or refused)
    that ended before every write in flight was sent and before the latest acknowledged one was sent can no
    longer be an overlap (`explains`) nor what the server holds (`valid_final`). Unknown outcomes stay."""
    in_flight = [w.send_mono for w in history if w.done_mono is None]
    acked = [w.send_mono for w in history if w.outcome == "acked"]
    cutoff = min([*in_flight, max(acked, default=float("-inf"))])
    return [
        w
        for w in history
        if w.outcome in ("in_flight", "unknown")
        or (w.outcome == "acked" and w.done_mono is not None and w.done_mono >= cutoff)
    ]


def same(a, b) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(float(a) - float(b)) < 1e-3


class WriteLedger:
    """Thread-safe: both sessions of an account write to it.

    Bounded for long runs: a title keeps only the writes that can still explain a value (see `prune`), and
    the account keeps its KEEP_KEYS most recently written titles. Without both, 500 users' ledgers grew
    for as long as a run lasted (docs/performance.md, bench/memory_soak.py)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writes: dict[tuple, list[Write]] = {}  # oldest-written title first
        self.row_ids: dict[tuple, set] = {}  # record ids the server echoed per title: two ids, two rows
        self.dropped_duplicates = 0  # duplicate rows of titles no longer kept

    def note_row(self, key: tuple, row_id) -> None:
        if row_id is not None:
            with self.lock:
                self.row_ids.setdefault(key, set()).add(row_id)

    def duplicate_rows(self) -> int:
        """Rows beyond the first that the server's own echoes revealed for one title."""
        with self.lock:
            return self.dropped_duplicates + sum(len(ids) - 1 for ids in self.row_ids.values())

    def begin(self, key: tuple, session: int, value: float) -> Write:
        write = Write(session, value, time.monotonic())
        with self.lock:
            history = self.writes.pop(key, [])
            self.writes[key] = history  # the most recently written title last
            history.append(write)
            history[:] = prune(history)[-KEEP_PER_KEY:]
            self.drop_old_titles()
        return write

    def drop_old_titles(self) -> None:
        """Forget the least recently written titles beyond KEEP_KEYS (none with a write in flight)."""
        excess = len(self.writes) - KEEP_KEYS
        if excess <= 0:
            return
        for key in [k for k, h in self.writes.items() if all(w.done_mono is not None for w in h)][:excess]:
            del self.writes[key]
            self.dropped_duplicates += max(0, len(self.row_ids.pop(key, ())) - 1)

    def finish(self, write: Write, outcome: str) -> None:
        with self.lock:
            write.done_mono, write.outcome = time.monotonic(), outcome

    def explains(self, key: tuple, write: Write, shown) -> bool:
        """True if a shown value is this write's, or that of another session's overlapping write."""
        if same(shown, write.value):
            return True
        now = time.monotonic()
        with self.lock:
            return any(
                same(shown, w.value)
                for w in self.writes.get(key, ())
                if w is not write
                and w.session != write.session
                and w.send_mono <= now
                and (w.done_mono is None or w.done_mono >= write.send_mono)
                and w.outcome != "lost"
            )

    def valid_final(self, key: tuple) -> list[float] | None:
        """Values the server may legitimately hold now; None when nothing was acknowledged for this key."""
        with self.lock:
            history = list(self.writes.get(key, ()))
        acked = [w for w in history if w.outcome == "acked"]
        if not acked:
            return None
        latest_send = max(w.send_mono for w in acked)
        # an unknown outcome (a timeout) ended our wait, not the server's: it may land after any later write
        return [
            w.value
            for w in history
            if w.outcome == "unknown"
            or (w.outcome in ("acked", "in_flight") and (w.done_mono is None or w.done_mono >= latest_send))
        ]

    def keys(self) -> list[tuple]:
        with self.lock:
            return list(self.writes)
