"""Generator self-health: lag and CPU figures from a worker's snapshots, and the degraded verdict."""

import pytest

from amanflix_stress.engine import health
from amanflix_stress.engine.health import (
    HealthMeter,
    WorkerHealth,
    degraded_reasons,
    health_report,
    verdict_note,
)
from amanflix_stress.output.model import Health, from_plain
from amanflix_stress.output.report import render_health


class Clock:
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self):
        return self.value


def snapshots(cpu_per_wall, lags_s, busy=None, threads=8):
    """Two batches one second apart from a meter whose clocks the test drives."""
    cpu, wall = Clock(10.0), Clock(1000.0)
    meter = HealthMeter(cpu_clock=cpu, wall_clock=wall)
    first = meter.snapshot()
    for lag in lags_s:
        meter.lag(lag)
    meter.busy(busy, threads)
    cpu.value += cpu_per_wall
    wall.value += 1.0
    return first, meter.snapshot()


def summary_of(*snaps):
    worker = WorkerHealth()
    for snap in snaps:
        worker.add(snap)
    return {"id": 0, **worker.summary()}


def test_cpu_is_process_time_over_wall_time_between_batches():
    row = summary_of(*snapshots(0.45, []))
    assert row["cpu_cores"] == pytest.approx(0.45) and row["cpu_peak_cores"] == pytest.approx(0.45)


def test_lag_percentiles_come_from_what_the_threads_reported():
    row = summary_of(*snapshots(0.1, [0.0005] * 98 + [0.040, 0.090]))
    assert row["lag_p50_ms"] == pytest.approx(0.5, rel=0.01)
    assert row["lag_p99_ms"] == pytest.approx(40.0, rel=0.01) and row["lag_max_ms"] == 90.0
    assert row["lag_samples"] == 100


def test_a_snapshot_starts_a_new_window():
    meter = HealthMeter(cpu_clock=Clock(), wall_clock=Clock())
    meter.lag(0.002)
    assert meter.snapshot()["lag_max_us"] == 2000
    assert meter.snapshot()["lag_max_us"] == 0


def test_busy_share_is_the_open_model_pool_in_use():
    assert summary_of(*snapshots(0.1, [], busy=6, threads=8))["busy_share"] == 0.75
    assert summary_of(*snapshots(0.1, [], busy=None, threads=8))["busy_share"] is None  # closed model


@pytest.mark.parametrize(
    "cpu, lags_s, degraded",
    [
        (0.30, [0.001] * 100, False),
        (0.95, [0.001] * 100, True),  # the worker's core was busy
        (0.30, [0.001] * 90 + [0.2] * 10, True),  # threads woke late: its timings carry the delay
    ],
)
def test_degraded_when_cpu_or_lag_passes_its_limit(cpu, lags_s, degraded):
    report = health_report([summary_of(*snapshots(cpu, lags_s))])
    assert report["degraded"] is degraded and bool(report["reasons"]) is degraded
    rendered = render_health(from_plain(Health, report))
    assert ("DEGRADED" in rendered) is degraded and ("generator healthy" in rendered) is not degraded
    assert ("DEGRADED: the generator was the bottleneck" in verdict_note(report)) is degraded


def test_the_limits_are_read_at_call_time(monkeypatch):
    row = summary_of(*snapshots(0.30, []))
    assert degraded_reasons([row]) == []
    monkeypatch.setattr(health, "CPU_LIMIT_CORES", 0.25)
    assert degraded_reasons([row]) == ["worker 0 used 0.30 cores of CPU (limit 0.25)"]


def test_a_worker_that_never_reported_is_not_called_healthy():
    report = health_report([{"id": 0, **WorkerHealth().summary()}])
    assert not report["degraded"] and "no health figures" in render_health(from_plain(Health, report))
