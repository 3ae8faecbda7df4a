"""Behaviours for tests/test_scale.py, imported by spawned worker processes (the test puts this folder on
sys.path, which spawn passes on). Each may retune the worker's constants in its own process when imported:
the module is imported when the worker builds its users, before its measured phase reads them."""

from __future__ import annotations

import os
import threading

from amanflix_stress.engine import worker
from amanflix_stress.engine.user import User

HOLD_S = 5.0  # how long a step blocks past the stop: longer than the tests' silence limit


if os.environ.get("AMFX_TEST_LATE_BATCHES"):  # the main loop ships no batch during the run: heartbeats only
    worker.BATCH_S = 60.0
if os.environ.get("AMFX_TEST_NO_HEARTBEAT"):  # the heartbeat thread stays quiet: batches only
    worker.HEARTBEAT_S = 60.0


class BlockingUser(User):
    """Every step blocks until the stop (its thread is busy all run long): nothing to measure, no request."""

    def step(self) -> None:
        self.ctx.stop.wait(30.0)


class StubbornUser(User):
    """A step that goes on HOLD_S after the stop (a slow request in flight when the run ends)."""

    def step(self) -> None:
        self.ctx.stop.wait(30.0)
        threading.Event().wait(HOLD_S)


DEAF_S = 60.0  # how long a deaf user's step lasts: far past any run's deadline in the tests


class DeafUser(User):
    """A step that hears neither the stop nor the deadline (a user stuck in a call that never returns)."""

    def step(self) -> None:
        threading.Event().wait(DEAF_S)
