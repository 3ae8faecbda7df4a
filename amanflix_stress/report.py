"""The report: builds the run's figures as one plain dict (the JSON report) and renders it as tables."""
from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
import time
from datetime import datetime, timezone

from tabulate import tabulate

from . import __version__
from .aggregator import endpoint_rows, total_series, ms
from .stats import PERCENTILE_METHOD

SCHEMA_VERSION = "amanflix-stress/report/1"
LATENCY_CAPTION = ("closed model: each user waits for a reply before its next request, so latency is service time "
                   "and a slow server also lowers the offered load (see docs/measurement.md)")


def iso(epoch_s: float | None) -> str | None:
    if epoch_s is None or epoch_s != epoch_s or epoch_s in (float("inf"), float("-inf")):
        return None
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds")


def build_report(plan, result, args: dict, profile: dict | None = None) -> dict:
    """Everything the tables show plus run metadata, as JSON-ready data."""
    agg = result.aggregator
    duration_s = max(result.end_s - result.start_s, 1e-9)
    run = agg.run
    total = total_series(run)
    p50, _p90, p95, p99, _p999 = total.percentiles_us()
    report = {
        "schema": SCHEMA_VERSION,
        "meta": {"tool": "amanflix-stress", "version": __version__, "run_id": plan.run_id, "seed": plan.seed,
                 "base_url": plan.base_url, "behaviour": plan.behaviour, "args": args, "profile": profile,
                 "started_at": iso(result.start_s), "ended_at": iso(result.end_s), "hostname": socket.gethostname(),
                 "python": platform.python_version(), "platform": platform.platform(),
                 "stop_reason": result.stop_reason, "interrupted": result.interrupted,
                 "latency_model": LATENCY_CAPTION, "percentile_method": PERCENTILE_METHOD,
                 "timeseries": plan.timeseries_path},
        "totals": {"duration_s": round(duration_s, 3), "users": plan.users, "requests": run.requests,
                   "failures": run.failures, "error_rate": round(run.failures / run.requests, 6) if run.requests else 0.0,
                   "throughput_rps": round(run.requests / duration_s, 3), "p50_ms": ms(p50), "p95_ms": ms(p95),
                   "p99_ms": ms(p99), "late_batches": agg.late_batches},
        "endpoints": endpoint_rows(run, duration_s),
        "errors": agg.error_rows(run),
        "error_classes": dict(sorted(run.count_by_class().items(), key=lambda kv: -kv[1])),
        "users": agg.user_rows(run),
        "setup": {"endpoints": endpoint_rows(agg.phases["setup"], duration_s),
                  "errors": agg.error_rows(agg.phases["setup"])},
        "teardown": {"endpoints": endpoint_rows(agg.phases["teardown"], duration_s),
                     "errors": agg.error_rows(agg.phases["teardown"])},
        "workers": agg.worker_rows(),
        "worker_crashes": agg.crashes,
    }
    report.update(result.extra)
    return report


def write_json(report: dict, path: str) -> None:
    """Write atomically: a reader never sees half a report, an interrupted write leaves the old file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(report, out, indent=2, default=_jsonable)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _jsonable(value):
    if isinstance(value, (set, tuple, range)):
        return list(value)
    return str(value)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def render_endpoints(rows: list[dict], title: str) -> str:
    headers = ["endpoint", "requests", "failures", "req/s", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    table = [[r["name"], _fmt(r["requests"]), _fmt(r["failures"]), _fmt(r["rps"]), _fmt(r["mean_ms"]),
              _fmt(r["p50_ms"]), _fmt(r["p95_ms"]), _fmt(r["p99_ms"]), _fmt(r["max_ms"])] for r in rows]
    return f"{title}\n" + tabulate(table, headers, tablefmt="simple", disable_numparse=True)


def render_errors(rows: list[dict], limit: int = 20) -> str:
    if not rows:
        return "ERRORS\nno failed requests"
    headers = ["class", "status", "count", "share", "first seen", "last seen", "endpoints", "example"]
    table = [[r["class"], r["status"] or "-", _fmt(r["count"]), f"{r['share']:.2%}", _clock(r["first_seen_s"]),
              _clock(r["last_seen_s"]), _endpoints(r["endpoints"]), r["example"][:70]] for r in rows[:limit]]
    more = f"\n(+{len(rows) - limit} more error groups in the JSON report)" if len(rows) > limit else ""
    return "ERRORS\n" + tabulate(table, headers, tablefmt="simple", disable_numparse=True) + more


def _clock(epoch_s: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch_s))


def _endpoints(counts: dict) -> str:
    names = sorted(counts, key=lambda n: -counts[n])
    return ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")


def render_totals(report: dict) -> str:
    t, m = report["totals"], report["meta"]
    rows = [["duration", f"{t['duration_s']:.1f} s ({m['stop_reason']})"], ["users", t["users"]],
            ["requests", f"{t['requests']:,}"], ["throughput", f"{t['throughput_rps']:,.1f} req/s"],
            ["error rate", f"{t['error_rate']:.2%} ({t['failures']:,} failed)"],
            ["latency p50 / p95 / p99", f"{_fmt(t['p50_ms'])} / {_fmt(t['p95_ms'])} / {_fmt(t['p99_ms'])} ms"]]
    return "TOTALS\n" + tabulate(rows, tablefmt="plain", disable_numparse=True)


def render_workers(rows: list[dict]) -> str:
    bad = [r for r in rows if r["status"] not in ("done",)]
    if not bad:
        return ""
    table = [[r["id"], r["pid"], r["users"], r["status"], r["detail"]] for r in bad]
    return "WORKER PROBLEMS\n" + tabulate(table, ["worker", "pid", "users", "status", "detail"], tablefmt="simple")


def render_report(report: dict) -> str:
    """The console report: setup, endpoints, errors, totals, worker problems."""
    parts = []
    if report["setup"]["endpoints"]:
        parts.append(render_endpoints(report["setup"]["endpoints"], "SETUP (before the measured phase)"))
    parts += [render_endpoints(report["endpoints"], "ENDPOINTS (measured phase)"),
              render_errors(report["errors"]), render_totals(report), render_workers(report["workers"])]
    if report["worker_crashes"]:
        parts.append("WORKER ERRORS\n" + "\n".join(c.strip().splitlines()[-1] for c in report["worker_crashes"]))
    parts.append(f"latency: {report['meta']['latency_model']}; percentiles: {report['meta']['percentile_method']}")
    return "\n\n".join(p for p in parts if p) + "\n"


def progress_line(snapshot: dict, total_s: float) -> str:
    p95 = "-" if snapshot["p95_ms"] is None else f"{snapshot['p95_ms']:.0f} ms"
    return (f"[{snapshot['elapsed_s']:5.0f}/{total_s:.0f} s] requests {snapshot['requests']:,}  "
            f"{snapshot['rps']:,.0f} req/s  errors {snapshot['failures']:,}  p95 {p95}  "
            f"users {snapshot['active_users']}")
