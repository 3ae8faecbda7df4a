"""The aggregator: merges the workers' messages into run totals, worker states and the per-interval series."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from amanflix_stress.engine.health import WorkerHealth
from amanflix_stress.engine.messages import (
    PROTOCOL_VERSION,
    Batch,
    Crash,
    Done,
    Heartbeat,
    Hello,
    Message,
    Ready,
)
from amanflix_stress.engine.stats import PERCENTILES, Series, Stats

CLOSE_GRACE_S = 2.5  # an interval closes once this long has passed since its end (batches arrive ~1 s late)


@dataclass
class WorkerState:
    """What the coordinator knows of one worker."""

    id: int
    users: int = 0
    pid: int | None = None
    host: str = ""
    status: str = "starting"  # starting, ready, running, done, died, hung
    detail: str = ""
    last_seen_mono: float = field(default_factory=time.monotonic)  # any message, heartbeats included
    last_data_mono: float = field(default_factory=time.monotonic)  # any message but a heartbeat
    last_beat_mono: float | None = None  # the last heartbeat (workers of this protocol send one a second)
    active_users: int = 0
    inflight: int = 0
    first_cpu: tuple[float, float] | None = None  # (cpu_s, wall_s) at the first run batch
    last_cpu: tuple[float, float] | None = None
    health: WorkerHealth = field(default_factory=WorkerHealth)
    arrivals: dict | None = None  # open model: the worker's arrival counts so far (taken, dropped, late)


def ms(value_us: float) -> float | None:
    """Microseconds to milliseconds; None where there was nothing to measure (JSON has no NaN)."""
    return None if value_us != value_us else round(value_us / 1000.0, 3)


def series_row(name: str, series: Series, failures: int, duration_s: float) -> dict:
    """One endpoint's figures as plain data, in milliseconds."""
    p50, p90, p95, p99, p999 = series.percentiles_us(PERCENTILES)
    row = {
        "name": name,
        "requests": series.count,
        "failures": failures,
        "rps": round(series.count / duration_s, 3) if duration_s > 0 else 0.0,
        "mean_ms": ms(series.sum_us / series.count) if series.count else None,
        "min_ms": ms(series.min_us),
        "p50_ms": ms(p50),
        "p90_ms": ms(p90),
        "p95_ms": ms(p95),
        "p99_ms": ms(p99),
        "p999_ms": ms(p999),
        "max_ms": ms(series.max_us),
    }
    response = series.response_percentiles_us(PERCENTILES)
    if response is not None:
        row.update(
            {
                f"response_{k}": ms(v)
                for k, v in zip(("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms"), response)
            }
        )
        row["response_max_ms"] = ms(series.response_max_us)
    return row


def endpoint_rows(stats: Stats, duration_s: float) -> list[dict]:
    rows = [
        series_row(name, series, failures, duration_s)
        for name, (series, failures) in stats.endpoint_series().items()
    ]
    return sorted(rows, key=lambda r: r["name"])


def total_series(stats: Stats) -> Series:
    total = Series()
    for series in stats.series.values():
        total.merge(series)
    return total


class Aggregator:
    """Run totals, setup and teardown tables, the time-series intervals, and each worker's state."""

    def __init__(self, interval_s: float, on_interval: Callable[[dict], None] | None = None) -> None:
        self.interval_s = interval_s
        self.on_interval = on_interval or (lambda row: None)  # each closed interval's row, as it closes
        self.phases = {"setup": Stats(), "run": Stats(), "teardown": Stats()}
        self.open_intervals: dict[int, Stats] = {}
        self.intervals: list[dict] = []  # the closed intervals' rows, in order: the time series
        self.closed_upto = -1
        self.late_batches = 0
        self.setup_start_s: float | None = None  # workers launched: setup (registration) begins
        self.start_s: float | None = None  # the measured phase begins (the go signal)
        self.stop_s: float | None = None  # the measured phase ends (the stop signal); teardown follows
        self.workers: dict[int, WorkerState] = {}
        self.crashes: list[str] = []
        self.counters: dict[str, int] = {}  # behaviour counters summed over the workers' users
        self.interval_users: dict[int, int] = {}  # most users active at once during each open interval
        self.handlers: dict[type, Callable] = {
            Hello: self._on_hello,
            Ready: self._on_ready,
            Batch: self._on_batch,
            Crash: self._on_crash,
            Done: self._on_done,
            Heartbeat: self._on_heartbeat,
        }

    def begin_setup(self, now_s: float) -> None:
        """Workers are being launched: the setup phase's duration counts from here."""
        self.setup_start_s = now_s

    def begin(self, start_s: float) -> None:
        """The measured phase starts: intervals count from here."""
        self.start_s = start_s

    def end_run(self, stop_s: float) -> None:
        """The measured phase ends (deadline, all workers ended, or a signal): the first call counts, and
        none before the phase began. Duration and throughput stop here; teardown has its own."""
        if self.start_s is not None and self.stop_s is None:
            self.stop_s = stop_s

    @property
    def run(self) -> Stats:
        return self.phases["run"]

    @property
    def last_interval_row(self) -> dict | None:
        return self.intervals[-1] if self.intervals else None

    def handle(self, message: Message) -> None:
        """One worker message, dispatched on its type; another protocol version fails that worker only."""
        worker_id = sender_of(message)
        if worker_id is None:
            self.crashes.append(f"a message nobody sent in this protocol: {type(message).__name__}")
            return
        state = self.workers.setdefault(worker_id, WorkerState(worker_id))
        state.last_seen_mono = time.monotonic()
        protocol = getattr(message, "protocol", None)
        if protocol != PROTOCOL_VERSION or type(message) not in self.handlers:
            self._refuse(state, protocol)
            return
        if not isinstance(message, Heartbeat):
            state.last_data_mono = state.last_seen_mono
        self.handlers[type(message)](state, message)

    def _refuse(self, state: WorkerState, protocol: int | None) -> None:
        state.status, state.active_users, state.inflight = "died", 0, 0
        spoken = f"protocol {protocol}" if protocol is not None else "an older release's messages"
        state.detail = (
            f"speaks {spoken}, this coordinator worker message protocol {PROTOCOL_VERSION}: install the "
            f"same amanflix-stress version everywhere; its {state.users} users are not counted"
        )

    def _on_hello(self, state: WorkerState, hello: Hello) -> None:
        state.pid, state.host, state.users = hello.pid, hello.host, hello.users
        state.health.core = hello.core

    def _on_ready(self, state: WorkerState, ready: Ready) -> None:
        state.status, state.detail = "ready", f"{ready.users_dropped} users dropped in setup"

    def _on_heartbeat(self, state: WorkerState, beat: Heartbeat) -> None:
        state.last_beat_mono = state.last_seen_mono  # alive; its batches may still be late (slow, not hung)

    def _on_crash(self, state: WorkerState, crash: Crash) -> None:
        self.crashes.append(f"worker {state.id}: {crash.text}")

    def _on_done(self, state: WorkerState, done: Done) -> None:
        state.status = "done"
        state.active_users = state.inflight = 0
        for key, count in done.counters.items():
            self.counters[key] = self.counters.get(key, 0) + count
        if done.hung_users:
            state.detail = f"{done.hung_users} user threads did not stop in time"

    def _on_batch(self, state: WorkerState, batch: Batch) -> None:
        state.active_users, state.inflight = batch.active_users, batch.inflight
        if batch.phase == "run":
            state.status = "running" if state.status in ("starting", "ready") else state.status
            state.first_cpu = state.first_cpu or (batch.cpu_s, batch.wall_s)
            state.last_cpu = (batch.cpu_s, batch.wall_s)
            if batch.health:
                state.health.add(batch.health)
        if batch.arrivals is not None:
            state.arrivals = batch.arrivals
        for index, plain in batch.intervals:
            stats = Stats.from_plain(plain)
            self.phases[batch.phase].merge(stats)
            if batch.phase == "run":
                self._add_to_interval(index, stats)

    def _add_to_interval(self, index: int, stats: Stats) -> None:
        if index <= self.closed_upto:
            self.late_batches += 1
            return
        self.open_intervals.setdefault(index, Stats()).merge(stats)
        # users active while the interval ran, not when it is closed (after the run that is 0)
        active = sum(w.active_users for w in self.workers.values())
        self.interval_users[index] = max(self.interval_users.get(index, 0), active)

    def close_intervals(self, now_s: float, final: bool = False) -> None:
        """Close each interval that is over (all when final): its row joins `intervals`, then the sink."""
        run_start_s = self.start_s
        if run_start_s is None:
            return
        for index in sorted(self.open_intervals):
            end_s = run_start_s + (index + 1) * self.interval_s
            if not final and now_s < end_s + CLOSE_GRACE_S:
                break
            row = self._interval_row(
                index, self.open_intervals.pop(index), run_start_s, min(end_s, now_s) if final else end_s
            )
            self.closed_upto = index
            self.intervals.append(row)
            self.on_interval(row)

    def _interval_row(self, index: int, stats: Stats, run_start_s: float, end_s: float) -> dict:
        start_s = run_start_s + index * self.interval_s
        span_s = max(end_s - start_s, 1e-9)
        total = total_series(stats)
        p50, _p90, p95, p99, _p999 = total.percentiles_us()
        return {
            "interval": index,
            "start_s": round(start_s, 3),
            "end_s": round(end_s, 3),
            "requests": stats.requests,
            "failures": stats.failures,
            "rps": round(stats.requests / span_s, 3),
            "p50_ms": ms(p50),
            "p95_ms": ms(p95),
            "p99_ms": ms(p99),
            "active_users": self.interval_users.pop(index, 0),
            "errors": stats.count_by_class(),
            "endpoints": {
                r["name"]: {k: r[k] for k in ("requests", "failures", "p50_ms", "p95_ms", "p99_ms")}
                for r in endpoint_rows(stats, span_s)
            },
        }

    def progress(self, now_s: float) -> dict:
        """A snapshot for the live progress line: preparing users, the measured phase, or verification."""
        run_start_s = self.start_s
        phase = "run" if run_start_s else "setup"
        if self.phases["teardown"].requests:
            phase = "teardown"
        if phase != "run" or not run_start_s:  # the second test only tells mypy: "run" has a start time
            stats = self.phases[phase]
            ready = sum(w.status in ("ready", "running", "done") for w in self.workers.values())
            return {
                "phase": phase,
                "requests": stats.requests,
                "failures": stats.failures,
                "workers_ready": ready,
                "workers": len(self.workers),
            }
        elapsed = max(now_s - run_start_s, 1e-9)
        last = self.last_interval_row or {}
        return {
            "phase": "run",
            "elapsed_s": elapsed,
            "requests": self.run.requests,
            "failures": self.run.failures,
            "rps": last.get("rps", self.run.requests / elapsed),  # the run so far until an interval closes
            "p95_ms": last.get("p95_ms"),
            "active_users": sum(w.active_users for w in self.workers.values()),
        }

    def worker_rows(self) -> list[dict]:
        rows = []
        for state in sorted(self.workers.values(), key=lambda s: s.id):
            cpu = None
            if state.first_cpu and state.last_cpu and state.last_cpu[1] > state.first_cpu[1]:
                cpu = round(
                    (state.last_cpu[0] - state.first_cpu[0]) / (state.last_cpu[1] - state.first_cpu[1]), 3
                )
            rows.append(
                {
                    "id": state.id,
                    "pid": state.pid,
                    "host": state.host,
                    "users": state.users,
                    "status": state.status,
                    "detail": state.detail,
                    "cpu_cores": cpu,
                }
            )
        return rows

    def health_rows(self) -> list[dict]:
        """Each worker's self-health over the measured phase (see health.py)."""
        states = sorted(self.workers.values(), key=lambda s: s.id)
        return [{"id": state.id, **state.health.summary()} for state in states]

    def arrival_counts(self) -> dict:
        """Open model: arrivals taken, dropped and late, summed over the workers."""
        totals = {"taken": 0, "dropped": 0, "late": 0}
        for state in self.workers.values():
            for key, count in (state.arrivals or {}).items():
                totals[key] = totals.get(key, 0) + count
        return totals

    def error_rows(self, stats: Stats) -> list[dict]:
        total = stats.requests or 1
        rows = []
        for (kind, status, message), group in stats.errors.items():
            rows.append(
                {
                    "class": kind,
                    "status": status,
                    "message": message,
                    "count": group.count,
                    "share": round(group.count / total, 6),
                    "first_seen_s": group.first_s,
                    "last_seen_s": group.last_s,
                    "endpoints": dict(sorted(group.endpoints.items())),
                    "example": group.example,
                    "inflight_mean": round(group.inflight_sum / group.count, 2),
                    "inflight_max": group.inflight_max,
                }
            )
        return sorted(rows, key=lambda r: (-r["count"], r["class"]))

    def user_rows(self, stats: Stats) -> list[dict]:
        rows = []
        for user, tally in sorted(stats.users.items()):
            by_class = {k: v for k, v in tally.items() if k != "requests"}
            rows.append(
                {
                    "user": user,
                    "requests": tally["requests"],
                    "failures": sum(by_class.values()),
                    "errors": by_class,
                }
            )
        return rows


def sender_of(message: object) -> int | None:
    """The worker a message came from; also for a tuple from a release before typed messages."""
    worker_id = getattr(message, "worker_id", None)
    if worker_id is None and isinstance(message, tuple) and len(message) == 3:
        worker_id = message[1]
    return worker_id if isinstance(worker_id, int) else None
