"""End to end: --rate schedules arrivals whatever the replies do; reports tell response from service time."""

import os

import pytest
from helpers import read_report

from amanflix_stress.cli import main
from amanflix_stress.engine import health

pytestmark = pytest.mark.slow


def delay_profile(tmp_path, server, extra=""):
    profile = tmp_path / "open.toml"
    profile.write_text(f"""# test profile: the counting server's 50 ms /delay
[target]
base_url = "{server.url}"
timeout_s = 5
[behaviour]
think_time_s = [5.0, 5.0]
{extra}
[[requests]]
name = "GET /delay"
path = "/delay"
""")
    return str(profile)


def run(tmp_path, profile, *flags):
    report = tmp_path / "r.json"
    code = main(["run", "--profile", profile, "--report-json", str(report), "--quiet", *flags])
    return code, read_report(report)


def test_every_scheduled_arrival_is_sent_once_and_think_time_is_skipped(tmp_path, server):
    code, data = run(
        tmp_path,
        delay_profile(tmp_path, server),
        "--rate",
        "50",
        "--users",
        "6",
        "--workers",
        "2",
        "--duration",
        "2s",
    )
    model, sent = data["load_model"], data["totals"]["requests"]
    assert code == 0 and model["kind"] == "open" and model["arrivals_scheduled"] == 100
    # five-second think times would allow 6 users at most 12 requests in 2 s; the schedule sends its 100 (less
    # any a loaded machine drops or leaves unsent at the stop, each counted), and none twice
    assert sent == server.counts["/delay"] and 50 <= sent <= model["arrivals_started"]
    assert model["arrivals_started"] + model["dropped"] + model["unsent_at_stop"] == 100
    (row,) = data["endpoints"]
    assert 50 <= row["p50_ms"] <= row["response_p50_ms"]  # the server's own 50 ms is the floor
    assert data["meta"]["latency_model"].startswith("open model")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    expected_cores = [cores[0], cores[1 % len(cores)]] if cores else [None, None]
    assert [
        w["core"] for w in data["health"]["workers"]
    ] == expected_cores  # each worker pinned to its own core


def test_an_overloaded_pool_shows_queueing_in_response_time_not_service_time(tmp_path, server, capsys):
    # two threads on a 50 ms server serve 40 arrivals a second; 150 a second are scheduled
    _code, data = run(
        tmp_path,
        delay_profile(tmp_path, server),
        "--rate",
        "150",
        "--users",
        "2",
        "--workers",
        "1",
        "--duration",
        "2s",
    )
    model, (row,) = data["load_model"], data["endpoints"]
    # arrivals queue up to the 1 s drop line: that wait is in response time only; service time stays the
    # server's 50 ms and whatever a loaded machine adds, far from the queue's wait
    assert row["response_p99_ms"] > 500 and 50 <= row["p50_ms"] < row["response_p50_ms"] / 2
    assert model["late"] > 0 and model["dropped"] > 0
    assert data["totals"]["requests"] == server.counts["/delay"] < model["arrivals_scheduled"]
    out = capsys.readouterr().out
    assert "response p50" in out and "service p50" in out and "dropped" in out


def test_stages_ramp_the_rate_and_set_the_run_length(tmp_path, server):
    # 0 -> 100/s over 1 s is 50 arrivals, then 100/s for 0.5 s is 50 more
    profile = delay_profile(tmp_path, server, '[load]\nstages = [["1s", 100], ["500ms", 100]]\n')
    code, data = run(tmp_path, profile, "--users", "8", "--workers", "1")
    assert code == 0 and data["load_model"]["arrivals_scheduled"] == 100
    assert server.counts["/delay"] == data["totals"]["requests"] and 50 < data["totals"]["requests"] <= 100
    assert data["totals"]["duration_s"] < 30  # the stages' 1.5 s, not the profile's default minute


def test_a_generator_past_its_limits_is_marked_degraded_everywhere(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setattr(
        health, "LAG_LIMIT_MS", 0.0
    )  # any lag at all now counts as the generator's bottleneck
    code, data = run(
        tmp_path,
        delay_profile(tmp_path, server),
        "--rate",
        "20",
        "--users",
        "2",
        "--workers",
        "1",
        "--duration",
        "1s",
    )
    assert code == 0  # degraded marks the figures as suspect; thresholds alone decide the exit code
    assert data["health"]["degraded"] and "threads woke" in data["health"]["reasons"][0]
    assert data["verdict"]["degraded"] and "DEGRADED" in data["verdict"]["summary"]
    out = capsys.readouterr().out
    assert "GENERATOR HEALTH" in out and "DEGRADED: the generator was the bottleneck" in out


def test_a_closed_model_run_says_so_and_an_idle_generator_is_not_degraded(
    tmp_path, server, monkeypatch, capsys
):
    # how late threads wake depends on the machine's load, not on us: bench/health_light.py prints that figure
    monkeypatch.setattr(health, "LAG_LIMIT_MS", 1e9)
    _code, data = run(
        tmp_path, delay_profile(tmp_path, server), "--users", "2", "--workers", "1", "--duration", "1s"
    )
    assert data["load_model"] == {"kind": "closed"}
    assert data["meta"]["latency_model"].startswith("closed model")
    (worker,) = data["health"]["workers"]
    # two users thinking 5 s: a busy loop would show as a whole core, and as a degraded run
    assert worker["cpu_cores"] < health.CPU_LIMIT_CORES and worker["lag_samples"] > 0
    assert not data["health"]["degraded"] and data["health"]["reasons"] == []
    assert "DEGRADED" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, named",
    [
        ("[load]\nstages = [[30, 100]]\n", "write it with a unit"),
        ('[load]\nstages = [["30s"]]\n', "[[duration, rate]"),
        ("[load]\nrate = -1\n", "rate"),
    ],
)
def test_bad_open_model_settings_are_one_line_and_exit_2(tmp_path, server, extra, named, capsys):
    assert main(["run", "--profile", delay_profile(tmp_path, server, extra)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err


def test_a_negative_rate_flag_is_refused(capsys):
    assert main(["run", "--rate", "-5"]) == 2
    assert "--rate" in capsys.readouterr().err
