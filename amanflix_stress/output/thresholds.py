"""Thresholds: k6-style pass/fail limits from the profile's [thresholds], checked against the report dict."""

from __future__ import annotations

from tabulate import tabulate

RUN_LIMITS = {  # profile key -> (label, totals key, "max" or "min", unit)
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


def check(name: str, label: str, measured, allowed: float, kind: str, unit: str) -> dict:
    """One threshold's outcome; nothing measured (e.g. a misspelt endpoint) is a breach, never a silent pass."""
    passed = measured is not None and (measured <= allowed if kind == "max" else measured >= allowed)
    relation = ("<=" if passed else ">") if kind == "max" else (">=" if passed else "<")
    bound = "allowed" if kind == "max" else "required"
    summary = f"{label} {fmt(measured, unit)} {relation} {bound} {fmt(allowed, unit)}"
    if measured is None:
        summary = f"{label}: no requests measured ({bound} {fmt(allowed, unit)})"
    return {
        "name": name,
        "label": label,
        "measured": measured,
        "allowed": allowed,
        "kind": kind,
        "unit": unit,
        "passed": passed,
        "summary": summary,
    }


def run_checks(totals: dict, limits: dict) -> list[dict]:
    results = []
    for key, (label, field, kind, unit) in RUN_LIMITS.items():
        if limits.get(key) is not None:
            results.append(check(key, label, totals.get(field), limits[key], kind, unit))
    return results


def class_checks(report: dict, limits: dict) -> list[dict]:
    requests = report["totals"]["requests"]
    results = []
    for name, allowed in sorted(limits.items()):
        rate = report["error_classes"].get(name, 0) / requests if requests else 0.0
        results.append(check(f"error_classes.{name}", f"{name} rate", rate, allowed, "max", "share"))
    return results


def endpoint_checks(rows: list[dict], limits: dict) -> list[dict]:
    by_name = {row["name"]: row for row in rows}
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


def endpoint_value(row: dict | None, key: str):
    if not row or not row["requests"]:
        return None
    if key == "error_rate":
        return row["failures"] / row["requests"]
    return row["rps"] if key == "min_rps" else row[key]


def evaluate(report: dict, limits: dict) -> list[dict]:
    """Every configured threshold, in profile order: run-wide, per error class, per endpoint."""
    return [
        *run_checks(report["totals"], limits),
        *class_checks(report, limits.get("error_classes") or {}),
        *endpoint_checks(report["endpoints"], limits.get("endpoints") or {}),
    ]


def breached(results: list[dict]) -> list[dict]:
    return [r for r in results if not r["passed"]]


def render_thresholds(results: list[dict]) -> str:
    if not results:
        return ""
    rows = [
        [
            r["name"],
            fmt(r["measured"], r["unit"]),
            ("<= " if r["kind"] == "max" else ">= ") + fmt(r["allowed"], r["unit"]),
            "ok" if r["passed"] else "BREACHED",
        ]
        for r in results
    ]
    return "THRESHOLDS\n" + tabulate(
        rows, ["threshold", "measured", "allowed", "result"], tablefmt="simple", disable_numparse=True
    )
