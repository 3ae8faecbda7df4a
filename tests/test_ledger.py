"""The write ledger decides who is blamed for a value the server shows: each case a false or missed alarm."""

from __future__ import annotations

import random
import types
from typing import NamedTuple

import pytest

from amanflix_stress.amanflix import ledger as ledger_module
from amanflix_stress.amanflix.ledger import WriteLedger, same

KEY = ("movie", 7, None, None)
PHONE, TV = 1, 2  # the two sessions (devices) of one account


class W(NamedTuple):
    """One watch-history write on the timeline: sent at send_s, answered at done_s (None: still in flight)."""

    name: str
    session: int
    value: float
    send_s: float
    done_s: float | None = None
    outcome: str = "acked"


class Clock:
    """The ledger's monotonic clock, moved by the test instead of by time passing."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def monotonic(self) -> float:
        return self.now_s


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ledger_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def replay(clock: Clock, writes: list[W], until_s: float) -> tuple[WriteLedger, dict]:
    """Begin and finish each write at its instants, in time order, up to until_s."""
    ledger, handles = WriteLedger(), {}
    events = [(w.send_s, 0, w) for w in writes]
    events += [(w.done_s, 1, w) for w in writes if w.done_s is not None]
    for at_s, kind, w in sorted(events, key=lambda e: (e[0], e[1])):
        if at_s > until_s:
            break
        clock.now_s = at_s
        if kind == 0:
            handles[w.name] = ledger.begin(KEY, w.session, w.value)
        else:
            ledger.finish(handles[w.name], w.outcome)
    clock.now_s = until_s
    return ledger, handles


def echo_verdict(clock: Clock, writes: list[W], mine: str, shown, at_s: float) -> str:
    """What journeys.judge_echo concludes from the 200 answer to my write (it judges before finishing it)."""
    ledger, handles = replay(clock, writes, at_s)
    return "ok" if ledger.explains(KEY, handles[mine], shown) else "lost_update"


ECHO_CASES = [
    ("my own value echoed", [W("me", PHONE, 40.5, 1.0)], 40.5, "ok"),
    ("an int sent comes back as the REAL column's float", [W("me", PHONE, 30, 1.0)], 30.0, "ok"),
    ("binary float noise after the REAL round trip", [W("me", PHONE, 0.3, 1.0)], 0.1 + 0.2, "ok"),
    ("the neighbouring position (positions step by 0.1 s)", [W("me", PHONE, 40.5, 1.0)], 40.4, "lost_update"),
    ("no watch_timestamp in the echo", [W("me", PHONE, 40.5, 1.0)], None, "lost_update"),
    ("a string is not a position", [W("me", PHONE, 40.5, 1.0)], "40.5", "lost_update"),
    (
        "the other device's write still in flight when mine was sent",
        [W("tv", TV, 90.0, 0.5, None), W("me", PHONE, 40.5, 1.0)],
        90.0,
        "ok",
    ),
    (
        "the other device's write answered while mine was in flight",
        [W("tv", TV, 90.0, 1.2, 1.4), W("me", PHONE, 40.5, 1.0)],
        90.0,
        "ok",
    ),
    (
        "the other device's write answered just as mine was sent",
        [W("tv", TV, 90.0, 0.5, 1.0), W("me", PHONE, 40.5, 1.0)],
        90.0,
        "ok",
    ),
    (
        "an older value: the other device's write was acknowledged before mine was sent",
        [W("tv", TV, 20.0, 0.2, 0.6), W("me", PHONE, 40.5, 1.0)],
        20.0,
        "lost_update",
    ),
    (
        "an older value: my own previous write, acknowledged before this one",
        [W("prev", PHONE, 30.0, 0.2, 0.6), W("me", PHONE, 40.5, 1.0)],
        30.0,
        "lost_update",
    ),
    (
        # a coarse clock gives both instants one tick: one session's writes are sequential all the same
        "an older value: my own previous write, answered in the same clock tick as this one was sent",
        [W("prev", PHONE, 30.0, 0.2, 1.0), W("me", PHONE, 40.5, 1.0)],
        30.0,
        "lost_update",
    ),
    (
        "the other device's overlapping write that was itself lost cannot be what the server holds",
        [W("tv", TV, 90.0, 0.8, 1.3, "lost"), W("me", PHONE, 40.5, 1.0)],
        90.0,
        "lost_update",
    ),
    (
        "a value nobody sent",
        [W("tv", TV, 90.0, 0.8, None), W("me", PHONE, 40.5, 1.0)],
        55.0,
        "lost_update",
    ),
]


@pytest.mark.parametrize(
    "writes, shown, verdict", [c[1:] for c in ECHO_CASES], ids=[c[0] for c in ECHO_CASES]
)
def test_an_echo_is_blamed_only_when_no_write_could_have_put_it_there(clock, writes, shown, verdict):
    assert echo_verdict(clock, writes, "me", shown, at_s=1.5) == verdict


def stored_verdict(clock: Clock, writes: list[W], shown, at_s: float) -> str:
    """What journeys.judge_stored concludes from a read-back (or the final verification pass)."""
    ledger, _handles = replay(clock, writes, at_s)
    valid = ledger.valid_final(KEY)
    if valid is None:
        return "not judged"
    return "ok" if any(same(shown, v) for v in valid) else "lost_write"


STORED_CASES = [
    (
        "nothing acknowledged: no claim to check",
        [W("me", PHONE, 40.5, 1.0, 1.2, "unknown")],
        None,
        "not judged",
    ),
    ("the acknowledged value is held", [W("me", PHONE, 40.5, 1.0, 1.2)], 40.5, "ok"),
    ("the acknowledged write is missing (404: no row)", [W("me", PHONE, 40.5, 1.0, 1.2)], None, "lost_write"),
    (
        "an older value after a later write was acknowledged",
        [W("a", PHONE, 30.0, 0.0, 0.5), W("b", PHONE, 40.5, 1.0, 1.2)],
        30.0,
        "lost_write",
    ),
    (
        "the other device's earlier write, acknowledged before mine started",
        [W("tv", TV, 90.0, 0.0, 0.5), W("me", PHONE, 40.5, 1.0, 1.2)],
        90.0,
        "lost_write",
    ),
    (
        "either of two overlapping acknowledged writes may have landed last",
        [W("tv", TV, 90.0, 0.9, 1.1), W("me", PHONE, 40.5, 1.0, 1.2)],
        90.0,
        "ok",
    ),
    (
        "a write still in flight at the read-back may already be stored",
        [W("me", PHONE, 40.5, 1.0, 1.2), W("tv", TV, 90.0, 1.5, None)],
        90.0,
        "ok",
    ),
    (
        "a write refused with a 4xx was not stored",
        [W("me", PHONE, 40.5, 1.0, 1.2), W("tv", TV, 90.0, 1.5, 1.6, "lost")],
        90.0,
        "lost_write",
    ),
    (
        # a read timeout ends our wait, not the server's: the write may still land after a later one
        "a timed-out write (outcome unknown) may land after a later acknowledged one",
        [W("slow", PHONE, 30.0, 0.0, 0.5, "unknown"), W("me", PHONE, 40.5, 1.0, 1.2)],
        30.0,
        "ok",
    ),
]


@pytest.mark.parametrize(
    "writes, shown, verdict", [c[1:] for c in STORED_CASES], ids=[c[0] for c in STORED_CASES]
)
def test_a_read_back_is_blamed_only_when_no_surviving_write_explains_it(clock, writes, shown, verdict):
    assert stored_verdict(clock, writes, shown, at_s=2.0) == verdict


def test_a_title_keeps_only_the_writes_that_can_still_explain_a_value(clock):
    ledger = WriteLedger()
    for number in range(ledger_module.KEEP_PER_KEY * 3):
        clock.now_s = float(number)
        ledger.finish(ledger.begin(KEY, PHONE, float(number)), "acked")
    assert len(ledger.writes[KEY]) <= 2  # was KEEP_PER_KEY per title, for every title of the run
    assert ledger.valid_final(KEY) == [float(ledger_module.KEEP_PER_KEY * 3 - 1)]


def timeline(rng: random.Random, count: int) -> list[W]:
    """Two devices writing one title, each sequentially, with overlaps, refusals, timeouts and stragglers."""
    writes = []
    for session in (PHONE, TV):
        at_s = rng.uniform(0.0, 1.0)
        for number in range(count):
            done_s = at_s + rng.choice((0.01, 0.2, 1.0, 5.0))
            outcome = rng.choices(("acked", "lost", "unknown"), (8, 1, 1))[0]
            last = number == count - 1 and rng.random() < 0.5
            value = float(rng.randrange(12))  # few values: echoes often match someone else's
            writes.append(W(f"{session}-{number}", session, value, at_s, None if last else done_s, outcome))
            at_s = done_s + rng.choice((0.0, 0.1, 2.0))
    return writes


def verdicts(clock: Clock, writes: list[W]) -> list:
    """Every echo verdict (judged before the write finishes, as journeys does) and every read-back verdict."""
    ledger, handles, seen = WriteLedger(), {}, []
    events = [(w.send_s, 0, w) for w in writes] + [(w.done_s, 1, w) for w in writes if w.done_s is not None]
    for at_s, kind, w in sorted(events, key=lambda e: (e[0], e[1])):
        clock.now_s = at_s
        if kind == 0:
            handles[w.name] = ledger.begin(KEY, w.session, w.value)
            continue
        seen.append([ledger.explains(KEY, handles[w.name], float(v)) for v in range(12)])
        ledger.finish(handles[w.name], w.outcome)
        seen.append(ledger.valid_final(KEY) and sorted(ledger.valid_final(KEY)))
    return seen


@pytest.mark.parametrize("seed", range(40))
def test_pruning_changes_no_verdict(clock, monkeypatch, seed):
    writes = timeline(random.Random(seed), count=30)
    pruned = verdicts(clock, writes)
    monkeypatch.setattr(ledger_module, "prune", lambda history: history)
    monkeypatch.setattr(ledger_module, "KEEP_PER_KEY", 10_000)
    assert pruned == verdicts(clock, writes)


def test_an_account_keeps_its_most_recently_written_titles_and_their_duplicates(clock):
    ledger = WriteLedger()
    ledger.note_row(("movie", 0, None, None), 1)
    ledger.note_row(("movie", 0, None, None), 2)  # a duplicate row of the first title
    for number in range(ledger_module.KEEP_KEYS * 3):
        clock.now_s = float(number)
        ledger.finish(ledger.begin(("movie", number, None, None), PHONE, 1.0), "acked")
    kept = ledger_module.KEEP_KEYS
    assert ledger.keys() == [("movie", n, None, None) for n in range(kept * 2, kept * 3)]
    assert ledger.duplicate_rows() == 1


def test_a_title_with_a_write_in_flight_is_not_forgotten(clock):
    ledger = WriteLedger()
    in_flight = ledger.begin(KEY, TV, 90.0)
    for number in range(ledger_module.KEEP_KEYS * 2):
        clock.now_s = float(number + 1)
        ledger.finish(ledger.begin(("movie", number, None, None), PHONE, 1.0), "acked")
    kept = ledger.keys()
    assert KEY in kept and len(kept) == ledger_module.KEEP_KEYS
    assert ledger.explains(KEY, in_flight, 90.0)


@pytest.mark.parametrize(
    "echoed_ids, duplicates",
    [([11, 11, 11], 0), ([11, None, 11], 0), ([11, 12], 1), ([11, 12, 13, 12], 2)],
    ids=["one row echoed again", "an echo without id", "two rows for one title", "three rows"],
)
def test_duplicate_rows_are_counted_from_the_ids_the_server_echoed(echoed_ids, duplicates):
    ledger = WriteLedger()
    for row_id in echoed_ids:
        ledger.note_row(KEY, row_id)
    ledger.note_row(("movie", 8, None, None), 99)  # another title's row is no duplicate
    assert ledger.duplicate_rows() == duplicates
