"""Real threads against a real server, made deterministic by a lock held from a second connection:
upstream loses every write queued behind it and duplicates concurrent first writes; fixed does neither."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from amanflix_stress.sandbox import SandboxConfig, start_sandbox

from .conftest import FAST_HASH, Api, lock_retry_lines
from .test_locks import held_lock

WRITERS = 8  # concurrent requests; below the 15-connection pool so none waits for a connection
RACE_USERS, RACE_WRITERS = 4, 2  # 4 users x 2 simultaneous first writes of the same title
SHORT_BUSY_S = 0.05  # writes give up quickly behind the held lock
LONG_BUSY_S = 10.0  # writes outlast the held lock, released as soon as they are all queued
QUEUE_TIMEOUT_S = 30.0


def sandbox(tmp_path, mode: str, busy_timeout_s: float):
    cfg = SandboxConfig(
        mode=mode,
        db_path=str(tmp_path / f"{mode}.db"),
        busy_timeout_s=busy_timeout_s,
        hash_iterations=FAST_HASH,
        debug=False,
    )
    return start_sandbox(cfg)


def concurrently(calls: list) -> list:
    """Run every call in its own thread, all released at once; the responses in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(QUEUE_TIMEOUT_S)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def queued_behind_a_lock(api: Api, calls: list, release: bool) -> list:
    """Fire `calls` while a RESERVED lock is held; with `release`, drop it once all are in the commit helper
    (their reads done, their writes waiting on the lock), else keep it until every answer is back."""
    with ThreadPoolExecutor(1) as runner:
        with held_lock(api.server.db_path):  # released before the runner is joined
            answers = runner.submit(concurrently, calls)
            if not release:
                return answers.result(QUEUE_TIMEOUT_S)
            assert api.server.wait_for_writes(len(calls), QUEUE_TIMEOUT_S)
        return answers.result(QUEUE_TIMEOUT_S)


def update_calls(api: Api, tokens: list) -> list:
    return [lambda t=t: api.watch(t, 603, 20, duration=1e6) for t in tokens]


def first_write_calls(api: Api, tokens: list) -> list:
    return [lambda t=t: api.watch(t, 13, 1) for t in tokens for _ in range(RACE_WRITERS)]


def users(api: Api, count: int, watched: bool) -> list:
    tokens = [api.register()[1] for _ in range(count)]
    for token in tokens if watched else []:
        assert api.watch(token, 603, 10, duration=1e6).json()["watch_timestamp"] == 10
    return tokens


def test_upstream_loses_every_write_queued_behind_a_lock(tmp_path):
    with sandbox(tmp_path, "upstream", SHORT_BUSY_S) as srv:
        api = Api(srv)
        answers = queued_behind_a_lock(api, update_calls(api, users(api, WRITERS, watched=True)), False)
        truth = srv.truth()
        assert [(r.status_code, r.json()["watch_timestamp"]) for r in answers] == [(200, 10)] * WRITERS
        assert (
            truth["lost_writes"] == truth["lock_events"] == truth["lock_events_in_commit_helper"] == WRITERS
        )
        assert len(lock_retry_lines(srv)) == WRITERS


def test_upstream_concurrent_first_writes_duplicate_rows(tmp_path):
    with sandbox(tmp_path, "upstream", LONG_BUSY_S) as srv:
        api = Api(srv)
        answers = queued_behind_a_lock(api, first_write_calls(api, users(api, RACE_USERS, False)), True)
        truth = srv.truth()
    assert [r.status_code for r in answers] == [200] * RACE_USERS * RACE_WRITERS
    assert truth["duplicate_watch_history_groups"] == RACE_USERS
    assert (
        truth["duplicate_watch_history_rows"] == truth["duplicate_watch_history_rows_created"] == RACE_USERS
    )
    assert truth["lock_events"] == truth["lost_writes"] == 0  # the lock only lined them up


@pytest.mark.parametrize("make_calls", [update_calls, first_write_calls], ids=["updates", "first-writes"])
def test_fixed_mode_behind_the_same_lock_loses_and_duplicates_nothing(tmp_path, make_calls):
    with sandbox(tmp_path, "fixed", LONG_BUSY_S) as srv:
        api = Api(srv)
        tokens = users(api, RACE_USERS, watched=make_calls is update_calls)
        answers = queued_behind_a_lock(api, make_calls(api, tokens), True)
        truth = srv.truth()
    expected_ts = 20 if make_calls is update_calls else 1
    assert all(r.status_code == 200 and r.json()["watch_timestamp"] == expected_ts for r in answers)
    assert truth["lost_writes"] == truth["lock_events"] == truth["duplicate_watch_history_rows"] == 0
