"""The write ledger of one account: what each session sent and what the server acknowledged, to judge echoes,
read-backs and the final state without blaming the server for another session's legitimate write."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

KEEP_PER_KEY = 32  # recent writes kept per title: enough to judge overlaps, bounded for long runs


@dataclass
class Write:
    session: int
    value: float
    send_mono: float
    done_mono: float | None = None
    outcome: str = "in_flight"  # in_flight, acked, lost, unknown


def same(a, b) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(float(a) - float(b)) < 1e-3


class WriteLedger:
    """Thread-safe: both sessions of an account write to it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writes: dict[tuple, list[Write]] = {}
        self.row_ids: dict[tuple, set] = {}  # record ids the server echoed per title: two ids, two rows

    def note_row(self, key: tuple, row_id) -> None:
        if row_id is not None:
            with self.lock:
                self.row_ids.setdefault(key, set()).add(row_id)

    def duplicate_rows(self) -> int:
        """Rows beyond the first that the server's own echoes revealed for one title."""
        with self.lock:
            return sum(len(ids) - 1 for ids in self.row_ids.values())

    def begin(self, key: tuple, session: int, value: float) -> Write:
        write = Write(session, value, time.monotonic())
        with self.lock:
            history = self.writes.setdefault(key, [])
            history.append(write)
            del history[:-KEEP_PER_KEY]
        return write

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
