"""Many users per worker: a worker busy with its users still reports on time, and the stop is staggered."""

from __future__ import annotations

from pathlib import Path

import pytest
from scale_behaviours import HOLD_S

from amanflix_stress.engine import coordinator
from amanflix_stress.engine.coordinator import Coordinator
from amanflix_stress.engine.plan import RunPlan, WorkerShare, worker_shares
from amanflix_stress.engine.worker import STOP_GROUP, Worker

pytestmark = pytest.mark.slow
SILENCE_S = 2.0  # the coordinator's silence limit, shrunk: batches and heartbeats come every second


def blocking_plan(server, behaviour: str, duration_s: float = 4.0) -> RunPlan:
    return RunPlan(
        base_url=server.url,
        users=20,
        workers=1,
        duration_s=duration_s,
        spawn_rate=1000,
        behaviour_path=f"scale_behaviours:{behaviour}",
        pin_cores=False,
        timeout_s=8.0,  # the worker waits this long for its users after the stop
    )


@pytest.fixture
def behaviours(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # spawn hands sys.path to the workers
    monkeypatch.setattr(coordinator, "WORKER_SILENCE_S", SILENCE_S)
    return monkeypatch


def test_a_worker_whose_batches_are_late_but_heartbeat_comes_is_slow_not_hung(server, behaviours):
    behaviours.setenv("AMFX_TEST_LATE_BATCHES", "1")  # every user thread blocked, the main loop ships nothing
    result = Coordinator(blocking_plan(server, "BlockingUser")).run()
    [row] = result.aggregator.worker_rows()
    assert row["status"] == "done", row
    assert row["detail"].startswith("slow: no batch for over 2 s while its heartbeat came on time")


def test_without_a_heartbeat_the_same_worker_is_reported_hung(server, behaviours):
    behaviours.setenv("AMFX_TEST_LATE_BATCHES", "1")
    behaviours.setenv("AMFX_TEST_NO_HEARTBEAT", "1")
    result = Coordinator(blocking_plan(server, "BlockingUser")).run()
    [row] = result.aggregator.worker_rows()
    assert row["status"] == "hung" and "silent for 2 s" in row["detail"]


def test_a_worker_waiting_for_users_that_outlast_the_stop_keeps_reporting(server, behaviours):
    behaviours.setenv("AMFX_TEST_NO_HEARTBEAT", "1")  # batches alone must cover the wait at the stop
    result = Coordinator(blocking_plan(server, "StubbornUser", duration_s=1.0)).run()
    [row] = result.aggregator.worker_rows()
    assert row["status"] == "done", row
    assert result.end_s - result.start_s > HOLD_S  # it did wait for the users' steps past the stop


def share_of(server, users: int) -> WorkerShare:
    settings = {"requests": [{"method": "GET", "path": "/ok"}]}
    plan = RunPlan(base_url=server.url, users=users, workers=1, pin_cores=False, settings=settings)
    return worker_shares(plan, {})[0]


def test_users_share_a_stop_event_by_group_and_the_stop_reaches_every_group(server):
    worker = Worker(share_of(server, 2 * STOP_GROUP + 1), results=None, control=None)
    users = [worker.make_user(index) for index, _offset in worker.share.users]
    stops = [user.ctx.stop for user in users]
    assert len({id(s) for s in stops}) == 3  # three groups: STOP_GROUP, STOP_GROUP, 1
    assert stops[0] is stops[STOP_GROUP - 1] and stops[0] is not stops[STOP_GROUP]
    worker.results = type("Sink", (), {"put": lambda self, message: None})()
    worker.stop_users_in_turn()
    assert all(s.is_set() for s in stops)
    for user in users:
        user.close()
