"""The open-model schedule: due times, ramps, worker shares and dropping, as a table (clock passed in)."""

import pytest

from amanflix_stress.engine.pacing import (
    LATE_AFTER_S,
    ArrivalSchedule,
    arrival_time_s,
    arrivals_by,
    build_segments,
    total_arrivals,
)


@pytest.mark.parametrize(
    "rate, stages, total_s, k, due_s",
    [
        (10, [], 5, 0, 0.0),  # constant rate: the first arrival at the start
        (10, [], 5, 1, 0.1),
        (10, [], 5, 49, 4.9),
        (10, [], 5, 50, None),  # the schedule ends
        (0, [[10, 20]], 10, 1, 1.0),  # ramp 0 -> 20/s over 10 s: N(t) = t^2, so arrival 1 at 1 s
        (0, [[10, 20]], 10, 4, 2.0),
        (0, [[10, 20]], 10, 99, 9.9499),
        (0, [[10, 20]], 10, 100, None),
        (20, [[10, 0]], 10, 19, 1.0),
        (20, [[10, 0]], 10, 99, 9.0),  # ramp down 20 -> 0: N(t) = 20t - t^2
        (5, [[2, 5], [2, 15]], 4, 10, 2.0),  # hold 5/s for 2 s (10 arrivals), then ramp to 15/s
        (5, [[2, 5], [2, 15]], 4, 30, None),  # 10 + (5 + 15) / 2 * 2 = 30 arrivals: arrival 30 does not exist
        (0, [[2, 0], [1, 10]], 3, 0, 2.0),  # a silent stage: nothing is due before the ramp starts
        (10, [[1, 10]], 3, 25, 2.5),  # after the stages the last rate holds until the end
    ],
)
def test_arrival_due_times(rate, stages, total_s, k, due_s):
    segments = build_segments(rate, stages, total_s)
    got = arrival_time_s(segments, k)
    if due_s is None:
        assert got is None
    else:
        assert got == pytest.approx(due_s, abs=1e-3)


@pytest.mark.parametrize(
    "rate, stages, total_s, expected",
    [
        (10, [], 5, 50),
        (0, [[10, 20]], 10, 100),
        (5, [[2, 5], [2, 15]], 4, 30),
        (3.5, [], 1, 4),
        (0, [], 10, 0),
        (10, [[60, 10]], 5, 50),  # stages longer than the run are cut at its end
    ],
)
def test_total_arrivals_counts_every_arrival_the_schedule_holds(rate, stages, total_s, expected):
    segments = build_segments(rate, stages, total_s)
    assert total_arrivals(segments) == expected
    due = [arrival_time_s(segments, k) for k in range(expected + 1)]
    assert None not in due[:-1] and due[-1] is None
    assert due[:-1] == sorted(due[:-1])


def test_arrivals_by_is_the_integral_of_the_rate():
    segments = build_segments(0, [[10, 20]], 10)
    assert [arrivals_by(segments, t) for t in (0, 1, 5, 10, 99)] == pytest.approx([0, 1, 25, 100, 100])


def test_two_workers_share_the_arrivals_without_overlap():
    segments = build_segments(10, [], 2)
    shares = [ArrivalSchedule(segments, wid, 2) for wid in (0, 1)]
    due = [[s.take(0.0) for _ in range(11)] for s in shares]
    assert due[0][:10] == pytest.approx([0.2 * i for i in range(10)]) and due[0][10] is None
    assert due[1][:10] == pytest.approx([0.1 + 0.2 * i for i in range(10)]) and due[1][10] is None


def test_arrivals_overdue_beyond_the_bound_are_dropped_and_counted():
    schedule = ArrivalSchedule(build_segments(100, [], 10), drop_after_s=1.0)
    assert schedule.take(0.0) == 0.0
    # the only thread returned 3.5 s later: arrivals due before 2.5 s are dropped; the one at 2.5 s is taken
    assert schedule.take(3.5) == pytest.approx(2.5)
    assert schedule.counts() == {"taken": 2, "dropped": 249, "late": 0}


def test_a_worker_share_drops_only_its_own_arrivals():
    schedule = ArrivalSchedule(build_segments(100, [], 10), worker_id=1, workers=2, drop_after_s=0.5)
    assert schedule.take(2.0) == pytest.approx(
        1.51
    )  # its arrivals are the odd ones: 1, 3, ... 151 is the next
    assert schedule.dropped == 75  # arrivals 1, 3, ..., 149


def test_nothing_is_dropped_past_the_end_of_the_schedule():
    schedule = ArrivalSchedule(build_segments(10, [], 1), drop_after_s=0.1)
    assert schedule.take(50.0) is None
    assert schedule.counts() == {"taken": 0, "dropped": 10, "late": 0}


def test_late_means_more_than_the_bound_after_the_due_time():
    schedule = ArrivalSchedule(build_segments(10, [], 1))
    assert [schedule.count_late(s) for s in (0.0, LATE_AFTER_S, LATE_AFTER_S * 1.5, 2.0)] == [
        False,
        False,
        True,
        True,
    ]
    assert schedule.late == 2
