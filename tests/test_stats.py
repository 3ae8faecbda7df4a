from amanflix_stress.engine.sample import Sample
from amanflix_stress.engine.stats import Stats, normalise_message


def sample(name="GET /x", error="", latency_us=1000, user=0, t=100.0, message="", status=200, wait_us=0):
    return Sample(name, status, error, message, latency_us, t, user, wait_us, 1)


def test_merged_parts_equal_the_whole_through_plain_data():
    samples = [
        sample(
            latency_us=i * 37 + 1,
            user=i % 3,
            error="http_5xx" if i % 5 == 0 else "",
            message=f"500 boom {i}",
            status=500 if i % 5 == 0 else 200,
            t=100.0 + i,
        )
        for i in range(200)
    ]
    whole = Stats()
    whole.add_samples(samples)
    merged = Stats()
    for part in (samples[:70], samples[70:71], samples[71:]):
        piece = Stats()
        piece.add_samples(part)
        merged.merge(Stats.from_plain(piece.to_plain()))
    assert merged.to_plain() == Stats.from_plain(whole.to_plain()).to_plain()
    assert merged.requests == 200 and merged.failures == 40


def test_similar_errors_group_under_one_masked_message():
    stats = Stats()
    stats.add_samples(
        [
            sample(error="http_5xx", status=500, message="user 17 failed after 5.2 s", t=1.0),
            sample(error="http_5xx", status=500, message="user 923 failed after 5.0 s", t=2.0),
        ]
    )
    ((key, group),) = stats.errors.items()
    assert key == ("http_5xx", 500, "user N failed after N s")
    assert group.count == 2 and group.first_s == 1.0 and group.last_s == 2.0
    assert group.example == "user 17 failed after 5.2 s"


def test_uuids_and_hex_are_masked():
    assert (
        normalise_message("session 0b7e4c3e-8f6a-4d1b-9c2e-1234567890ab at 0x7f3a")
        == "session <uuid> at <hex>"
    )


def test_per_user_tallies_count_requests_and_each_error_class():
    stats = Stats()
    stats.add_samples([sample(user=3), sample(user=3, error="timeout", status=0), sample(user=4)])
    assert stats.users[3] == {"requests": 2, "timeout": 1}
    assert stats.users[4] == {"requests": 1}


def test_open_model_keeps_response_time_apart_from_service_time():
    stats = Stats()
    stats.add_samples([sample(latency_us=1000, wait_us=9000)] * 10)
    series = stats.series[("GET /x", "ok")]
    assert round(series.percentiles_us([50])[0]) in range(995, 1006)
    assert round(series.response_percentiles_us([50])[0]) in range(9950, 10051)


def test_the_progress_line_says_which_phase_the_run_is_in():
    from amanflix_stress.output.report import progress_line

    setup = {"phase": "setup", "requests": 40, "failures": 1, "workers_ready": 1, "workers": 2}
    assert progress_line(setup, 60).startswith(
        "[setup] preparing users"
    ) and "workers ready 1/2" in progress_line(setup, 60)
    run = {
        "phase": "run",
        "elapsed_s": 12.0,
        "requests": 1234,
        "failures": 5,
        "rps": 99.0,
        "p95_ms": 41.0,
        "active_users": 20,
    }
    assert progress_line(run, 60) == "[   12/60 s] requests 1,234  99 req/s  errors 5  p95 41 ms  users 20"
    teardown = {"phase": "teardown", "requests": 7, "failures": 0}
    assert progress_line(teardown, 60).startswith("[teardown] verifying what was written")


def test_response_time_counts_every_request_even_those_before_the_first_wait():
    # a run's first batches may send without waiting (a free --max-concurrent slot, an arrival on time): those
    # requests' response time is their service time, and they stay in the response percentiles
    batches = [[sample(latency_us=1000)] * 90, [sample(latency_us=1000, wait_us=50_000)] * 10]
    one_by_one, merged = Stats(), Stats()
    for batch in batches:
        one_by_one.add_samples(batch)
    for batch in reversed(batches):  # the coordinator merges workers' parts in whatever order they arrive
        part = Stats()
        part.add_samples(batch)
        merged.merge(Stats.from_plain(part.to_plain()))
    for stats in (one_by_one, merged):
        (series,) = stats.series.values()
        assert series.response_hist.sum() == series.count == 100
        p50_us, p99_us = series.response_percentiles_us((50, 99))
        assert 995 <= p50_us <= 1005 and 50_000 < p99_us <= 51_000 * 1.004
