"""Baseline comparison: this run's endpoints vs an earlier report, flagging latency and error regressions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from amanflix_stress.errors import UsageError
from amanflix_stress.output.model import Comparison, EndpointChange, EndpointRow, from_plain

NOISE_FLOOR_MS = 2.0  # a p95 change smaller than this is timer and scheduler noise, not a regression
ERROR_RATE_SLACK = 0.001  # an error rate may grow by this much (0.1 point) before it counts
# a p95 of a handful of requests is one slow request (5.8 -> 26.6 ms on 6 requests was flagged): an endpoint
# is judged only when both runs sent it at least this many
MIN_REQUESTS = 30


@dataclass(frozen=True)
class BaselineRun:
    """An earlier report, read back as far as the comparison needs."""

    path: str
    run_id: str | None
    started_at: str | None
    endpoints: tuple[EndpointRow, ...]


def load_baseline(path: str) -> BaselineRun:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"--baseline: cannot read {path} as a JSON report ({exc}); give a report.json "
            "written by 'amanflix-stress run'"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("endpoints"), list):
        raise UsageError(f"--baseline: {path} is not an amanflix-stress report (no endpoints table)")
    meta = data.get("meta") or {}
    try:
        endpoints = tuple(from_plain(EndpointRow, row) for row in data["endpoints"])
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"--baseline: {path} has an endpoints table this version cannot read ({exc})"
        ) from None
    return BaselineRun(str(path), meta.get("run_id"), meta.get("started_at"), endpoints)


def compare_endpoint(now: EndpointRow, before: EndpointRow, regression_pct: float) -> EndpointChange:
    """Before and now for one endpoint; a regression only where both runs had MIN_REQUESTS to say so."""
    p95_now, p95_before = now.p95_ms, before.p95_ms
    rate_now, rate_before = error_rate(now), error_rate(before)
    judged = min(now.requests, before.requests) >= MIN_REQUESTS
    reasons = []
    if (
        judged
        and p95_now is not None
        and p95_before is not None
        and p95_now - p95_before > NOISE_FLOOR_MS
        and p95_now > p95_before * (1 + regression_pct / 100)
    ):
        reasons.append(f"p95 {p95_before:,.1f} -> {p95_now:,.1f} ms")
    if judged and rate_now > rate_before + ERROR_RATE_SLACK:
        reasons.append(f"errors {rate_before:.2%} -> {rate_now:.2%}")
    change = round((p95_now / p95_before - 1) * 100, 1) if p95_now is not None and p95_before else None
    return EndpointChange(
        name=now.name,
        requests_before=before.requests,
        requests_now=now.requests,
        judged=judged,
        p95_ms_before=p95_before,
        p95_ms_now=p95_now,
        p95_change_pct=change,
        error_rate_before=round(rate_before, 6),
        error_rate_now=round(rate_now, 6),
        regression=bool(reasons),
        why="; ".join(reasons),
    )


def error_rate(row: EndpointRow) -> float:
    return row.failures / row.requests if row.requests else 0.0


def compare(endpoints: tuple[EndpointRow, ...], baseline: BaselineRun, regression_pct: float) -> Comparison:
    """Per endpoint in both runs: p95 and error rate before and now; new and vanished endpoints listed."""
    before = {row.name: row for row in baseline.endpoints}
    now = {row.name: row for row in endpoints}
    rows = tuple(
        compare_endpoint(now[name], before[name], regression_pct) for name in sorted(now) if name in before
    )
    return Comparison(
        against=baseline.path,
        against_run_id=baseline.run_id,
        against_started_at=baseline.started_at,
        regression_pct=regression_pct,
        min_requests=MIN_REQUESTS,
        endpoints=rows,
        regressions=sum(r.regression for r in rows),
        new_endpoints=tuple(sorted(set(now) - set(before))),
        missing_endpoints=tuple(sorted(set(before) - set(now))),
    )


def render_baseline(comparison: Comparison | None) -> str:
    if not comparison:
        return ""
    rows = [
        [
            r.name,
            f"{r.requests_before:,} -> {r.requests_now:,}",
            _ms(r.p95_ms_before),
            _ms(r.p95_ms_now),
            "-" if r.p95_change_pct is None else f"{r.p95_change_pct:+.1f}%",
            f"{r.error_rate_before:.2%} -> {r.error_rate_now:.2%}",
            "REGRESSION" if r.regression else "ok" if r.judged else "too few requests",
        ]
        for r in comparison.endpoints
    ]
    title = (
        f"BASELINE (against {comparison.against}, started {comparison.against_started_at}; "
        f"regression = p95 up more than {comparison.regression_pct:g}% or errors up, judged only where "
        f"both runs have at least {comparison.min_requests} requests)"
    )
    table = tabulate(
        rows,
        ["endpoint", "requests", "p95 before", "p95 now", "change", "error rate", "result"],
        tablefmt="simple",
        disable_numparse=True,
    )
    extra = [
        f"new endpoints: {', '.join(comparison.new_endpoints)}" if comparison.new_endpoints else "",
        f"no longer seen: {', '.join(comparison.missing_endpoints)}" if comparison.missing_endpoints else "",
    ]
    return "\n".join([title, table, *[e for e in extra if e]])


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.1f} ms"
