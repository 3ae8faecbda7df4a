import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from amanflix_stress.engine import histogram
from amanflix_stress.engine.stats import PERCENTILES

values = st.lists(st.integers(min_value=0, max_value=histogram.MAX_VALUE_US), min_size=1, max_size=400)


def exact_nearest_rank(data, ps):
    return np.percentile(np.asarray(data), ps, method="inverted_cdf")


@settings(max_examples=200, deadline=None)
@given(values)
def test_every_percentile_is_within_one_percent_of_exact_nearest_rank(data):
    hist = histogram.empty()
    histogram.record(hist, data)
    ps = [*PERCENTILES, 100]
    got = histogram.percentiles_us(hist, ps, min(data), max(data))
    for estimate, exact in zip(got, exact_nearest_rank(data, ps)):
        assert abs(estimate - exact) <= max(0.01 * exact, 0.5), (estimate, exact)


@settings(max_examples=100, deadline=None)
@given(values, st.integers(min_value=1, max_value=6))
def test_merging_k_splits_equals_one_histogram(data, k):
    whole = histogram.empty()
    histogram.record(whole, data)
    merged = histogram.empty()
    for part in np.array_split(np.asarray(data), k):
        piece = histogram.empty()
        if len(part):
            histogram.record(piece, part)
        merged += piece
    assert np.array_equal(whole, merged)


def test_slots_cover_1us_to_100s_with_less_than_one_percent_width():
    slots = np.arange(histogram.SLOTS)
    low = histogram.slot_low_us(slots)
    width = np.diff(low)
    relative = width[256:] / low[256:-1]
    assert relative.max() < 0.01
    assert histogram.slot_of([histogram.MAX_VALUE_US])[0] < histogram.SLOTS


def test_sparse_round_trip_is_exact():
    hist = histogram.empty()
    histogram.record(hist, [1, 1, 300, 5_000_000])
    assert np.array_equal(histogram.from_sparse(*histogram.to_sparse(hist)), hist)


def test_values_beyond_range_land_in_the_top_slot_not_lost():
    hist = histogram.empty()
    histogram.record(hist, [10**10])
    assert hist.sum() == 1
