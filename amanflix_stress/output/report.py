"""The report: built once from a run as typed records (output/model.py), written as JSON, shown as tables."""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime, timezone

from tabulate import tabulate

from amanflix_stress import __version__
from amanflix_stress.amanflix.records import Accounts, HoldLock, InFlight, LockInterval, LockIssues
from amanflix_stress.engine.aggregator import endpoint_rows, ms, total_series
from amanflix_stress.engine.health import health_report
from amanflix_stress.engine.pacing import DROP_AFTER_S, LATE_AFTER_S, build_segments, total_arrivals
from amanflix_stress.engine.stats import PERCENTILE_METHOD
from amanflix_stress.output.baseline import BaselineRun, compare
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
    Totals,
    UserRow,
    WorkerRow,
    from_plain,
    to_json,
)
from amanflix_stress.output.thresholds import evaluate
from amanflix_stress.output.verdict import decide

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
    duration_s = max(result.end_s - result.start_s, 1e-9)
    endpoints = typed_rows(EndpointRow, endpoint_rows(agg.run, duration_s))
    totals = totals_section(plan, agg, duration_s)
    error_classes = dict(sorted(agg.run.count_by_class().items(), key=lambda kv: -kv[1]))
    workers = typed_rows(WorkerRow, agg.worker_rows())
    health = from_plain(Health, health_report(agg.health_rows()))
    thresholds = evaluate(totals, error_classes, endpoints, profile["thresholds"])
    comparison = compare(endpoints, baseline, profile["reporting"]["regression_pct"]) if baseline else None
    return Report(
        schema=SCHEMA_VERSION,
        meta=meta_section(plan, result, args, profile),
        totals=totals,
        endpoints=endpoints,
        errors=typed_rows(ErrorRow, agg.error_rows(agg.run)),
        error_classes=error_classes,
        users=typed_rows(UserRow, agg.user_rows(agg.run)),
        setup=phase_tables(agg, "setup", duration_s),
        teardown=phase_tables(agg, "teardown", duration_s),
        workers=workers,
        worker_crashes=tuple(agg.crashes),
        health=health,
        load_model=load_model_section(plan, agg),
        amanflix=extra.get("amanflix"),
        lock_issues=extra.get("lock_issues"),
        hold_lock=extra.get("hold_lock"),
        thresholds=thresholds,
        baseline=comparison,
        verdict=decide(workers, thresholds, extra.get("lock_issues"), result.interrupted, comparison, health),
    )


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
        throughput_rps=round(run.requests / duration_s, 3),
        p50_ms=ms(p50),
        p95_ms=ms(p95),
        p99_ms=ms(p99),
        late_batches=agg.late_batches,
    )


def phase_tables(agg, phase: str, duration_s: float) -> PhaseTables:
    stats = agg.phases[phase]
    return PhaseTables(
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
    """Write atomically: a reader never sees half a report, an interrupted write leaves the old file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(to_json(report), out, indent=2, default=_jsonable)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


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
            _short_example(r.example),
        ]
        for r in rows[:limit]
    ]
    more = f"\n(+{len(rows) - limit} more error groups in the JSON report)" if len(rows) > limit else ""
    return "ERRORS\n" + tabulate(table, headers, tablefmt="simple", disable_numparse=True) + more


_MODULE_PATH = re.compile(r"\b[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*\.(?=[A-Z][a-z]+[A-Z])")


def _short_example(example: str, width: int = 70) -> str:
    """The example as the table shows it: exception module paths dropped so the reason fits."""
    return _MODULE_PATH.sub("", example)[:width]


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
        ["duration", f"{t.duration_s:.1f} s ({m.stop_reason})"],
        ["users", t.users],
        ["requests", f"{t.requests:,}"],
        ["throughput", f"{t.throughput_rps:,.1f} req/s"],
        ["error rate", f"{t.error_rate:.2%} ({t.failures:,} failed)"],
        ["latency p50 / p95 / p99", f"{_fmt(t.p50_ms)} / {_fmt(t.p95_ms)} / {_fmt(t.p99_ms)} ms"],
    ]
    rows += open_model_rows(report.load_model)
    return "TOTALS\n" + tabulate(rows, tablefmt="plain", disable_numparse=True)


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


def render_health(health: Health) -> str:
    """GENERATOR HEALTH: each worker's CPU, lag and threads; DEGRADED and why when it was the bottleneck."""
    headers = [
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
        parts.append(render_endpoints(report.setup.endpoints, "SETUP (before the measured phase)"))
    parts += [
        render_endpoints(report.endpoints, "ENDPOINTS (measured phase)"),
        render_errors(report.errors),
        render_users(report.users),
        render_totals(report),
        render_workers(report.workers),
        render_health(report.health),
    ]
    if report.teardown.endpoints:
        parts.append(render_endpoints(report.teardown.endpoints, "TEARDOWN (verification and cleanup)"))
    if report.lock_issues is not None:
        parts.append(render_lock_issues(report.lock_issues, report.hold_lock))
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
    """DATABASE LOCK ISSUES DETECTED, or what was verified to find none."""
    verified = verified_text(section)
    held = render_hold_windows(hold_lock) if hold_lock else ""
    caveat = f"\nnot verified: {section.not_verifiable}" if section.not_verifiable else ""
    if not section.detected:
        return f"no lock issues detected; verified: {verified}{caveat}" + (f"\n\n{held}" if held else "")
    classes = [
        [cls, f"{n:,}", _in_flight(section.writes_in_flight.get(cls)), section.explain[cls]]
        for cls, n in section.by_class.items()
    ]
    parts = [
        f"DATABASE LOCK ISSUES DETECTED: {section.total:,} ({section.lock_error_rate:.2%} of requests)",
        tabulate(
            classes,
            ["class", "count", "writes in flight", "what it means"],
            tablefmt="simple",
            disable_numparse=True,
        ),
    ]
    endpoint_rows = [
        [name, ", ".join(f"{c} {n:,}" for c, n in counts.items())]
        for name, counts in list(section.endpoints.items())[:8]
    ]
    parts.append(
        tabulate(endpoint_rows, ["endpoint", "lock issues"], tablefmt="simple", disable_numparse=True)
    )
    users = ", ".join(f"user {u.user}: {u.lock_errors}" for u in section.top_users[:5])
    parts.append(f"top users: {users or '-'}")
    parts.append("timeline: " + (_timeline(section.timeline) or "-"))
    parts.append(f"verified: {verified}{caveat}")
    if held:
        parts.append(held)
    return "\n".join(parts)


def _timeline(rows: tuple[LockInterval, ...]) -> str:
    return " ".join(f"[{_clock(row.start_s)} {sum(row.classes.values())}]" for row in rows[:24])


def _in_flight(figures: InFlight | None) -> str:
    return f"{figures.mean:g} avg, {figures.max} max" if figures else "-"


def render_hold_windows(hold_lock: HoldLock) -> str:
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
