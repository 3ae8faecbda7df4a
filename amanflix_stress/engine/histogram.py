"""Mergeable log-linear latency histograms (HdrHistogram's layout) in numpy integer arrays, microseconds."""

import numpy as np

SUB_BUCKET_BITS = 8  # 256 sub-buckets; the upper half of each doubling keeps 128 slots: <= 0.78% width
SUB_BUCKET_HALF = 1 << (SUB_BUCKET_BITS - 1)
MAX_VALUE_US = 100_000_000  # 100 s; larger values are counted in the top slot (exact max is kept apart)
MAX_BUCKET = max(0, int(MAX_VALUE_US).bit_length() - SUB_BUCKET_BITS)
SLOTS = MAX_BUCKET * SUB_BUCKET_HALF + (1 << SUB_BUCKET_BITS)


def empty() -> np.ndarray:
    """A histogram with no values."""
    return np.zeros(SLOTS, dtype=np.int64)


def slot_of(values_us) -> np.ndarray:
    """Slot index of each value: linear below 256 us, then 128 slots per doubling."""
    v = np.clip(np.asarray(values_us, dtype=np.int64), 0, MAX_VALUE_US)
    bit_length = np.frexp(v.astype(np.float64))[1]  # exact for v < 2**53
    bucket = np.maximum(bit_length - SUB_BUCKET_BITS, 0)
    return bucket * SUB_BUCKET_HALF + (v >> bucket)


def slot_low_us(slots) -> np.ndarray:
    """Smallest value that falls in each slot."""
    s = np.asarray(slots, dtype=np.int64)
    bucket = np.maximum(s // SUB_BUCKET_HALF - 1, 0)
    sub = s - bucket * SUB_BUCKET_HALF
    return sub << bucket


def slot_mid_us(slots) -> np.ndarray:
    """Representative value of each slot: the middle of its range (error <= half a slot's width)."""
    s = np.asarray(slots, dtype=np.int64)
    bucket = np.maximum(s // SUB_BUCKET_HALF - 1, 0)
    return slot_low_us(s) + ((1 << bucket) - 1) / 2.0


def record(hist: np.ndarray, values_us) -> None:
    """Add values to a histogram in place."""
    hist += np.bincount(slot_of(values_us), minlength=SLOTS)


def percentiles_us(hist: np.ndarray, ps, min_us: int, max_us: int) -> list[float]:
    """Nearest-rank percentiles: the smallest recorded value with at least p% of values at or below it.

    Each answer is the middle of the slot that holds the exact nearest-rank value, clamped to the
    exact min and max, so it is within 0.4% of the exact answer.
    """
    total = int(hist.sum())
    if total == 0:
        return [float("nan")] * len(ps)
    cumulative = np.cumsum(hist)
    ranks = np.maximum(np.ceil(np.asarray(ps, dtype=np.float64) / 100.0 * total), 1)
    slots = np.searchsorted(cumulative, ranks, side="left")
    return [float(x) for x in np.clip(slot_mid_us(slots), min_us, max_us)]


def to_sparse(hist: np.ndarray) -> tuple[list[int], list[int]]:
    """Plain-data form for queues and JSON: the non-empty slots and their counts."""
    slots = np.flatnonzero(hist)
    return slots.tolist(), hist[slots].tolist()


def from_sparse(slots, counts) -> np.ndarray:
    """Inverse of to_sparse."""
    hist = empty()
    np.add.at(hist, np.asarray(slots, dtype=np.int64), np.asarray(counts, dtype=np.int64))
    return hist
