"""The report as typed frozen records, and their JSON: to_json writes them, from_plain reads them back.

Each field documents itself (`doc`, in amanflix/records.py); docs/report-schema.md is generated from them.
"""

# ruff: noqa: RUF009  (doc() is dataclasses.field with a docstring: no default value is shared)

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Union

from amanflix_stress.amanflix.holdlock import WindowEvidence
from amanflix_stress.amanflix.records import Accounts, Cause, HoldLock, LockIssues, doc
from amanflix_stress.amanflix.serverlog import ServerLogEvidence

SCHEMA_VERSION = "amanflix-stress/report/1"


@dataclass(frozen=True)
class Meta:
    """Run metadata."""

    tool: str = doc("`amanflix-stress`")
    version: str = doc("the tool's version")
    run_id: str = doc("this run's id (also in the test account names)")
    seed: int = doc("the seed of every random choice")
    base_url: str = doc("the target")
    behaviour: str = doc("`http` or `amanflix`")
    args: Mapping[str, Any] = doc("the flags; flags whose name contains `password` are saved as `***`")
    profile: Mapping[str, Any] | None = doc("the resolved profile")
    started_at: str | None = doc("start of the measured phase, ISO-8601 UTC")
    ended_at: str | None = doc("end of the run, ISO-8601 UTC")
    hostname: str = doc("where the coordinator ran")
    python: str = doc("Python version")
    platform: str = doc("operating system")
    stop_reason: str = doc("`deadline`, `interrupted`, `terminated`, `all workers ended`")
    interrupted: bool = doc("stopped by Ctrl-C or SIGTERM")
    latency_model: str = doc("the caption: closed or open model, and which latency is reported")
    percentile_method: str = doc("how percentiles are computed")
    timeseries: str | None = doc("path of the JSONL time series")


@dataclass(frozen=True)
class Totals:
    """The measured phase as a whole."""

    duration_s: float = doc("length of the measured phase (from the start signal to the stop; no teardown)")
    users: int = doc("simulated users")
    requests: int = doc("requests answered or failed")
    failures: int = doc("failed requests (every error class)")
    error_rate: float = doc("failures / requests (0-1)")
    throughput_rps: float = doc("requests / duration: the measured phase's rate")
    p50_ms: float | None = doc("overall median latency")
    p95_ms: float | None = doc("overall 95th percentile")
    p99_ms: float | None = doc("overall 99th percentile")
    late_batches: int = doc("stats batches that arrived after their interval was written")


@dataclass(frozen=True)
class ResponseTimes:
    """Response time (from each request's intended start), where requests waited before being sent."""

    response_p50_ms: float | None = doc("median response time")
    response_p90_ms: float | None = doc("90th percentile")
    response_p95_ms: float | None = doc("95th percentile")
    response_p99_ms: float | None = doc("99th percentile")
    response_p999_ms: float | None = doc("99.9th percentile")
    response_max_ms: float | None = doc("slowest")


@dataclass(frozen=True, kw_only=True)
class EndpointRow:
    """One endpoint template (`GET /api/movies/{id}`): counts and service time."""

    name: str = doc("the endpoint template")
    requests: int = doc("requests")
    failures: int = doc("failed requests")
    rps: float = doc("requests per second of the phase")
    mean_ms: float | None = doc("mean service time")
    min_ms: float | None = doc("fastest")
    p50_ms: float | None = doc("median")
    p90_ms: float | None = doc("90th percentile")
    p95_ms: float | None = doc("95th percentile")
    p99_ms: float | None = doc("99th percentile")
    p999_ms: float | None = doc("99.9th percentile")
    max_ms: float | None = doc("slowest")
    response: ResponseTimes | None = doc("where requests waited before being sent", flatten=True)


@dataclass(frozen=True)
class ErrorRow:
    """One error group: class x status x normalised message."""

    class_: str = doc("the error class", name="class")
    status: int = doc("HTTP status (0 = no response)")
    message: str = doc("the message with numbers and ids masked")
    count: int = doc("failures in the group")
    share: float = doc("count / requests of the phase (0-1)")
    first_seen_s: float = doc("first seen, epoch seconds")
    last_seen_s: float = doc("last seen, epoch seconds")
    endpoints: Mapping[str, int] = doc("endpoint -> count")
    example: str = doc("the first raw message")
    inflight_mean: float = doc("writes in flight in the worker when it happened, mean")
    inflight_max: int = doc("the same, most")


@dataclass(frozen=True)
class UserRow:
    """One simulated user (global index)."""

    user: int = doc("global user index")
    requests: int = doc("requests")
    failures: int = doc("failed requests")
    errors: Mapping[str, int] = doc("class -> count")


@dataclass(frozen=True)
class PhaseTables:
    """Registration before the measured phase, or verification and cleanup after it."""

    duration_s: float = doc("length of this phase; its endpoints' req/s are divided by it")
    requests: int = doc("requests of this phase")
    rps: float = doc("requests / duration_s")
    endpoints: tuple[EndpointRow, ...] = doc("per endpoint template")
    errors: tuple[ErrorRow, ...] = doc("per error group")


@dataclass(frozen=True)
class WorkerRow:
    """One worker process (or Dask share)."""

    id: int = doc("worker index")
    pid: int | None = doc("process id")
    host: str = doc("host name")
    users: int = doc("simulated users it ran")
    status: str = doc("`done`, `died`, `hung` (or where it stopped)")
    detail: str = doc("what went wrong, or users dropped in setup")
    cpu_cores: float | None = doc("CPU used over the measured phase, in cores")


@dataclass(frozen=True)
class HealthRow:
    """One worker's self-health over the measured phase."""

    id: int = doc("worker index")
    core: int | None = doc("the core it was pinned to")
    cpu_cores: float | None = doc("mean CPU, cores")
    cpu_peak_cores: float = doc("peak CPU over ~1 s windows, cores")
    lag_p50_ms: float | None = doc("median schedule lag")
    lag_p99_ms: float | None = doc("99th percentile schedule lag")
    lag_max_ms: float = doc("worst schedule lag")
    lag_samples: int = doc("lag measurements")
    threads: int = doc("user threads")
    busy_share: float | None = doc("open model: share of threads busy with an arrival")


@dataclass(frozen=True)
class HealthLimits:
    """The limits above which the generator counts as the bottleneck."""

    cpu_cores: float = doc("CPU per worker, cores")
    lag_p99_ms: float = doc("p99 schedule lag")


@dataclass(frozen=True)
class Health:
    """Generator self-health."""

    workers: tuple[HealthRow, ...] = doc("per worker")
    degraded: bool = doc("the generator was the bottleneck")
    reasons: tuple[str, ...] = doc("why, one line per worker and cause")
    limits: HealthLimits = doc("the limits")


@dataclass(frozen=True)
class RunLimits:
    """The resource limits the run ran under, checked before the start (engine/limits.py)."""

    users_per_worker: int = doc("simulated users in the largest worker share")
    connections_per_user: int = doc("connections (and threads) one user may hold")
    fd_soft: int = doc("open files allowed per process, after raising the soft limit to the hard one")
    fd_hard: int = doc("the hard open-files limit")
    fd_needed: int = doc("open files one worker needs: its users' connections plus a margin")
    threads_needed: int = doc("threads the run needs on this machine")
    threads_allowed: int | None = doc("more threads allowed now by the tightest limit; null: none found")
    threads_limited_by: str = doc("that limit: threads-max, pid_max, cgroup pids.max or RLIMIT_NPROC")
    memory_needed_mib: int = doc("resident memory the run needs, from the measured cost per user")
    memory_available_mib: int | None = doc("MemAvailable (or the cgroup's room if lower); null: unknown")
    rss_per_user_kib: int = doc("the measured resident memory per simulated user used for the estimate")


@dataclass(frozen=True)
class OpenArrivals:
    """Open model: the arrival schedule and what became of it."""

    rate: float | None = doc("arrivals per second (before the stages)")
    stages: tuple[tuple[float, float], ...] = doc("[seconds, rate] ramps")
    arrivals_scheduled: int = doc("arrivals the schedule held")
    arrivals_started: int = doc("arrivals sent")
    late: int = doc("sent later than late_after_ms")
    dropped: int = doc("no free thread within drop_after_ms")
    unsent_at_stop: int = doc("scheduled but neither sent nor dropped at the stop")
    late_after_ms: float = doc("lateness limit")
    drop_after_ms: float = doc("drop limit")
    response_p50_ms: float | None = doc("median response time, all endpoints")
    response_p95_ms: float | None = doc("95th percentile")
    response_p99_ms: float | None = doc("99th percentile")


@dataclass(frozen=True, kw_only=True)
class LoadModel:
    """Closed or open model."""

    kind: str = doc("`closed` or `open`")
    open: OpenArrivals | None = doc("open runs only", flatten=True)


@dataclass(frozen=True)
class ThresholdResult:
    """One [thresholds] limit checked against the run."""

    name: str = doc('the profile key, e.g. `endpoints."GET /x".p95_ms`')
    label: str = doc("what it measures, in words")
    measured: float | None = doc("the figure; null when nothing was measured (a breach)")
    allowed: float = doc("the limit")
    kind: str = doc("`max` or `min`")
    unit: str = doc("`share`, `ms` or `req/s`")
    passed: bool = doc("within the limit")
    summary: str = doc("measured vs allowed in one line")


@dataclass(frozen=True)
class EndpointChange:
    """One endpoint in both runs."""

    name: str = doc("endpoint template")
    requests_before: int = doc("requests in the baseline")
    requests_now: int = doc("requests now")
    judged: bool = doc("both runs had at least min_requests: only then can it be a regression")
    p95_ms_before: float | None = doc("p95 in the baseline")
    p95_ms_now: float | None = doc("p95 now")
    p95_change_pct: float | None = doc("change in percent")
    error_rate_before: float = doc("error rate in the baseline")
    error_rate_now: float = doc("error rate now")
    regression: bool = doc("judged, and slower beyond the noise floor and regression_pct, or more errors")
    why: str = doc("what regressed")


@dataclass(frozen=True)
class Comparison:
    """This run against an earlier report."""

    against: str = doc("the baseline report's path")
    against_run_id: str | None = doc("its run id")
    against_started_at: str | None = doc("when it started")
    regression_pct: float = doc("p95 growth that counts as a regression")
    min_requests: int = doc("requests each run needs on an endpoint before it can count as a regression")
    endpoints: tuple[EndpointChange, ...] = doc("endpoints in both runs")
    regressions: int = doc("endpoints that regressed")
    new_endpoints: tuple[str, ...] = doc("only in this run")
    missing_endpoints: tuple[str, ...] = doc("only in the baseline")


@dataclass(frozen=True)
class VerdictReason:
    """One finding the verdict weighed: a reason the run failed, or a warning."""

    rule: str = doc(
        "`workers`, `generator` (requests failed for want of file descriptors: `fd_exhausted`), `target`, "
        "`locks`, `errors`, `thresholds` (these can fail a run), `baseline`, `degraded`"
    )
    summary: str = doc("what was found, in one phrase (as in the verdict line)")
    fails: bool = doc("it fails the run; false: a warning (a rule left out of fail_on, a regression, ...)")


@dataclass(frozen=True)
class Verdict:
    """The run's outcome."""

    exit_code: int = doc("the process exit code")
    status: str = doc("`pass` (clean), `warn` (passed with warnings), `fail`, `interrupted`")
    summary: str = doc("the one-line verdict (last line of cron mail)")
    reasons: tuple[VerdictReason, ...] = doc("every reason and warning, in the verdict line's order")
    fail_on: tuple[str, ...] = doc(
        "the default rules in force: `target`, `locks`, `errors` ([verdict] fail_on, --fail-on); "
        "thresholds and lost workers always fail a run"
    )
    max_error_rate: float = doc("the `errors` rule's limit (unless [thresholds] error_rate is set)")
    degraded: bool = doc("the generator was the bottleneck")


@dataclass(frozen=True, kw_only=True)
class Report:
    """The whole report (`amanflix-stress/report/1`), built once at the end of a run."""

    schema: str = doc("`amanflix-stress/report/1`")
    meta: Meta = doc("run metadata")
    totals: Totals = doc("the measured phase as a whole")
    endpoints: tuple[EndpointRow, ...] = doc("per endpoint template of the measured phase")
    errors: tuple[ErrorRow, ...] = doc("per error group of the measured phase, largest first")
    error_classes: Mapping[str, int] = doc("class -> count, largest first")
    users: tuple[UserRow, ...] = doc("per simulated user")
    setup: PhaseTables = doc("registration and login before the measured phase")
    teardown: PhaseTables = doc("verification and cleanup after it")
    workers: tuple[WorkerRow, ...] = doc("per worker")
    worker_crashes: tuple[str, ...] = doc(
        "tracebacks of programming errors inside workers (a bug in the tool)"
    )
    health: Health = doc("generator self-health")
    limits: RunLimits | None = doc(
        "the resource limits the run ran under (local runs; checked before the start)", omit_none=True
    )
    load_model: LoadModel = doc("closed or open model")
    amanflix: Accounts | None = doc("Amanflix runs: catalog, counters, cleanup", omit_none=True)
    lock_issues: LockIssues | None = doc("Amanflix runs: database lock issues", omit_none=True)
    diagnosis: tuple[Cause, ...] | None = doc(
        "Amanflix runs: the DIAGNOSIS, each cause the lock section's evidence supports (none: empty)",
        omit_none=True,
    )
    hold_lock: HoldLock | None = doc("with --hold-lock: the held windows", omit_none=True)
    held_windows: tuple[WindowEvidence, ...] | None = doc(
        "with --hold-lock: each held window with every lock class found in it", omit_none=True
    )
    server_log: ServerLogEvidence | None = doc(
        "with --server-log: the lock events the server logged beside the tool's findings", omit_none=True
    )
    thresholds: tuple[ThresholdResult, ...] = doc("one per configured threshold, in profile order")
    baseline: Comparison | None = doc("with --baseline: the comparison; null without one (yet)")
    verdict: Verdict = doc("exit code and the one-line verdict")


def is_record_type(hint: Any) -> bool:
    return isinstance(hint, type) and is_dataclass(hint)


def json_name(f) -> str:
    return f.metadata.get("name", f.name)


def to_json(value: Any) -> Any:
    """A record as the JSON report writes it: plain dicts and lists, keys as the metadata names them."""
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in fields(value):
            item = getattr(value, f.name)
            if f.metadata.get("flatten"):
                out.update(to_json(item) if item is not None else {})
            elif item is not None or not f.metadata.get("omit_none"):
                out[json_name(f)] = to_json(item)
        return out
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    return value


def from_plain(cls: type, data: Mapping[str, Any]) -> Any:
    """A record from plain data (a JSON report, or the engine's row dicts); unknown keys are ignored,
    a missing key is an error unless the field is left out when None."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):
        if f.metadata.get("flatten"):
            inner = optional_of(hints[f.name])
            present = any(json_name(g) in data for g in fields(inner))
            values[f.name] = from_plain(inner, data) if present else None
        elif json_name(f) in data:
            values[f.name] = decode(hints[f.name], data[json_name(f)])
        elif f.metadata.get("omit_none"):
            values[f.name] = None
        else:
            raise ValueError(f"{cls.__name__}: no {json_name(f)!r} in {sorted(data)}")
    return cls(**values)


def optional_of(hint: Any) -> Any:
    """X from `X | None`; the hint itself otherwise."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint


def decode(hint: Any, value: Any) -> Any:
    """Plain data as the type hint says: records, tuples of them, mappings of them; scalars as they are."""
    hint = optional_of(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if is_record_type(hint):
        return from_plain(hint, value)
    if origin is tuple:
        items = args[:1] * len(value) if args[-1:] == (Ellipsis,) else args
        return tuple(decode(a, v) for a, v in zip(items, value))
    if origin in (dict, Mapping) and args:
        return {key: decode(args[1], item) for key, item in value.items()}
    return value
