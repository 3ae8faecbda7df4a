"""Mergeable run statistics: histograms per endpoint x outcome, error groups and per-user tallies."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from amanflix_stress.engine import histogram
from amanflix_stress.engine.sample import Sample

PERCENTILES = (50, 90, 95, 99, 99.9)
PERCENTILE_METHOD = "nearest rank (numpy inverted_cdf) on a log-linear histogram, <= 0.4% error"
OK = "ok"

_MASKS = (
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\d+(\.\d+)?"), "N"),
)


# an HTTP status with its reason phrase ("500 Internal Server Error") or "the 200 answer" names the failure:
# its digits group nothing away, so they are kept
_STATUS = re.compile(r"\b([1-5]\d\d)(?= (?:[A-Z][a-z]|answer))")
_KEEP = "\x00"  # stands in for a kept status's digits while the masks run


def normalise_message(message: str) -> str:
    """Mask numbers and ids so that similar errors group together; HTTP statuses keep their digits."""
    statuses = _STATUS.findall(message)
    message = _STATUS.sub(_KEEP, message)
    for pattern, mask in _MASKS:
        message = pattern.sub(mask, message)
    for status in statuses:
        message = message.replace(_KEEP, status, 1)
    return message[:200]


@dataclass
class Series:
    """Latency of one endpoint x outcome: a histogram plus exact count, sum, min and max."""

    hist: np.ndarray = field(default_factory=histogram.empty)
    count: int = 0
    sum_us: int = 0
    min_us: int = 0
    max_us: int = 0
    # response time where requests wait before being sent (an open model's schedule, a --max-concurrent slot):
    # the wait plus the service time. None until a wait is seen; a sample without a wait counts its latency
    response_hist: np.ndarray | None = None
    response_max_us: int = 0

    def add(self, latencies_us: list[int], waits_us: list[int]) -> None:
        values = np.asarray(latencies_us, dtype=np.int64)
        if self.response_hist is None and any(waits_us):
            self._start_response()
        histogram.record(self.hist, values)
        self._extend(len(values), int(values.sum()), int(values.min()), int(values.max()))
        if self.response_hist is not None:
            response = values + np.asarray(waits_us, dtype=np.int64)
            histogram.record(self.response_hist, response)
            self.response_max_us = max(self.response_max_us, int(response.max()))

    def _start_response(self) -> None:
        """Every sample so far waited 0 before its send: its response time is its service time."""
        self.response_hist = self.hist.copy()
        self.response_max_us = self.max_us

    def _extend(self, count: int, sum_us: int, min_us: int, max_us: int) -> None:
        self.min_us = min_us if self.count == 0 else min(self.min_us, min_us)
        self.max_us = max(self.max_us, max_us)
        self.count += count
        self.sum_us += sum_us

    def merge(self, other: Series) -> None:
        if other.count == 0:
            return
        if self.response_hist is None and other.response_hist is not None:
            self._start_response()
        if self.response_hist is not None:
            waited = other.response_hist is not None
            self.response_hist += other.response_hist if waited else other.hist
            self.response_max_us = max(
                self.response_max_us, other.response_max_us if waited else other.max_us
            )
        self.hist += other.hist
        self._extend(other.count, other.sum_us, other.min_us, other.max_us)

    def percentiles_us(self, ps=PERCENTILES) -> list[float]:
        return histogram.percentiles_us(self.hist, ps, self.min_us, self.max_us)

    def response_percentiles_us(self, ps=PERCENTILES) -> list[float] | None:
        if self.response_hist is None:
            return None
        return histogram.percentiles_us(self.response_hist, ps, self.min_us, self.response_max_us)

    def to_plain(self) -> dict:
        plain = {
            "hist": histogram.to_sparse(self.hist),
            "count": self.count,
            "sum_us": self.sum_us,
            "min_us": self.min_us,
            "max_us": self.max_us,
        }
        if self.response_hist is not None:
            plain["response_hist"] = histogram.to_sparse(self.response_hist)
            plain["response_max_us"] = self.response_max_us
        return plain

    @classmethod
    def from_plain(cls, plain: dict) -> Series:
        series = cls(
            hist=histogram.from_sparse(*plain["hist"]),
            count=plain["count"],
            sum_us=plain["sum_us"],
            min_us=plain["min_us"],
            max_us=plain["max_us"],
        )
        if "response_hist" in plain:
            series.response_hist = histogram.from_sparse(*plain["response_hist"])
            series.response_max_us = plain["response_max_us"]
        return series


@dataclass
class ErrorGroup:
    """Every failure of one class, status and normalised message."""

    count: int = 0
    first_s: float = math.inf
    last_s: float = 0.0
    endpoints: dict[str, int] = field(default_factory=dict)
    users: dict[int, int] = field(default_factory=dict)
    example: str = ""
    inflight_sum: int = 0
    inflight_max: int = 0

    def add(self, sample: Sample) -> None:
        self.count += 1
        if sample.start_s < self.first_s:
            self.first_s, self.example = sample.start_s, sample.message[:300]
        self.last_s = max(self.last_s, sample.start_s)
        self.endpoints[sample.name] = self.endpoints.get(sample.name, 0) + 1
        self.users[sample.user] = self.users.get(sample.user, 0) + 1
        self.inflight_sum += sample.inflight
        self.inflight_max = max(self.inflight_max, sample.inflight)

    def merge(self, other: ErrorGroup) -> None:
        if other.first_s < self.first_s:
            self.first_s, self.example = other.first_s, other.example
        self.count += other.count
        self.last_s = max(self.last_s, other.last_s)
        _add_counts(self.endpoints, other.endpoints)
        _add_counts(self.users, other.users)
        self.inflight_sum += other.inflight_sum
        self.inflight_max = max(self.inflight_max, other.inflight_max)

    def to_plain(self) -> dict:
        return {
            "count": self.count,
            "first_s": self.first_s,
            "last_s": self.last_s,
            "endpoints": dict(self.endpoints),
            "users": [[u, n] for u, n in self.users.items()],
            "example": self.example,
            "inflight_sum": self.inflight_sum,
            "inflight_max": self.inflight_max,
        }

    @classmethod
    def from_plain(cls, plain: dict) -> ErrorGroup:
        return cls(
            count=plain["count"],
            first_s=plain["first_s"],
            last_s=plain["last_s"],
            endpoints=dict(plain["endpoints"]),
            users={u: n for u, n in plain["users"]},
            example=plain["example"],
            inflight_sum=plain["inflight_sum"],
            inflight_max=plain["inflight_max"],
        )


def _add_counts(into: dict, other: dict) -> None:
    for key, count in other.items():
        into[key] = into.get(key, 0) + count


@dataclass
class Stats:
    """Everything measured over a span of a run; merging two Stats is exact."""

    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    errors: dict[tuple[str, int, str], ErrorGroup] = field(default_factory=dict)
    users: dict[int, dict[str, int]] = field(default_factory=dict)  # user -> {"requests": n, error class: n}

    def add_samples(self, samples: list[Sample]) -> None:
        groups: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        for s in samples:
            latencies, waits = groups.setdefault((s.name, s.error or OK), ([], []))
            latencies.append(s.latency_us)
            waits.append(s.wait_us)
            tally = self.users.setdefault(s.user, {"requests": 0})
            tally["requests"] += 1
            if s.error:
                tally[s.error] = tally.get(s.error, 0) + 1
                error_key = (s.error, s.status, normalise_message(s.message))
                self.errors.setdefault(error_key, ErrorGroup()).add(s)
        for series_key, (latencies, waits) in groups.items():
            self.series.setdefault(series_key, Series()).add(latencies, waits)

    def merge(self, other: Stats) -> None:
        for series_key, series in other.series.items():
            self.series.setdefault(series_key, Series()).merge(series)
        for error_key, group in other.errors.items():
            self.errors.setdefault(error_key, ErrorGroup()).merge(group)
        for user, tally in other.users.items():
            _add_counts(self.users.setdefault(user, {"requests": 0}), tally)

    @property
    def requests(self) -> int:
        return sum(s.count for s in self.series.values())

    @property
    def failures(self) -> int:
        return sum(s.count for (name, outcome), s in self.series.items() if outcome != OK)

    def count_by_class(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for (kind, _status, _msg), group in self.errors.items():
            counts[kind] = counts.get(kind, 0) + group.count
        return counts

    def endpoint_series(self) -> dict[str, tuple[Series, int]]:
        """Per endpoint: all outcomes merged into one Series, and its failure count."""
        merged: dict[str, tuple[Series, int]] = {}
        for (name, outcome), series in sorted(self.series.items()):
            total, failures = merged.get(name, (Series(), 0))
            total.merge(series)
            merged[name] = (total, failures + (series.count if outcome != OK else 0))
        return merged

    def to_plain(self) -> dict:
        return {
            "series": [[n, o, s.to_plain()] for (n, o), s in self.series.items()],
            "errors": [[k, st, m, g.to_plain()] for (k, st, m), g in self.errors.items()],
            "users": [[u, dict(t)] for u, t in self.users.items()],
        }

    @classmethod
    def from_plain(cls, plain: dict) -> Stats:
        return cls(
            series={(n, o): Series.from_plain(s) for n, o, s in plain["series"]},
            errors={(k, st, m): ErrorGroup.from_plain(g) for k, st, m, g in plain["errors"]},
            users={u: dict(t) for u, t in plain["users"]},
        )
