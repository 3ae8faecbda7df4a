"""The aggregator alone: typed worker messages in, interval rows out; the clock is passed in, no sleeps."""

import json
import pickle

import pytest

from amanflix_stress.engine.aggregator import CLOSE_GRACE_S, Aggregator
from amanflix_stress.engine.messages import PROTOCOL_VERSION, Batch, Crash, Done, Hello, Ready
from amanflix_stress.engine.sample import Sample
from amanflix_stress.engine.stats import Stats
from amanflix_stress.output.timeseries import TimeSeriesWriter

START_S = 1_000.0
INTERVAL_S = 5.0


def plain(requests: int, error: str = "", latency_us: int = 2_000) -> dict:
    """A worker's Stats for `requests` calls of GET /x, as it ships them."""
    stats = Stats()
    status, message = (500, "boom") if error else (200, "")
    stats.add_samples([Sample("GET /x", status, error, message, latency_us, START_S, 0)] * requests)
    return stats.to_plain()


def batch(worker_id: int, *intervals, active_users: int = 1, phase: str = "run", **fields) -> Batch:
    return Batch(
        worker_id,
        phase,
        tuple(intervals),
        active_users=active_users,
        inflight=0,
        cpu_s=fields.pop("cpu_s", 0.0),
        wall_s=fields.pop("wall_s", START_S),
        **fields,
    )


@pytest.fixture
def agg():
    """An aggregator in its measured phase, two workers said hello; its sink collects the closed rows."""
    rows: list[dict] = []
    aggregator = Aggregator(INTERVAL_S, rows.append)
    for wid in (0, 1):
        aggregator.handle(Hello(wid, pid=100 + wid, host="loadbox", users=2, core=wid))
    aggregator.begin(START_S)
    return aggregator, rows


def end_of(index: int) -> float:
    return START_S + (index + 1) * INTERVAL_S


def test_an_interval_closes_only_after_the_grace_past_its_end(agg):
    aggregator, rows = agg
    aggregator.handle(batch(0, (0, plain(3)), (1, plain(2))))
    aggregator.close_intervals(end_of(0) + CLOSE_GRACE_S - 0.001)
    assert rows == [] and aggregator.intervals == []
    aggregator.close_intervals(end_of(0) + CLOSE_GRACE_S)
    assert [(r["interval"], r["requests"], r["end_s"]) for r in rows] == [(0, 3, end_of(0))]
    aggregator.close_intervals(end_of(1) + CLOSE_GRACE_S - 0.001)  # interval 1 is over, but within its grace
    assert len(rows) == 1
    aggregator.close_intervals(end_of(1) + CLOSE_GRACE_S)
    assert [r["interval"] for r in rows] == [0, 1] and aggregator.intervals == rows
    assert rows[0]["rps"] == 3 / INTERVAL_S and rows[0]["endpoints"]["GET /x"]["requests"] == 3


def test_a_batch_for_a_closed_interval_is_late_and_counts_only_in_the_totals(agg):
    aggregator, rows = agg
    aggregator.handle(batch(0, (0, plain(3))))
    aggregator.close_intervals(end_of(0) + CLOSE_GRACE_S)
    aggregator.handle(batch(1, (0, plain(2, error="http_5xx")), (1, plain(1))))
    assert aggregator.late_batches == 1
    assert aggregator.run.requests == 6 and aggregator.run.failures == 2
    aggregator.close_intervals(end_of(1) + 0.5, final=True)
    assert [(r["interval"], r["requests"], r["errors"]) for r in rows] == [(0, 3, {}), (1, 1, {})]


def test_the_final_close_writes_the_last_partial_interval_with_its_true_end(agg):
    aggregator, rows = agg
    aggregator.handle(batch(0, (0, plain(5)), (1, plain(4))))
    stop_s = START_S + 7.0  # the run stopped 2 s into interval 1, long before its grace
    aggregator.close_intervals(stop_s, final=True)
    first, last = rows
    assert (first["start_s"], first["end_s"]) == (START_S, end_of(0))
    assert (last["interval"], last["start_s"], last["end_s"]) == (1, START_S + INTERVAL_S, stop_s)
    assert last["rps"] == 4 / 2.0  # over the 2 s the interval really lasted, not 5
    assert aggregator.open_intervals == {}


def test_each_interval_shows_the_users_active_while_it_ran_not_when_it_closed(agg):
    aggregator, rows = agg
    aggregator.handle(batch(0, (0, plain(1)), active_users=3))
    aggregator.handle(batch(1, (0, plain(1)), active_users=2))  # 3 + 2 at once
    aggregator.handle(batch(0, (0, plain(1)), active_users=1))  # fewer later: the most at once stays
    aggregator.handle(Done(0, users=2, hung_users=0, counters={}))
    aggregator.handle(batch(1, (1, plain(1)), active_users=1))
    aggregator.handle(Done(1, users=2, hung_users=0, counters={}))
    aggregator.close_intervals(end_of(1), final=True)  # every user has stopped by now
    assert [r["active_users"] for r in rows] == [5, 1]


def test_messages_are_dispatched_on_their_type(agg):
    aggregator, _rows = agg
    aggregator.handle(Ready(0, users_ready=2, users_dropped=0))
    aggregator.handle(Ready(1, users_ready=1, users_dropped=1))
    aggregator.handle(batch(0, (-1, plain(2)), phase="setup", active_users=0))
    aggregator.handle(batch(0, (0, plain(3)), cpu_s=1.0, wall_s=START_S, arrivals={"taken": 3}))
    aggregator.handle(batch(0, cpu_s=1.5, wall_s=START_S + 1.0))  # an empty batch: a heartbeat with clocks
    aggregator.handle(Crash(1, "Traceback: ValueError"))
    aggregator.handle(Done(0, users=2, hung_users=0, counters={"accounts_created": 2}))
    aggregator.handle(Done(1, users=1, hung_users=1, counters={"accounts_created": 1, "relogins": 4}))
    assert aggregator.phases["setup"].requests == 2 and aggregator.run.requests == 3
    assert aggregator.counters == {"accounts_created": 3, "relogins": 4}
    assert aggregator.crashes == ["worker 1: Traceback: ValueError"]
    assert aggregator.arrival_counts() == {"taken": 3, "dropped": 0, "late": 0}
    first, second = aggregator.worker_rows()
    assert (first["pid"], first["host"], first["status"], first["cpu_cores"]) == (100, "loadbox", "done", 0.5)
    assert second["status"] == "done" and second["detail"] == "1 user threads did not stop in time"


def test_another_protocol_version_is_that_workers_failure_not_a_crash(agg):
    aggregator, _rows = agg
    other_release = Batch(1, "run", ((0, plain(7)),), 2, 0, 0.0, START_S, protocol=PROTOCOL_VERSION + 1)
    aggregator.handle(pickle.loads(pickle.dumps(other_release)))  # as the Dask transport delivers it
    aggregator.handle(batch(0, (0, plain(3))))
    assert aggregator.run.requests == 3 and aggregator.crashes == []
    rows = {row["id"]: row for row in aggregator.worker_rows()}
    assert rows[1]["status"] == "died" and f"protocol {PROTOCOL_VERSION + 1}" in rows[1]["detail"]
    assert "its 2 users are not counted" in rows[1]["detail"]
    assert rows[0]["status"] == "running"


def test_a_tuple_from_a_release_before_typed_messages_fails_only_its_worker(agg):
    aggregator, _rows = agg
    aggregator.handle(("batch", 1, {"phase": "run", "intervals": [[0, plain(4)]]}))
    rows = {row["id"]: row for row in aggregator.worker_rows()}
    assert rows[1]["status"] == "died" and "older release" in rows[1]["detail"]
    assert aggregator.run.requests == 0 and aggregator.crashes == []


def test_the_time_series_writer_appends_each_closed_row_to_a_fresh_file(tmp_path):
    path = tmp_path / "runs" / "r.timeseries.jsonl"
    path.parent.mkdir()
    path.write_text('{"interval": 99}\n')  # an earlier run's file at the same report path
    aggregator = Aggregator(INTERVAL_S, TimeSeriesWriter(str(path)))
    assert path.read_text() == ""
    aggregator.begin(START_S)
    aggregator.handle(batch(0, (0, plain(3)), (1, plain(1))))
    aggregator.close_intervals(end_of(0) + CLOSE_GRACE_S)
    assert [json.loads(line) for line in path.read_text().splitlines()] == aggregator.intervals
    aggregator.close_intervals(START_S + 6.0, final=True)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == aggregator.intervals and [r["interval"] for r in lines] == [0, 1]
