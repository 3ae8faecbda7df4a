"""Generator self-health: a worker's CPU, thread saturation, schedule lag, and if the run was degraded."""

from __future__ import annotations

import os
import threading
import time

from amanflix_stress.engine import histogram

CPU_LIMIT_CORES = (
    0.8  # a worker above this share of a core is the bottleneck: its timings include its own queueing
)
LAG_LIMIT_MS = 25.0  # p99 schedule lag above this: threads woke that late, so latencies carry the delay


def pin_to_core(worker_id: int) -> int | None:
    """Pin this process to one allowed core (round robin by worker id); None where the platform can't."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        cores = sorted(os.sched_getaffinity(0))
        core = cores[worker_id % len(cores)]
        os.sched_setaffinity(0, {core})
    except OSError:
        return None
    return core


class HealthMeter:
    """Worker side: timer lag (how late a thread woke vs. when it asked) and busy threads, per batch window.

    Clocks are passed in so a test can drive them.
    """

    def __init__(self, cpu_clock=time.process_time, wall_clock=time.time) -> None:
        self.cpu_clock, self.wall_clock = cpu_clock, wall_clock
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.lags_us: list[int] = []
        self.busy_sum = self.busy_samples = 0
        self.threads = 0

    def lag(self, lag_s: float) -> None:
        """A thread asked to wake at some time and woke lag_s later."""
        self.lags_us.append(max(0, int(lag_s * 1e6)))  # list.append is atomic: no lock on the hot path

    def busy(self, busy_threads: int | None, threads: int) -> None:
        """A look at the user threads: how many exist and (open model) how many were running an arrival."""
        if busy_threads is not None:
            self.busy_sum += busy_threads
            self.busy_samples += 1
        self.threads = max(self.threads, threads)

    def snapshot(self) -> dict:
        """Plain data for the batch: what was seen since the last snapshot, plus the CPU and wall clocks."""
        with self.lock:
            lags, busy_sum, samples, threads = self.lags_us, self.busy_sum, self.busy_samples, self.threads
            self._reset()
        hist = histogram.empty()
        if lags:
            histogram.record(hist, lags)
        return {
            "cpu_s": self.cpu_clock(),
            "wall_s": self.wall_clock(),
            "lag": histogram.to_sparse(hist),
            "lag_max_us": max(lags, default=0),
            "busy_sum": busy_sum,
            "busy_samples": samples,
            "threads": threads,
        }


class WorkerHealth:
    """Coordinator side: one worker's health over the measured phase, merged from its batches."""

    def __init__(self) -> None:
        self.lag_hist = histogram.empty()
        self.lag_max_us = 0
        self.busy_sum = self.busy_samples = self.threads = 0
        self.first: tuple[float, float] | None = None  # (cpu_s, wall_s) at the first batch
        self.last: tuple[float, float] | None = None
        self.cpu_peak_cores = 0.0
        self.core: int | None = None

    def add(self, snap: dict) -> None:
        clocks = (snap["cpu_s"], snap["wall_s"])
        if self.last and clocks[1] > self.last[1]:
            self.cpu_peak_cores = max(
                self.cpu_peak_cores, (clocks[0] - self.last[0]) / (clocks[1] - self.last[1])
            )
        self.first, self.last = self.first or clocks, clocks
        self.lag_hist += histogram.from_sparse(*snap["lag"])
        self.lag_max_us = max(self.lag_max_us, snap["lag_max_us"])
        self.busy_sum += snap["busy_sum"]
        self.busy_samples += snap["busy_samples"]
        self.threads = max(self.threads, snap["threads"])

    def summary(self) -> dict:
        """Plain figures: CPU in cores (mean and peak over ~1 s windows), lag p50/p99/max ms, busy share."""
        cpu = None
        if self.first and self.last and self.last[1] > self.first[1]:
            cpu = round((self.last[0] - self.first[0]) / (self.last[1] - self.first[1]), 3)
        lag: list[float | None] = [None, None]
        if self.lag_hist.any():
            lag = [
                round(v / 1000.0, 3)
                for v in histogram.percentiles_us(self.lag_hist, (50, 99), 0, self.lag_max_us)
            ]
        busy = None
        if self.busy_samples and self.threads:
            busy = round(self.busy_sum / self.busy_samples / self.threads, 3)
        return {
            "core": self.core,
            "cpu_cores": cpu,
            "cpu_peak_cores": round(self.cpu_peak_cores, 3),
            "lag_p50_ms": lag[0],
            "lag_p99_ms": lag[1],
            "lag_max_ms": round(self.lag_max_us / 1000.0, 3),
            "lag_samples": int(self.lag_hist.sum()),
            "threads": self.threads,
            "busy_share": busy,
        }


def degraded_reasons(rows: list[dict]) -> list[str]:
    """Why the generator itself was the bottleneck, one reason per worker and cause; empty if healthy."""
    cpu_limit, lag_limit_ms = CPU_LIMIT_CORES, LAG_LIMIT_MS
    reasons = []
    for row in rows:
        if row.get("cpu_cores") is not None and row["cpu_cores"] > cpu_limit:
            reasons.append(
                f"worker {row['id']} used {row['cpu_cores']:.2f} cores of CPU (limit {cpu_limit:.2f})"
            )
        if row.get("lag_p99_ms") is not None and row["lag_p99_ms"] > lag_limit_ms:
            reasons.append(
                f"worker {row['id']} threads woke {row['lag_p99_ms']:.1f} ms late at p99 "
                f"(limit {lag_limit_ms:.0f} ms)"
            )
    return reasons


def health_report(rows: list[dict]) -> dict:
    """The report's health section: each worker's figures, the limits, and the degraded verdict."""
    reasons = degraded_reasons(rows)
    return {
        "workers": rows,
        "degraded": bool(reasons),
        "reasons": reasons,
        "limits": {"cpu_cores": CPU_LIMIT_CORES, "lag_p99_ms": LAG_LIMIT_MS},
    }


def verdict_note(health: dict | None) -> str:
    """What the verdict line adds if the generator was the bottleneck (exit code stays the thresholds')."""
    if not health or not health.get("degraded"):
        return ""
    return f"; DEGRADED: the generator was the bottleneck ({'; '.join(health['reasons'])})"
