"""The report: built once from a run as typed records (output/model.py), written as JSON, shown as tables."""

from __future__ import annotations

import json
import platform
import re
import socket
import time
from collections.abc import Mapping
from datetime import datetime, timezone

from tabulate import tabulate

from amanflix_stress import __version__
from amanflix_stress.amanflix.holdlock import WindowEvidence
from amanflix_stress.amanflix.records import (
    Accounts,
    Cause,
    HoldLock,
    InFlight,
    LockInterval,
    LockIssues,
)
from amanflix_stress.amanflix.serverlog import LoggedInterval, ServerLogEvidence
from amanflix_stress.engine.aggregator import endpoint_rows, ms, total_series
from amanflix_stress.engine.health import health_report
from amanflix_stress.engine.pacing import DROP_AFTER_S, LATE_AFTER_S, build_segments, total_arrivals
from amanflix_stress.engine.stats import PERCENTILE_METHOD
from amanflix_stress.output.baseline import BaselineRun, compare
from amanflix_stress.output.files import write_atomic
from amanflix_stress.output.model import (
    SCHEMA_VERSION,
    EndpointRow,
    ErrorRow,
    Health,
    LoadModel,
    Meta,
    OpenArrivals,
    PhaseTables,
    Report,
    ResponseTimes,
    RunLimits,
    Totals,
    UserRow,
    WorkerRow,
    from_plain,
    to_json,
)
from amanflix_stress.output.thresholds import evaluate
from amanflix_stress.output.verdict import decide, policy_from

SERVER_LOG_ROWS = 30  # console rows of the server-log comparison; the JSON has every interval
LATENCY_CAPTION = (
    "closed model: each user waits for a reply before its next request, so latency is service time "
    "and a slow server also lowers the offered load (see docs/measurement.md)"
)
OPEN_CAPTION = (
    "open model: arrivals follow the --rate schedule whatever the replies do; response time counts from "
    "each arrival's intended start (queueing included), service time from the actual send "
    "(see docs/performance.md)"
)


def iso(epoch_s: float | None) -> str | None:
    if epoch_s is None or epoch_s != epoch_s or epoch_s in (float("inf"), float("-inf")):
        return None
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds")


def build_report(plan, result, args: dict, profile: dict, baseline: BaselineRun | None = None) -> Report:
    """The whole report, once: the measured figures, then thresholds, baseline and verdict on them."""
    agg, extra = result.aggregator, result.extra
    spans = phase_spans_s(result)
    endpoints = typed_rows(EndpointRow, endpoint_rows(agg.run, spans["run"]))
    totals = totals_section(plan, agg, spans["run"])
    error_classes = dict(sorted(agg.run.count_by_class().items(), key=lambda kv: -kv[1]))
    workers = typed_rows(WorkerRow, agg.worker_rows())
    health = from_plain(Health, health_report(agg.health_rows()))
    thresholds = evaluate(totals, error_classes, endpoints, profile["thresholds"])
    comparison = compare(endpoints, baseline, profile["reporting"]["regression_pct"]) if baseline else None
    verdict = decide(
        workers=workers,
        thresholds=thresholds,
        lock_issues=extra.get("lock_issues"),
        totals=totals,
        error_classes=error_classes,
        intervals=result.intervals,
        interrupted=result.interrupted,
        baseline=comparison,
        health=health,
        policy=policy_from(profile),
    )
    return Report(
        schema=SCHEMA_VERSION,
        meta=meta_section(plan, result, args, profile),
        totals=totals,
        endpoints=endpoints,
        errors=typed_rows(ErrorRow, agg.error_rows(agg.run)),
        error_classes=error_classes,
        users=typed_rows(UserRow, agg.user_rows(agg.run)),
        setup=phase_tables(agg, "setup", spans["setup"]),
        teardown=phase_tables(agg, "teardown", spans["teardown"]),
        workers=workers,
        worker_crashes=tuple(agg.crashes),
        health=health,
        limits=from_plain(RunLimits, extra["limits"]) if extra.get("limits") else None,
        load_model=load_model_section(plan, agg),
        amanflix=extra.get("amanflix"),
        lock_issues=extra.get("lock_issues"),
        diagnosis=extra.get("diagnosis"),
        hold_lock=extra.get("hold_lock"),
        held_windows=extra.get("held_windows"),
        server_log=extra.get("server_log"),
        thresholds=thresholds,
        baseline=comparison,
        verdict=verdict,
    )


def phase_spans_s(result) -> dict[str, float]:
    """Seconds of each phase: setup from the workers' launch to the go signal, the measured phase from go
    to stop (the deadline or a signal), teardown from the stop to the last worker done. A run stopped before
    its measured phase has no stop time: the measured phase then lasts until the end."""
    agg = result.aggregator
    stop_s = agg.stop_s if agg.stop_s is not None else result.end_s
    setup_start_s = agg.setup_start_s if agg.setup_start_s is not None else result.start_s
    return {
        "setup": max(result.start_s - setup_start_s, 0.0),
        "run": max(stop_s - result.start_s, 0.0),
        "teardown": max(result.end_s - stop_s, 0.0),
    }


def per_second(count: int, seconds: float) -> float:
    return round(count / seconds, 3) if seconds > 0 else 0.0


def typed_rows(cls: type, rows: list[dict]) -> tuple:
    return tuple(from_plain(cls, row) for row in rows)


def meta_section(plan, result, args: dict, profile: dict) -> Meta:
    return Meta(
        tool="amanflix-stress",
        version=__version__,
        run_id=plan.run_id,
        seed=plan.seed,
        base_url=plan.base_url,
        behaviour=plan.behaviour,
        args=args,
        profile=profile,
        started_at=iso(result.start_s),
        ended_at=iso(result.end_s),
        hostname=socket.gethostname(),
        python=platform.python_version(),
        platform=platform.platform(),
        stop_reason=result.stop_reason,
        interrupted=result.interrupted,
        latency_model=OPEN_CAPTION if getattr(plan, "open_model", False) else LATENCY_CAPTION,
        percentile_method=PERCENTILE_METHOD,
        timeseries=plan.timeseries_path,
    )


def totals_section(plan, agg, duration_s: float) -> Totals:
    run = agg.run
    p50, _p90, p95, p99, _p999 = total_series(run).percentiles_us()
    return Totals(
        duration_s=round(duration_s, 3),
        users=plan.users,
        requests=run.requests,
        failures=run.failures,
        error_rate=round(run.failures / run.requests, 6) if run.requests else 0.0,
        throughput_rps=per_second(run.requests, duration_s),
        p50_ms=ms(p50),
        p95_ms=ms(p95),
        p99_ms=ms(p99),
        late_batches=agg.late_batches,
    )


def phase_tables(agg, phase: str, duration_s: float) -> PhaseTables:
    """Setup or teardown: its own duration, and its rates divided by it (not by the measured phase's)."""
    stats = agg.phases[phase]
    return PhaseTables(
        duration_s=round(duration_s, 3),
        requests=stats.requests,
        rps=per_second(stats.requests, duration_s),
        endpoints=typed_rows(EndpointRow, endpoint_rows(stats, duration_s)),
        errors=typed_rows(ErrorRow, agg.error_rows(stats)),
    )


def load_model_section(plan, agg) -> LoadModel:
    """Closed or open; for the open model the arrivals (sent, late, dropped) and response-time totals."""
    if not getattr(plan, "open_model", False):
        return LoadModel(kind="closed", open=None)
    counts = agg.arrival_counts()
    scheduled = total_arrivals(build_segments(plan.rate, plan.stages, plan.duration_s))
    response = total_series(agg.run).response_percentiles_us((50, 95, 99)) or [float("nan")] * 3
    arrivals = OpenArrivals(
        rate=plan.rate,
        stages=tuple(tuple(stage) for stage in plan.stages),
        arrivals_scheduled=scheduled,
        arrivals_started=counts["taken"],
        late=counts["late"],
        dropped=counts["dropped"],
        unsent_at_stop=max(0, scheduled - counts["taken"] - counts["dropped"]),
        late_after_ms=LATE_AFTER_S * 1000,
        drop_after_ms=DROP_AFTER_S * 1000,
        response_p50_ms=ms(response[0]),
        response_p95_ms=ms(response[1]),
        response_p99_ms=ms(response[2]),
    )
    return LoadModel(kind="open", open=arrivals)


def write_json(report: Report, path: str) -> None:
    """Write atomically: a reader never sees half a report, a failed write leaves the old file (or none)."""
    write_atomic(path, json.dumps(to_json(report), indent=2, default=_jsonable) + "\n")


def read_json_report(path: str) -> dict:
    """A written report as plain data (from_plain(Report, ...) types it)."""
    with open(path) as report:
        return json.load(report)


def _jsonable(value):
    if isinstance(value, (set, tuple, range)):
        return list(value)
    return str(value)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def render_endpoints(rows: tuple[EndpointRow, ...], title: str) -> str:
    if any(r.response is not None for r in rows):
        return render_open_endpoints(rows, title)
    headers = ["endpoint", "requests", "failures", "req/s", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    table = [
        [
            r.name,
            _fmt(r.requests),
            _fmt(r.failures),
            _fmt(r.rps),
            _fmt(r.mean_ms),
            _fmt(r.p50_ms),
            _fmt(r.p95_ms),
            _fmt(r.p99_ms),
            _fmt(r.max_ms),
        ]
        for r in rows
    ]
    return f"{title}\n" + tabulate(table, headers, tablefmt="simple", disable_numparse=True)


def render_open_endpoints(rows: tuple[EndpointRow, ...], title: str) -> str:
    """Open model: response time (from the intended start) beside service time (from the actual send)."""
    headers = [
        "endpoint",
        "requests",
        "failures",
        "req/s",
        "response p50",
        "p99",
        "max ms",
        "service p50",
        "p99",
        "max ms",
    ]
    table = [
        [
            r.name,
            _fmt(r.requests),
            _fmt(r.failures),
            _fmt(r.rps),
            *_response_cells(r.response),
            _fmt(r.p50_ms),
            _fmt(r.p99_ms),
            _fmt(r.max_ms),
        ]
        for r in rows
    ]
    return f"{title}\n" + tabulate(table, headers, tablefmt="simple", disable_numparse=True)


def _response_cells(response: ResponseTimes | None) -> list[str]:
    if response is None:
        return ["-", "-", "-"]
    return [_fmt(response.response_p50_ms), _fmt(response.response_p99_ms), _fmt(response.response_max_ms)]


def render_errors(rows: tuple[ErrorRow, ...], limit: int = 20) -> str:
    if not rows:
        return "ERRORS\nno failed requests"
    headers = ["class", "status", "count", "share", "first seen", "last seen", "endpoints", "example"]
    table = [
        [
            r.class_,
            r.status or "-",
            _fmt(r.count),
            f"{r.share:.2%}",
            _clock(r.first_seen_s),
            _clock(r.last_seen_s),
            _endpoints(r.endpoints),
            short_example(r.example),
        ]
        for r in rows[:limit]
    ]
    more = f"\n(+{len(rows) - limit} more error groups in the JSON report)" if len(rows) > limit else ""
    return "ERRORS\n" + tabulate(table, headers, tablefmt="simple", disable_numparse=True) + more


_MODULE_PATH = re.compile(r"\b[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*\.(?=[A-Z][a-z]+[A-Z])")


def short_example(example: str, width: int = 70) -> str:
    """The example as the table shows it: exception module paths dropped so the reason fits, shortened at a
    word with an ellipsis when it is still too long (the JSON report keeps the full text)."""
    text = _MODULE_PATH.sub("", example)
    if len(text) <= width:
        return text
    cut = text[: width - 1].rsplit(" ", 1)[0] if " " in text[: width - 1] else text[: width - 1]
    return cut.rstrip(" ,;:") + "…"


def render_users(rows: tuple[UserRow, ...], limit: int = 5) -> str:
    """The simulated users with the most failures (all of them are in the JSON report)."""
    failing = sorted((r for r in rows if r.failures), key=lambda r: -r.failures)[:limit]
    if not failing:
        return ""
    table = [
        [
            r.user,
            _fmt(r.requests),
            _fmt(r.failures),
            ", ".join(f"{c} {n}" for c, n in sorted(r.errors.items(), key=lambda kv: -kv[1])),
        ]
        for r in failing
    ]
    return f"USERS WITH MOST FAILURES (of {len(rows):,} users)\n" + tabulate(
        table, ["user", "requests", "failures", "errors"], tablefmt="simple", disable_numparse=True
    )


def _clock(epoch_s: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch_s))


def _endpoints(counts: Mapping[str, int]) -> str:
    names = sorted(counts, key=lambda n: -counts[n])
    return ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")


def render_totals(report: Report) -> str:
    t, m = report.totals, report.meta
    rows = [
        ["duration", f"{t.duration_s:.1f} s measured phase ({m.stop_reason}){other_phases_text(report)}"],
        ["users", t.users],
        ["requests", f"{t.requests:,}"],
        ["throughput", f"{t.throughput_rps:,.1f} req/s"],
        ["error rate", f"{t.error_rate:.2%} ({t.failures:,} failed)"],
        ["latency p50 / p95 / p99", f"{_fmt(t.p50_ms)} / {_fmt(t.p95_ms)} / {_fmt(t.p99_ms)} ms"],
    ]
    rows += open_model_rows(report.load_model)
    return "TOTALS\n" + tabulate(rows, tablefmt="plain", disable_numparse=True)


def other_phases_text(report: Report) -> str:
    """Setup and teardown lengths beside the measured phase's: they are not in its duration or req/s."""
    spans = [
        f"{name} {phase.duration_s:.1f} s"
        for name, phase in (("setup", report.setup), ("teardown", report.teardown))
        if phase.duration_s
    ]
    return f"; not counted: {', '.join(spans)}" if spans else ""


def phase_title(title: str, phase: PhaseTables) -> str:
    """SETUP or TEARDOWN with the phase's own duration and rate (its endpoints' req/s use the same)."""
    return f"{title}: {phase.duration_s:.1f} s, {phase.requests:,} requests, {phase.rps:,.1f} req/s"


def open_model_rows(model: LoadModel) -> list[list]:
    """The open model's extra totals: the latency line above is service time; response time and arrivals."""
    if model.open is None:
        return []
    a = model.open
    response = f"{_fmt(a.response_p50_ms)} / {_fmt(a.response_p95_ms)} / {_fmt(a.response_p99_ms)}"
    return [
        ["(latency above is service time: from the actual send)", ""],
        ["response time p50 / p95 / p99", f"{response} ms (from the intended start)"],
        [
            "arrivals",
            f"{a.arrivals_started:,} of {a.arrivals_scheduled:,} scheduled; "
            f"late {a.late:,} (> {a.late_after_ms:.0f} ms), dropped {a.dropped:,} "
            f"(> {a.drop_after_ms:.0f} ms overdue), "
            f"unsent at the stop {a.unsent_at_stop:,}",
        ],
    ]


HEALTH_HEADERS = [  # the GENERATOR HEALTH table's columns, on the console and in the HTML page alike
    "worker",
    "core",
    "cpu cores",
    "cpu peak",
    "lag p50 ms",
    "lag p99 ms",
    "lag max ms",
    "threads",
    "busy",
]


def render_health(health: Health) -> str:
    """GENERATOR HEALTH: each worker's CPU, lag and threads; DEGRADED and why when it was the bottleneck."""
    headers = HEALTH_HEADERS
    table = [
        [
            r.id,
            _or_dash(r.core),
            _cores(r.cpu_cores),
            _cores(r.cpu_peak_cores),
            _fmt(r.lag_p50_ms),
            _fmt(r.lag_p99_ms),
            _fmt(r.lag_max_ms),
            r.threads,
            "-" if r.busy_share is None else f"{r.busy_share:.0%}",
        ]
        for r in health.workers
    ]
    return (
        "GENERATOR HEALTH\n"
        + tabulate(table, headers, tablefmt="simple", disable_numparse=True)
        + "\n"
        + health_verdict(health)
    )


def render_limits(limits: RunLimits | None) -> str:
    """The resource limits the run ran under, one line (below GENERATOR HEALTH); empty when not checked."""
    if limits is None:
        return ""
    threads = f"{limits.threads_allowed:,}" if limits.threads_allowed is not None else "no limit found"
    memory = f"{limits.memory_available_mib:,}" if limits.memory_available_mib is not None else "?"
    return (
        f"limits: open files {limits.fd_needed:,} needed per worker of {limits.fd_soft:,}; threads "
        f"{limits.threads_needed:,} of {threads}; memory ~{limits.memory_needed_mib:,} MiB of {memory} MiB "
        f"({limits.rss_per_user_kib} KiB per user)"
    )


def health_verdict(health: Health) -> str:
    limits = health.limits
    if health.degraded:
        return (
            "DEGRADED: the generator was the bottleneck, so its latencies include its own queueing: "
            + "; ".join(health.reasons)
        )
    if any(r.cpu_cores is not None for r in health.workers):
        return (
            f"generator healthy: every worker under {limits.cpu_cores:.2f} cores and "
            f"{limits.lag_p99_ms:.0f} ms p99 lag"
        )
    return "no health figures: no worker reported from the measured phase"


def _cores(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


def render_workers(rows: tuple[WorkerRow, ...]) -> str:
    bad = [r for r in rows if r.status not in ("done",)]
    if not bad:
        return ""
    table = [[r.id, r.pid, r.users, r.status, r.detail] for r in bad]
    return "WORKER PROBLEMS\n" + tabulate(
        table, ["worker", "pid", "users", "status", "detail"], tablefmt="simple"
    )


def render_report(report: Report) -> str:
    """The console report: setup, endpoints, errors, totals, worker problems."""
    parts = []
    if report.setup.endpoints:
        parts.append(
            render_endpoints(
                report.setup.endpoints, phase_title("SETUP (before the measured phase)", report.setup)
            )
        )
    parts += [
        render_endpoints(report.endpoints, "ENDPOINTS (measured phase)"),
        render_errors(report.errors),
        render_users(report.users),
        render_totals(report),
        render_workers(report.workers),
        render_health(report.health) + ("\n" + render_limits(report.limits) if report.limits else ""),
    ]
    if report.teardown.endpoints:
        title = phase_title("TEARDOWN (verification and cleanup)", report.teardown)
        parts.append(render_endpoints(report.teardown.endpoints, title))
    if report.lock_issues is not None:
        # the held windows get their own table when the report has their evidence (every class found)
        hold_lock = None if report.held_windows is not None else report.hold_lock
        parts.append(render_lock_issues(report.lock_issues, hold_lock))
    if report.hold_lock is not None and report.held_windows is not None:
        parts.append(render_hold_windows(report.hold_lock, report.held_windows))
    if report.server_log is not None:
        parts.append(render_server_log(report.server_log))
    if report.diagnosis is not None:  # the lock section ends with what caused it
        parts.append(render_diagnosis(report.diagnosis))
    if report.amanflix is not None:
        parts.append(render_accounts(report.amanflix, report.meta))
    if report.worker_crashes:
        parts.append("WORKER ERRORS\n" + "\n".join(c.strip().splitlines()[-1] for c in report.worker_crashes))
    parts.append(f"latency: {report.meta.latency_model}; percentiles: {report.meta.percentile_method}")
    return "\n\n".join(p for p in parts if p) + "\n"


def progress_line(snapshot: dict, total_s: float) -> str:
    if snapshot["phase"] == "setup":
        return (
            f"[setup] preparing users (registration, login): {snapshot['requests']:,} requests, "
            f"{snapshot['failures']:,} failed; "
            f"workers ready {snapshot['workers_ready']}/{snapshot['workers']}"
        )
    if snapshot["phase"] == "teardown":
        return (
            f"[teardown] verifying what was written and cleaning up: {snapshot['requests']:,} requests, "
            f"{snapshot['failures']:,} failed"
        )
    p95 = "-" if snapshot["p95_ms"] is None else f"{snapshot['p95_ms']:.0f} ms"
    return (
        f"[{snapshot['elapsed_s']:5.0f}/{total_s:.0f} s] requests {snapshot['requests']:,}  "
        f"{snapshot['rps']:,.0f} req/s  errors {snapshot['failures']:,}  p95 {p95}  "
        f"users {snapshot['active_users']}"
    )


def verified_text(section: LockIssues) -> str:
    """What the lock detection checked, as one phrase: 'echoes checked 400, readbacks 82, ...'."""
    return ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in section.verified.items())


def render_lock_issues(section: LockIssues, hold_lock: HoldLock | None = None) -> str:
    """DATABASE LOCK ISSUES DETECTED (found: verified or server-said), or what was verified to find none;
    then, apart, timing-only suspicions, suspected lock waits and DATA INTEGRITY."""
    verified = verified_text(section)
    caveat = f"\nnot verified: {section.not_verifiable}" if section.not_verifiable else ""
    parts = [f"no lock issues detected; verified: {verified}{caveat}"]
    if section.detected:
        parts = [_found_lock_issues(section), f"verified: {verified}{caveat}"]
    parts += [_suspected_issues(section), _suspected_waits(section), _data_integrity(section)]
    if hold_lock:
        parts.append(render_hold_windows(hold_lock))
    return "\n\n".join(p for p in parts if p)


def evidence_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{level} {n:,}" for level, n in counts.items() if level != "timing") or "-"


def _found_lock_issues(section: LockIssues) -> str:
    by_level: dict[str, int] = {}
    for cls in section.by_class:
        for level, n in (section.evidence or {}).get(cls, {}).items():
            if level != "timing":
                by_level[level] = by_level.get(level, 0) + n
    classes = [
        [
            cls,
            f"{n:,}",
            evidence_text((section.evidence or {}).get(cls, {})),
            in_flight_text(section.writes_in_flight.get(cls)),
            section.explain[cls],
        ]
        for cls, n in section.by_class.items()
    ]
    endpoint_rows = [
        [name, ", ".join(f"{c} {n:,}" for c, n in counts.items())]
        for name, counts in list(section.endpoints.items())[:8]
    ]
    users = ", ".join(f"user {u.user}: {u.lock_errors}" for u in section.top_users[:5])
    return "\n".join(
        [
            f"DATABASE LOCK ISSUES DETECTED: {section.total:,} ({section.lock_error_rate:.2%} of requests; "
            f"evidence: {evidence_text(by_level)})",
            tabulate(
                classes,
                ["class", "count", "evidence", "writes in flight", "what it means"],
                tablefmt="simple",
                disable_numparse=True,
            ),
            tabulate(endpoint_rows, ["endpoint", "lock issues"], tablefmt="simple", disable_numparse=True),
            f"top users: {users or '-'}",
            "timeline: " + (_timeline(section.timeline) or "-"),
        ]
    )


def _suspected_issues(section: LockIssues) -> str:
    if not section.suspected:
        return ""
    counts = ", ".join(f"{cls} {n:,}" for cls, n in (section.suspected or {}).items())
    return (
        f"SUSPECTED, TIMING ONLY (not counted as found lock issues): {counts}\n"
        "  a bare 500 answered at the busy timeout, with nothing naming the cause and no read-back to prove "
        "a loss"
    )


def _suspected_waits(section: LockIssues) -> str:
    if not section.suspected_lock_waits:
        return ""
    low, high = section.lock_wait_window_s or (0.0, 0.0)
    rows = [
        [w.endpoint, f"{w.count:,}", f"{w.min_s:.1f}-{w.max_s:.1f} s"]
        for w in section.suspected_lock_waits or ()
    ]
    return (
        f"SUSPECTED LOCK WAITS (not failures, not in the error rate or the lock count): unverifiable writes "
        f"answered 2xx in {low:.1f}-{high:.1f} s, the busy-timeout window\n"
        + tabulate(rows, ["endpoint", "writes", "latency"], tablefmt="simple", disable_numparse=True)
    )


def _data_integrity(section: LockIssues) -> str:
    figures = section.integrity
    if figures is None or (not figures.lock_caused_losses and not figures.race_duplicates):
        return ""
    return (
        f"DATA INTEGRITY: lock-caused losses {figures.lock_caused_losses:,}; race-caused duplicate rows "
        f"{figures.race_duplicates:,} (concurrent first writes, no unique key: a race, not a lock)"
    )


def _timeline(rows: tuple[LockInterval, ...]) -> str:
    return " ".join(f"[{_clock(row.start_s)} {sum(row.classes.values())}]" for row in rows[:24])


def in_flight_text(figures: InFlight | None) -> str:
    return f"{figures.mean:g} avg, {figures.max} max" if figures else "-"


def render_hold_windows(hold_lock: HoldLock, evidence: tuple[WindowEvidence, ...] = ()) -> str:
    """HELD LOCK WINDOWS: each window, with every lock class found in it when the report has them."""
    if evidence:
        return render_window_evidence(hold_lock, evidence)
    rows = [
        [
            i + 1,
            _clock(w.start_s),
            f"{(w.end_s or w.start_s) - w.start_s:.1f} s",
            w.kind,
            w.error or f"{w.lock_issues_detected:,}",
        ]
        for i, w in enumerate(hold_lock.windows)
    ]
    caught = sum(1 for w in hold_lock.windows if w.lock_issues_detected)
    return f"HELD LOCK WINDOWS on {hold_lock.path}: {caught} of {len(rows)} showed lock issues\n" + tabulate(
        rows,
        ["#", "start", "held", "lock", "lock issues found"],
        tablefmt="simple",
        disable_numparse=True,
    )


def render_window_evidence(hold_lock: HoldLock, windows: tuple[WindowEvidence, ...]) -> str:
    """The held-window table: lock classes found (answered 500 apart from hidden), bare 500s, server log."""
    logged = any(w.server_events is not None for w in windows)
    rows = [window_row(w, logged) for w in windows]
    caught = sum(1 for w in windows if w.lock_classes)
    headers = ["#", "start", "held", "lock", "lock classes found", "answered 500", "answered 2xx", "bare 500"]
    return f"HELD LOCK WINDOWS on {hold_lock.path}: {caught} of {len(rows)} showed lock issues\n" + tabulate(
        rows,
        headers + (["server logged"] if logged else []),
        tablefmt="simple",
        disable_numparse=True,
    )


def window_row(w: WindowEvidence, logged: bool) -> list:
    found = ", ".join(f"{c} {n:,}" for c, n in w.lock_classes.items()) or "-"
    row = [
        w.window,
        _clock(w.start_s),
        f"{(w.end_s or w.start_s) - w.start_s:.1f} s",
        w.kind,
        w.error or found,
        f"{w.answered_500:,}",
        f"{w.answered_2xx:,}",
        f"{w.bare_5xx:,}",
    ]
    return row + ([_or_dash(w.server_events)] if logged else [])


def render_server_log(section: ServerLogEvidence) -> str:
    """SERVER LOG: the reconciliation line, what N and M count, and the intervals with events or findings."""
    head = f"SERVER LOG {section.path}"
    problems = "".join(f"\n  {line}" for line in section.problems)
    if not section.followed:
        return f"{head}: not followed{problems}"
    kinds = ", ".join(f"{k.replace('_', ' ')} {n:,}" for k, n in section.by_kind.items())
    lines = [
        head,
        f"server logged {section.events:,} lock events; the tool accounted for {section.accounted:,} of them",
        f"  N counts requests, not lines: {kinds} ({section.commit_helper_lines:,} commit-helper lines, "
        "one per failed attempt: only 'attempt 1' counts)",
        "  M counts logged events matched one to one with lock failures the tool found answered in the same "
        "interval or the next (docs/detection.md)",
        f"  clock: {section.clock}",
    ]
    rows = [logged_row(r) for r in section.intervals[:SERVER_LOG_ROWS]]
    more = len(section.intervals) - SERVER_LOG_ROWS
    if rows:
        headers = ["when", "server logged", "tool: lock failures", "bare 500", "accounted"]
        lines.append(tabulate(rows, headers, tablefmt="simple", disable_numparse=True))
    if more > 0:
        lines.append(f"  ... {more} more intervals in the JSON report")
    return "\n".join(lines) + problems


def logged_row(row: LoggedInterval) -> list:
    when = _clock(row.start_s) if row.start_s is not None else row.phase
    return [
        when,
        f"{row.server_events:,}",
        f"{row.tool_lock_failures:,}",
        f"{row.bare_5xx:,}",
        f"{row.accounted:,}",
    ]


def render_diagnosis(causes: tuple[Cause, ...]) -> str:
    """DIAGNOSIS: each cause the run's evidence supports, its observations and its cure (as probe's)."""
    if not causes:
        return "DIAGNOSIS\n    no cause found: no lock issue, duplicate row or inherited row was observed"
    lines = ["DIAGNOSIS (causes the evidence above supports; evidence: verified > server-said > timing)"]
    for number, cause in enumerate(causes, 1):
        lines.append(f"{number}. {cause.name} (evidence: {cause.level})")
        lines += [f"    - {text}" for text in cause.observations]
        lines.append(f"    cure: {cause.cure}")
    return "\n".join(lines)


ACCOUNTS_NAMED_MAX = 20  # accounts named on the console; the JSON names them all


def render_accounts(section: Accounts, meta: Meta) -> str:
    cleanup, counters = section.cleanup, section.counters
    line = (
        f"ACCOUNTS: created {cleanup.created}, deleted {cleanup.deleted}, left behind "
        f"{cleanup.left_behind} ({cleanup.method})"
    )
    if cleanup.unchecked:
        line += f"\n  {cleanup.unchecked} possible accounts not checked: they may be left"
    if cleanup.error:
        line += f"\n  {cleanup.error}"
    for left in (cleanup.not_removed or ())[:ACCOUNTS_NAMED_MAX]:
        line += f"\n  not removed: {left.name}: {left.reason}"
    if len(cleanup.not_removed or ()) > ACCOUNTS_NAMED_MAX:
        line += (
            f"\n  ... and {len(cleanup.not_removed or ()) - ACCOUNTS_NAMED_MAX} more (all in the JSON report)"
        )
    if cleanup.not_removed:
        line += (
            "\n  remove them later (admin credentials): amanflix-stress cleanup "
            f"--base-url {meta.base_url} --run-id {meta.run_id}"
        )
    if cleanup.rows_left_behind:
        line += f"\n  {cleanup.rows_left_behind} watch-history/my-list rows left behind: {cleanup.note}"
    extras = {
        k: counters[k]
        for k in ("phantom_registrations", "setup_retries", "relogins", "users_dropped")
        if counters.get(k)
    }
    if extras:
        line += "\n  " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in extras.items())
    return line
