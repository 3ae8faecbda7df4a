"""Open-model pacing: when each arrival is due, as pure functions of the rate stages and time passed in."""

from __future__ import annotations

import math
import threading
from typing import NamedTuple

LATE_AFTER_S = (
    0.010  # an arrival sent later than this after its due time is counted late (a scheduler tick or two)
)
DROP_AFTER_S = 1.0  # an arrival no user thread could take within this long is dropped and counted, not sent


class Segment(NamedTuple):
    """A stretch of the schedule whose rate moves linearly from from_rate to to_rate (arrivals per second)."""

    start_s: float
    duration_s: float
    from_rate: float
    to_rate: float
    arrivals_before: float  # expected arrivals before start_s


def build_segments(rate: float, stages: list, total_s: float) -> list[Segment]:
    """The rate over time: `rate` at first, each [duration_s, rate] stage ramps linearly to its rate, and
    the last rate holds until total_s. Without stages the rate is constant."""
    segments: list[Segment] = []
    start_s, arrivals, current = 0.0, 0.0, float(rate)
    for duration_s, target in [*stages, [max(0.0, total_s - sum(d for d, _r in stages)), None]]:
        target = current if target is None else float(target)
        duration_s = min(float(duration_s), total_s - start_s)
        if duration_s <= 0:
            continue
        segments.append(Segment(start_s, duration_s, current, target, arrivals))
        arrivals += (current + target) / 2.0 * duration_s
        start_s, current = start_s + duration_s, target
    return segments


def arrivals_by(segments: list[Segment], t_s: float) -> float:
    """Expected arrivals in [0, t_s): the integral of the rate."""
    total = 0.0
    for seg in segments:
        if t_s <= seg.start_s:
            break
        x = min(t_s - seg.start_s, seg.duration_s)
        slope = (seg.to_rate - seg.from_rate) / seg.duration_s
        total = seg.arrivals_before + seg.from_rate * x + slope * x * x / 2.0
    return max(total, 0.0)


def total_arrivals(segments: list[Segment]) -> int:
    """How many arrivals the whole schedule holds: arrival k exists when k < arrivals_by(end)."""
    if not segments:
        return 0
    return math.ceil(arrivals_by(segments, segments[-1].start_s + segments[-1].duration_s) - 1e-9)


def arrival_time_s(segments: list[Segment], k: int) -> float | None:
    """When arrival k (0-based, run-wide) is due, s after the start; None when the schedule ends first."""
    for seg in segments:
        need = k - seg.arrivals_before
        in_segment = (seg.from_rate + seg.to_rate) / 2.0 * seg.duration_s
        if need >= in_segment:
            continue
        if need <= 0:
            return seg.start_s
        half_slope = (seg.to_rate - seg.from_rate) / seg.duration_s / 2.0
        # the root of half_slope*x^2 + from_rate*x = need, in the form that is stable when half_slope ~ 0
        root = math.sqrt(max(seg.from_rate**2 + 4.0 * half_slope * need, 0.0))
        return seg.start_s + min(2.0 * need / (seg.from_rate + root), seg.duration_s)
    return None


class ArrivalSchedule:
    """One worker's share of the arrivals (k = worker_id, worker_id + workers, ...), taken by user threads.

    The clock is passed in: `take(now_s)` with seconds since the run's start. Thread-safe.
    """

    def __init__(
        self,
        segments: list[Segment],
        worker_id: int = 0,
        workers: int = 1,
        drop_after_s: float = DROP_AFTER_S,
    ) -> None:
        self.segments, self.step, self.drop_after_s = segments, workers, drop_after_s
        self.next_k = worker_id
        self.taken = self.dropped = self.late = 0
        self.lock = threading.Lock()

    def take(self, now_s: float) -> float | None:
        """The due time of this worker's next arrival (maybe already past); arrivals overdue by more than
        drop_after_s are skipped and counted as dropped. None when the schedule has no more arrivals."""
        with self.lock:
            stale = arrivals_by(self.segments, now_s - self.drop_after_s)  # arrivals due before the drop line
            if self.next_k < stale:
                skipped = math.ceil((stale - self.next_k) / self.step)
                self.next_k += skipped * self.step
                self.dropped += skipped
            due_s = arrival_time_s(self.segments, self.next_k)
            if due_s is not None:
                self.next_k += self.step
                self.taken += 1
            return due_s

    def count_late(self, lateness_s: float) -> bool:
        """Count an arrival sent lateness_s after it was due; True when that makes it late."""
        if lateness_s <= LATE_AFTER_S:
            return False
        with self.lock:
            self.late += 1
        return True

    def counts(self) -> dict:
        return {"taken": self.taken, "dropped": self.dropped, "late": self.late}
