"""Thresholds: k6-style pass/fail limits from the profile's [thresholds], checked against the figures."""

from __future__ import annotations

from collections.abc import Mapping

from tabulate import tabulate

from amanflix_stress.output.model import EndpointRow, ThresholdResult, Totals

RUN_LIMITS = {  # profile key -> (label, Totals field, "max" or "min", unit)
    "error_rate": ("error rate", "error_rate", "max", "share"),
    "p95_ms": ("p95", "p95_ms", "max", "ms"),
    "p99_ms": ("p99", "p99_ms", "max", "ms"),
    "min_throughput_rps": ("throughput", "throughput_rps", "min", "req/s"),
}
ENDPOINT_LIMITS = {  # profile key -> (label, "max" or "min", unit)
    "p95_ms": ("p95", "max", "ms"),
    "p99_ms": ("p99", "max", "ms"),
    "error_rate": ("error rate", "max", "share"),
    "min_rps": ("throughput", "min", "req/s"),
}


def fmt(value, unit: str) -> str:
    if value is None:
        return "no requests measured"
    if unit == "share":
        return f"{value:.2%}"
    return f"{value:,.1f} {unit}"


def check(name: str, label: str, measured, allowed: float, kind: str, unit: str) -> ThresholdResult:
    """One threshold's outcome; nothing measured (e.g. a misspelt endpoint) is a breach, never a pass."""
    passed = measured is not None and (measured <= allowed if kind == "max" else measured >= allowed)
    relation = ("<=" if passed else ">") if kind == "max" else (">=" if passed else "<")
    bound = "allowed" if kind == "max" else "required"
    summary = f"{label} {fmt(measured, unit)} {relation} {bound} {fmt(allowed, unit)}"
    if measured is None:
        summary = f"{label}: no requests measured ({bound} {fmt(allowed, unit)})"
    return ThresholdResult(
        name=name,
        label=label,
        measured=measured,
        allowed=allowed,
        kind=kind,
        unit=unit,
        passed=passed,
        summary=summary,
    )


def run_checks(totals: Totals, limits: dict) -> list[ThresholdResult]:
    results = []
    for key, (label, field, kind, unit) in RUN_LIMITS.items():
        if limits.get(key) is not None:
            results.append(check(key, label, getattr(totals, field), limits[key], kind, unit))
    return results


def class_checks(requests: int, error_classes: Mapping[str, int], limits: dict) -> list[ThresholdResult]:
    results = []
    for name, allowed in sorted(limits.items()):
        rate = error_classes.get(name, 0) / requests if requests else 0.0
        results.append(check(f"error_classes.{name}", f"{name} rate", rate, allowed, "max", "share"))
    return results


def endpoint_checks(rows: tuple[EndpointRow, ...], limits: dict) -> list[ThresholdResult]:
    by_name = {row.name: row for row in rows}
    results = []
    for endpoint, endpoint_limits in sorted(limits.items()):
        row = by_name.get(endpoint)
        for key, allowed in endpoint_limits.items():
            label, kind, unit = ENDPOINT_LIMITS[key]
            results.append(
                check(
                    f'endpoints."{endpoint}".{key}',
                    f"{endpoint} {label}",
                    endpoint_value(row, key),
                    allowed,
                    kind,
                    unit,
                )
            )
    return results


def endpoint_value(row: EndpointRow | None, key: str):
    if not row or not row.requests:
        return None
    if key == "error_rate":
        return row.failures / row.requests
    return row.rps if key == "min_rps" else getattr(row, key)


def evaluate(
    totals: Totals, error_classes: Mapping[str, int], endpoints: tuple[EndpointRow, ...], limits: dict
) -> tuple[ThresholdResult, ...]:
    """Every configured threshold, in profile order: run-wide, per error class, per endpoint."""
    return (
        *run_checks(totals, limits),
        *class_checks(totals.requests, error_classes, limits.get("error_classes") or {}),
        *endpoint_checks(endpoints, limits.get("endpoints") or {}),
    )


def breached(results: tuple[ThresholdResult, ...]) -> list[ThresholdResult]:
    return [r for r in results if not r.passed]


def render_thresholds(results: tuple[ThresholdResult, ...]) -> str:
    if not results:
        return ""
    rows = [
        [
            r.name,
            fmt(r.measured, r.unit),
            ("<= " if r.kind == "max" else ">= ") + fmt(r.allowed, r.unit),
            "ok" if r.passed else "BREACHED",
        ]
        for r in results
    ]
    return "THRESHOLDS\n" + tabulate(
        rows, ["threshold", "measured", "allowed", "result"], tablefmt="simple", disable_numparse=True
    )
