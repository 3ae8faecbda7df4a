"""What a worker tells the coordinator: one frozen record per message, over a local or a Dask queue alike."""

from __future__ import annotations

from dataclasses import dataclass, field

# Raise it whenever a message's fields change: the aggregator refuses (as that worker's failure) the
# messages of a worker that speaks another version, e.g. a Dask worker with another release installed.
PROTOCOL_VERSION = 2  # 2: Heartbeat


@dataclass(frozen=True)
class Hello:
    """The worker started: where it runs and how many users it has."""

    worker_id: int
    pid: int
    host: str
    users: int
    core: int | None  # the core it pinned itself to, if any
    protocol: int = field(default=PROTOCOL_VERSION, kw_only=True)


@dataclass(frozen=True)
class Ready:
    """Setup is over: its users are registered (or dropped) and it waits for go."""

    worker_id: int
    users_ready: int
    users_dropped: int
    protocol: int = field(default=PROTOCOL_VERSION, kw_only=True)


@dataclass(frozen=True)
class Batch:
    """What was measured since the last batch (also the worker's heartbeat), grouped by interval."""

    worker_id: int
    phase: str  # setup, run or teardown
    intervals: tuple[tuple[int, dict], ...]  # (interval index, Stats.to_plain()); index -1 outside the run
    active_users: int
    inflight: int
    cpu_s: float  # the process's CPU clock ...
    wall_s: float  # ... and the wall clock when the batch was cut
    health: dict | None = None  # HealthMeter.snapshot()
    arrivals: dict | None = None  # open model: arrival counts so far (taken, dropped, late)
    protocol: int = field(default=PROTOCOL_VERSION, kw_only=True)


@dataclass(frozen=True)
class Heartbeat:
    """The worker lives: sent every second from a thread of its own, whatever its main loop is doing."""

    worker_id: int
    phase: str  # setup, run or teardown
    active_users: int
    threads: int  # threads alive in the worker process
    protocol: int = field(default=PROTOCOL_VERSION, kw_only=True)


@dataclass(frozen=True)
class Crash:
    """A user or a setup job raised (a programming error); the worker goes on. Text: no exception objects."""

    worker_id: int
    text: str  # a formatted traceback, or why a share was refused
    protocol: int = field(default=PROTOCOL_VERSION, kw_only=True)


@dataclass(frozen=True)
class Done:
    """The worker ended: its users, threads that would not stop, and the behaviour's counters summed."""

    worker_id: int
    users: int
    hung_users: int
    counters: dict[str, int]
    protocol: int = field(default=PROTOCOL_VERSION, kw_only=True)


Message = Hello | Ready | Batch | Heartbeat | Crash | Done
