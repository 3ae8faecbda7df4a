"""Simulated users: the seam every behaviour plugs into, and the plain weighted-list-of-calls user."""

from __future__ import annotations

import importlib
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from amanflix_stress.engine.client import HttpClient
from amanflix_stress.engine.plan import RunPlan

if TYPE_CHECKING:  # the coordinator imports this module: only the type checker needs RunResult here
    from amanflix_stress.engine.coordinator import RunResult


@dataclass
class UserContext:
    """What a worker hands each simulated user."""

    index: int  # global user index, unique across workers and hosts
    worker_id: int
    run_id: str
    base_url: str
    settings: dict  # the behaviour's settings from the profile (plain data)
    shared: dict  # run-wide data prepared once by the behaviour's prepare_run (e.g. the catalog)
    stop: threading.Event
    rng: random.Random
    new_client: Callable[[], HttpClient]
    start_s: float = 0.0  # wall-clock start of the measured phase, the same in every worker
    open_model: bool = False  # arrivals pace the user (--rate), so its think time is skipped

    def sleep(self, seconds: float) -> bool:
        """Think time that a stop interrupts: True if the user should go on."""
        if seconds <= 0:  # Event.wait(0) still takes a lock and a condition: the hot path of no-think runs
            return not self.stop.is_set()
        return not self.stop.wait(seconds)

    def think(self) -> bool:
        if self.open_model:
            return not self.stop.is_set()
        low, high = self.settings.get("think_time_s", (0.0, 0.0))
        return self.sleep(self.rng.uniform(low, high))


class Behaviour(Protocol):
    """What a plan's behaviour class must offer. A worker builds one instance per simulated user (from a
    UserContext) and runs setup, step until stopped, teardown, counters, close; the coordinator calls the
    run-wide hooks on the class itself, once per run. `User` below gives every member a default."""

    ctx: UserContext

    def __init__(self, ctx: UserContext) -> None: ...

    def setup(self) -> bool: ...

    def step(self) -> None: ...

    def teardown(self) -> None: ...

    def counters(self) -> dict[str, int]: ...

    def close(self) -> None: ...

    @staticmethod
    def prepare_run(plan: RunPlan) -> dict: ...

    @staticmethod
    def finish_run(plan: RunPlan, result: RunResult) -> Mapping[str, object]: ...


class User:
    """A simulated user: setup before the measured phase, then `step` until stopped, then teardown."""

    def __init__(self, ctx: UserContext) -> None:
        self.ctx = ctx
        self.client = ctx.new_client()

    def setup(self) -> bool:
        """Prepare before the measured phase; False drops this user (the reason is recorded as a Sample)."""
        return True

    def step(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        """Leave the target as found (end sessions, ...); runs after the stop."""

    def counters(self) -> dict[str, int]:
        """Behaviour-specific counts (accounts created, deleted, ...) summed over all users for the report."""
        return {}

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def prepare_run(plan: RunPlan) -> dict:
        """Once per run in the coordinator, before any worker starts: the data users get as ctx.shared."""
        return {}

    @staticmethod
    def finish_run(plan: RunPlan, result: RunResult) -> Mapping[str, object]:
        """Once per run in the coordinator, after the workers stopped: report sections to add (cleanup...)."""
        return {}


def behaviour_class(path: str) -> type[Behaviour]:
    """The behaviour class a plan names as 'module:Class'."""
    module_name, _, class_name = path.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


class HttpListUser(User):
    """Picks one call from the profile's weighted list, sends it, thinks, and repeats."""

    def __init__(self, ctx: UserContext) -> None:
        super().__init__(ctx)
        self.calls = ctx.settings["requests"]
        self.weights = [c.get("weight", 1) for c in self.calls]

    def step(self) -> None:
        call = self.ctx.rng.choices(self.calls, self.weights)[0]
        self.client.call(
            call.get("name") or f"{call['method']} {call['path']}",
            call["method"],
            call["path"],
            query=call.get("query"),
            form=call.get("form"),
            json=call.get("json"),
            headers=call.get("headers"),
            expect=call.get("expect") or range(200, 400),
        )
        self.ctx.think()
