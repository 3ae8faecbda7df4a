"""The run's plan as frozen data: the whole run (RunPlan) and each worker's share of it (WorkerShare)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

# Behaviours are named in the plan as import paths, so a plan stays plain, picklable data.
HTTP_LIST_USER = "amanflix_stress.engine.user:HttpListUser"


def _no_credentials() -> None:
    """What a copy of AdminCredentials becomes: nothing (see AdminCredentials.__reduce__)."""
    return None


class AdminCredentials:
    """An admin account for cleanup. Its repr is masked, and it never crosses a process or reaches a file:
    pickling (a worker's share, a Dask task) or deep-copying (dataclasses.asdict) yields None."""

    __slots__ = ("password", "user")

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    def __repr__(self) -> str:
        return f"AdminCredentials(user={self.user!r}, password='***')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AdminCredentials) and (self.user, self.password) == (
            other.user,
            other.password,
        )

    def __hash__(self) -> int:
        return hash((self.user, self.password))

    def __reduce__(self):
        return _no_credentials, ()


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs, resolved from the profile and the flags; change it with dataclasses.replace."""

    base_url: str
    users: int = 10
    duration_s: float = 60.0
    spawn_rate: float = 10.0
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_concurrent: int = 0  # 0: no cap
    behaviour: str = "http"  # the behaviour's name, as the report shows it
    behaviour_path: str = HTTP_LIST_USER  # the User class to run, 'module:Class'
    settings: dict = field(default_factory=dict)
    timeout_s: float = 30.0
    connect_timeout_s: float = 3.0
    seed: int = 0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    interval_s: float = 5.0
    timeseries_path: str | None = None
    setup_concurrency: int = 8
    setup_timeout_s: float = 600.0
    teardown_timeout_s: float = 60.0
    rate: float = 0.0  # open model: arrivals per second (0 with no stages: closed model, users think)
    stages: tuple = ()  # open model: ((duration_s, rate), ...) ramps after `rate`
    pin_cores: bool = True  # pin each worker process to one core where the platform allows
    # only the coordinator uses it (cleanup); never part of a WorkerShare, masked in repr, dropped by pickle
    admin: AdminCredentials | None = field(default=None, repr=False, compare=False)

    @property
    def open_model(self) -> bool:
        return bool(self.rate or self.stages)


@dataclass(frozen=True)
class WorkerShare:
    """What one worker needs to run its users anywhere (a local process or a Dask task); picklable."""

    worker_id: int
    workers: int  # how many shares the run has: the open model splits its arrivals by it
    users: tuple[tuple[int, float], ...]  # (global user index, start offset s)
    shared: dict  # run-wide data from the behaviour's prepare_run (the catalog, ...)
    run_id: str
    base_url: str
    behaviour_path: str
    settings: dict
    duration_s: float
    timeout_s: float
    connect_timeout_s: float
    interval_s: float
    seed: int
    setup_concurrency: int
    setup_timeout_s: float
    teardown_timeout_s: float
    rate: float
    stages: tuple
    pin_cores: bool

    @property
    def open_model(self) -> bool:
        return bool(self.rate or self.stages)


def user_schedule(plan: RunPlan) -> list[tuple[tuple[int, float], ...]]:
    """Each worker's (user index, start offset s) pairs: user i starts at i / spawn_rate, round robin."""
    n_workers = max(1, min(plan.workers, plan.users))
    shares: list[list[tuple[int, float]]] = [[] for _ in range(n_workers)]
    for index in range(plan.users):
        shares[index % n_workers].append((index, index / plan.spawn_rate if plan.spawn_rate > 0 else 0.0))
    return [tuple(share) for share in shares]


def worker_shares(plan: RunPlan, shared: dict) -> list[WorkerShare]:
    """One share per worker: the plan's engine fields, its users, the shared run data; no credentials."""
    schedule = user_schedule(plan)
    return [
        WorkerShare(
            worker_id=wid,
            workers=len(schedule),
            users=users,
            shared=shared,
            run_id=plan.run_id,
            base_url=plan.base_url,
            behaviour_path=plan.behaviour_path,
            settings=plan.settings,
            duration_s=plan.duration_s,
            timeout_s=plan.timeout_s,
            connect_timeout_s=plan.connect_timeout_s,
            interval_s=plan.interval_s,
            seed=plan.seed,
            setup_concurrency=plan.setup_concurrency,
            setup_timeout_s=plan.setup_timeout_s,
            teardown_timeout_s=plan.teardown_timeout_s,
            rate=plan.rate,
            stages=plan.stages,
            pin_cores=plan.pin_cores,
        )
        for wid, users in enumerate(schedule)
    ]
