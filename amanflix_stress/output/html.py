"""The HTML report: one self-contained page of matplotlib SVG time-series charts and the report's tables."""

from __future__ import annotations

import html
import io
import json
import re
import time
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from amanflix_stress.amanflix.detect import LOCK_CLASSES
from amanflix_stress.amanflix.holdlock import WindowEvidence
from amanflix_stress.amanflix.records import HoldLock, LockIssues
from amanflix_stress.amanflix.serverlog import ServerLogEvidence
from amanflix_stress.output.model import Comparison, EndpointRow, ErrorRow, Report, ThresholdResult
from amanflix_stress.output.report import verified_text
from amanflix_stress.output.verdict import verdict_head

CHART_SIZE_IN = (10, 3.2)
COLOURS = {
    "p50_ms": "#4c78a8",
    "p95_ms": "#f58518",
    "p99_ms": "#e45756",
    "rps": "#4c78a8",
    "users": "#54a24b",
}
PALETTE = [
    "#e45756",
    "#f58518",
    "#eeca3b",
    "#b279a2",
    "#9d755d",
    "#4c78a8",
    "#72b7b2",
    "#54a24b",
    "#ff9da6",
    "#bab0ac",
]
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f5f6f8;color:#222}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#666;font-size:13px}
.verdict{padding:12px 16px;border-radius:6px;font-weight:600;margin:16px 0;color:#fff}
.pass{background:#2e7d32}.fail{background:#c62828}.warn{background:#b26a00}.interrupted{background:#6d4c41}
.verdict ul{margin:6px 0 0;padding-left:20px;font-weight:400}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border-radius:6px;padding:10px 14px;min-width:130px;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
.chart{background:#fff;border-radius:6px;padding:8px;margin:10px 0;box-shadow:0 1px 2px #0002}
.chart svg{width:100%;height:auto}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid #eee;text-align:right}th{background:#fafafa}
td:first-child,th:first-child{text-align:left}
tr.breached td,tr.regression td{background:#fdecea}.ok{color:#2e7d32}.bad{color:#c62828;font-weight:600}
.note{color:#666;font-size:12px}
"""


def read_timeseries(path: str | None) -> list[dict]:
    """The aggregator's JSONL rows; a missing file (a run stopped before its first interval) is no rows."""
    try:
        lines = Path(path).read_text().splitlines() if path else []
    except OSError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


SHORT_RUN_S = 180.0  # runs shorter than this get a time axis in seconds, longer ones in minutes


def time_axis(rows: list[dict], edge: str = "end_s") -> tuple[list[float], str]:
    """Each interval's start or end since the measured phase began, in seconds or minutes, and the unit."""
    if not rows:
        return [], "s"
    width_s = rows[0]["end_s"] - rows[0]["start_s"]
    origin = rows[0]["start_s"] - rows[0]["interval"] * width_s
    scale, unit = (1.0, "s") if rows[-1]["end_s"] - origin < SHORT_RUN_S else (60.0, "min")
    return [(row[edge] - origin) / scale for row in rows], unit


def new_chart(title: str, ylabel: str, unit: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=CHART_SIZE_IN, layout="constrained")
    axes = fig.add_subplot()
    axes.set_title(title, loc="left", fontsize=12)
    axes.set_xlabel(f"{'seconds' if unit == 's' else 'minutes'} since the measured phase started")
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    return fig, axes


def to_svg(fig: Figure, salt: str) -> str:
    """Inline SVG: text kept as text, ids salted per chart so several charts can share one page."""
    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(out, format="svg")
    svg = out.getvalue()
    svg = svg[svg.index("<svg") :]
    # matplotlib numbers ids per figure (figure_1, axes_1, ...): prefix them so ids stay unique on the page
    return re.sub(r'(id="|url\(#|href="#)', lambda m: f"{m.group(1)}{salt}-", svg)


def empty(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, transform=axes.transAxes, ha="center", va="center", color="#888")


def latency_chart(rows: list[dict]) -> str:
    x, unit = time_axis(rows)
    fig, axes = new_chart("Latency percentiles per interval", "ms", unit)
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        axes.plot(x, [r[key] for r in rows], marker=".", label=key[:3].upper(), color=COLOURS[key])
    if rows:
        axes.legend(loc="upper left")
    else:
        empty(axes, "no intervals recorded")
    axes.set_ylim(bottom=0)
    return to_svg(fig, "latency")


def throughput_chart(rows: list[dict]) -> str:
    x, unit = time_axis(rows)
    fig, axes = new_chart("Throughput and active users", "requests / s", unit)
    axes.plot(x, [r["rps"] for r in rows], marker=".", color=COLOURS["rps"], label="requests/s")
    users = axes.twinx()
    users.step(
        x, [r["active_users"] for r in rows], where="post", color=COLOURS["users"], label="active users"
    )
    users.set_ylabel("active users")
    axes.set_ylim(bottom=0)
    users.set_ylim(bottom=0)
    if rows:
        fig.legend(loc="outside upper right", ncols=2, frameon=False)
    else:
        empty(axes, "no intervals recorded")
    return to_svg(fig, "throughput")


def classes_chart(rows: list[dict], title: str, only: set[str] | None, none_text: str) -> str:
    """Stacked bars of failures per error class and interval."""
    x, unit = time_axis(rows, "start_s")
    fig, axes = new_chart(title, "failures per interval", unit)
    every = sorted(
        {c for r in rows for c in r["errors"]}
    )  # colours by place among all classes: same in both charts
    names = [c for c in every if only is None or c in only]
    width = (rows[0]["end_s"] - rows[0]["start_s"]) / (1.0 if unit == "s" else 60.0) * 0.85 if rows else 1.0
    bottom = [0] * len(rows)
    for name in names:
        counts = [r["errors"].get(name, 0) for r in rows]
        colour = PALETTE[every.index(name) % len(PALETTE)]
        axes.bar(x, counts, width=width, bottom=bottom, label=name, color=colour, align="edge")
        bottom = [b + c for b, c in zip(bottom, counts)]
    if names:
        fig.legend(loc="outside upper right", fontsize=9, ncols=min(len(names), 6), frameon=False)
    else:
        empty(axes, none_text)
    return to_svg(fig, re.sub(r"\W", "", title))


def charts(rows: list[dict]) -> list[str]:
    """The charts as inline SVG; an error chart with nothing to show becomes a one-line note."""
    found = {c for r in rows for c, n in r["errors"].items() if n}
    parts = [latency_chart(rows), throughput_chart(rows)]
    parts.append(
        classes_chart(rows, "Failures by error class", None, "")
        if found
        else '<p class="note">no failed requests in any interval</p>'
    )
    parts.append(
        classes_chart(rows, "SQLite lock issues (lock waits, locked, lost writes)", set(LOCK_CLASSES), "")
        if found & set(LOCK_CLASSES)
        else '<p class="note">no SQLite lock issues detected in any interval</p>'
    )
    return parts


def esc(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return html.escape(f"{value:,}" if isinstance(value, int) else str(value))


def table(headers: list[str], rows: list[list], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        f'<tr class="{(row_classes or [""] * len(rows))[i]}">'
        + "".join(f"<td>{c}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def endpoints_table(rows: tuple[EndpointRow, ...]) -> str:
    if not rows:
        return '<p class="note">no requests measured</p>'
    headers = ["endpoint", "requests", "failures", "req/s", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    cells = [
        [
            esc(r.name),
            esc(r.requests),
            esc(r.failures),
            esc(r.rps),
            esc(r.mean_ms),
            esc(r.p50_ms),
            esc(r.p95_ms),
            esc(r.p99_ms),
            esc(r.max_ms),
        ]
        for r in rows
    ]
    return table(headers, cells)


def thresholds_table(results: tuple[ThresholdResult, ...]) -> str:
    if not results:
        return '<p class="note">no thresholds configured ([thresholds] in the profile)</p>'
    cells = [
        [
            esc(r.name),
            esc(r.summary),
            '<span class="ok">ok</span>' if r.passed else '<span class="bad">BREACHED</span>',
        ]
        for r in results
    ]
    return table(
        ["threshold", "measured vs allowed", "result"],
        cells,
        ["" if r.passed else "breached" for r in results],
    )


def errors_table(rows: tuple[ErrorRow, ...], limit: int = 20) -> str:
    if not rows:
        return '<p class="note">no failed requests</p>'
    cells = [
        [
            esc(r.class_),
            esc(r.status),
            esc(r.count),
            f"{r.share:.2%}",
            esc(", ".join(r.endpoints)),
            esc(r.example[:100]),
        ]
        for r in rows[:limit]
    ]
    return table(["class", "status", "count", "share", "endpoints", "example"], cells)


def baseline_section(comparison: Comparison | None) -> str:
    if not comparison:
        return ""
    cells = [
        [
            esc(r.name),
            esc(r.p95_ms_before),
            esc(r.p95_ms_now),
            "-" if r.p95_change_pct is None else f"{r.p95_change_pct:+.1f}%",
            f"{r.error_rate_before:.2%} → {r.error_rate_now:.2%}",
            '<span class="bad">REGRESSION</span>'
            if r.regression
            else '<span class="ok">ok</span>'
            if r.judged
            else f"too few requests ({r.requests_before:,} → {r.requests_now:,})",
        ]
        for r in comparison.endpoints
    ]
    caption = (
        f'<p class="note">against {esc(comparison.against)} (started {esc(comparison.against_started_at)})'
        f"; a regression is p95 up more than {comparison.regression_pct:g}% or a higher error rate, judged "
        f"only where both runs have at least {comparison.min_requests} requests</p>"
    )
    return (
        "<h2>Against the baseline</h2>"
        + caption
        + table(
            ["endpoint", "p95 before ms", "p95 now ms", "change", "error rate", "result"],
            cells,
            ["regression" if r.regression else "" for r in comparison.endpoints],
        )
    )


def lock_section(section: LockIssues | None, hold_lock: HoldLock | None) -> str:
    """DATABASE LOCK ISSUES: found ones by class with their evidence, timing-only suspicions and suspected
    lock waits apart, DATA INTEGRITY, and each held lock window."""
    if not section:
        return ""
    verified = verified_text(section)
    parts = [
        '<h2>Database lock issues</h2><p class="note">none detected; verified: ' + esc(verified) + "</p>"
    ]
    if section.detected:
        parts = [found_locks(section), f'<p class="note">verified: {esc(verified)}</p>']
    if section.not_verifiable:
        parts.append(f'<p class="note">not verified: {esc(section.not_verifiable)}</p>')
    parts += [suspected_locks(section), integrity(section)]
    if hold_lock:
        windows = [
            [
                esc(i + 1),
                esc(w.lock_issues_detected),
                esc(w.kind),
                esc(round((w.end_s or w.start_s) - w.start_s, 1)),
            ]
            for i, w in enumerate(hold_lock.windows)
        ]
        parts.append(
            f"<h3>Held lock windows on {esc(hold_lock.path)}</h3>"
            + table(["window", "lock issues found", "lock", "held s"], windows)
        )
    return "".join(parts)


def evidence_cell(counts) -> str:
    return esc(", ".join(f"{level} {n:,}" for level, n in counts.items() if level != "timing") or "-")


def found_locks(section: LockIssues) -> str:
    classes = [
        [esc(c), esc(n), evidence_cell((section.evidence or {}).get(c, {})), esc(section.explain[c])]
        for c, n in section.by_class.items()
    ]
    endpoints = [
        [esc(name), esc(", ".join(f"{c} {n:,}" for c, n in counts.items()))]
        for name, counts in section.endpoints.items()
    ]
    return (
        f"<h2>Database lock issues detected: {section.total:,} ({section.lock_error_rate:.2%} of "
        "requests)</h2>"
        + table(["class", "count", "evidence", "what it means"], classes)
        + table(["endpoint", "lock issues"], endpoints)
    )


def suspected_locks(section: LockIssues) -> str:
    """Timing-only suspicions and suspected lock waits: shown, never counted as found."""
    parts = []
    if section.suspected:
        rows = [[esc(c), esc(n), esc("timing")] for c, n in (section.suspected or {}).items()]
        parts.append(
            "<h3>Suspected, timing only (not counted as found)</h3>"
            '<p class="note">a bare 500 at the busy timeout, nothing naming the cause, no read-back proof</p>'
            + table(["class", "count", "evidence"], rows)
        )
    if section.suspected_lock_waits:
        low, high = section.lock_wait_window_s or (0.0, 0.0)
        rows = [
            [esc(w.endpoint), esc(w.count), esc(f"{w.min_s:.1f}-{w.max_s:.1f} s")]
            for w in section.suspected_lock_waits or ()
        ]
        parts.append(
            "<h3>Suspected lock waits (not failures, not in the error rate)</h3>"
            f'<p class="note">unverifiable writes answered 2xx in {low:.1f}-{high:.1f} s</p>'
            + table(["endpoint", "writes", "latency"], rows)
        )
    return "".join(parts)


def integrity(section: LockIssues) -> str:
    figures = section.integrity
    if figures is None or (not figures.lock_caused_losses and not figures.race_duplicates):
        return ""
    return (
        "<h3>Data integrity</h3>"
        + table(
            ["lock-caused losses", "race-caused duplicate rows"],
            [[esc(figures.lock_caused_losses), esc(figures.race_duplicates)]],
        )
        + '<p class="note">duplicates come from concurrent first writes with no unique key: '
        "a race, not a lock</p>"
    )


def held_windows_section(hold_lock: HoldLock | None, windows: tuple[WindowEvidence, ...] | None) -> str:
    """Each held window: lock classes found (answered 500 apart from hidden), bare 500s, server-logged."""
    if hold_lock is None or windows is None:
        return ""
    logged = any(w.server_events is not None for w in windows)
    rows = [
        [
            esc(w.window),
            esc(_clock(w.start_s)),
            esc(round((w.end_s or w.start_s) - w.start_s, 1)),
            esc(w.kind),
            esc(w.error or ", ".join(f"{c} {n:,}" for c, n in w.lock_classes.items()) or "-"),
            esc(w.answered_500),
            esc(w.answered_2xx),
            esc(w.bare_5xx),
        ]
        + ([esc(w.server_events)] if logged else [])
        for w in windows
    ]
    headers = ["window", "start", "held s", "lock", "lock classes found", "answered 500", "answered 2xx"]
    headers += ["bare 500"] + (["server logged"] if logged else [])
    return f"<h3>Held lock windows on {esc(hold_lock.path)}</h3>" + table(headers, rows)


def server_log_section(section: ServerLogEvidence | None) -> str:
    """The server's own lock events beside the tool's findings, per interval."""
    if section is None:
        return ""
    problems = "".join(f'<p class="note">{esc(line)}</p>' for line in section.problems)
    head = f"<h2>Server log {esc(section.path)}</h2>"
    if not section.followed:
        return head + problems
    rows = [
        [
            esc(_clock(r.start_s) if r.start_s is not None else r.phase),
            esc(r.server_events),
            esc(r.tool_lock_failures),
            esc(r.bare_5xx),
            esc(r.accounted),
        ]
        for r in section.intervals
    ]
    return (
        head + f"<p><b>server logged {section.events:,} lock events; the tool accounted for "
        f"{section.accounted:,} of them</b></p>"
        + f'<p class="note">N counts {esc(section.events_are)}. M counts {esc(section.accounted_means)}. '
        f"{esc(section.clock)}.</p>"
        + table(["when", "server logged", "tool: lock failures", "bare 500", "accounted"], rows)
        + problems
    )


def _clock(epoch_s: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch_s))


def cards(report: Report) -> str:
    t = report.totals
    figures = [
        ("requests", esc(t.requests)),
        ("throughput", f"{t.throughput_rps:,.1f} req/s"),
        ("error rate", f"{t.error_rate:.2%}"),
        ("p50", f"{esc(t.p50_ms)} ms"),
        ("p95", f"{esc(t.p95_ms)} ms"),
        ("p99", f"{esc(t.p99_ms)} ms"),
        ("users", esc(t.users)),
        ("duration", f"{t.duration_s:,.0f} s"),
    ]
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{v}</b><span>{k}</span></div>' for k, v in figures)
        + "</div>"
    )


def verdict_banner(report: Report) -> str:
    """Red for FAIL, amber for a PASS with warnings, brown for interrupted, green only for a clean PASS;
    each reason on its own line below the verdict."""
    verdict = report.verdict
    head = verdict_head(verdict) if verdict.reasons else verdict.summary
    items = "".join(f"<li>{'' if r.fails else 'warning: '}{esc(r.summary)}</li>" for r in verdict.reasons)
    listed = f"<ul>{items}</ul>" if items else ""
    return f'<div class="verdict {esc(verdict.status)}">{esc(head)}{listed}</div>'


def render_html(report: Report, timeseries: list[dict]) -> str:
    """The whole page as one string: no scripts, no external files, charts inline."""
    meta = report.meta
    title = f"amanflix-stress run {meta.run_id}"
    header = (
        f'<h1>{esc(title)}</h1><p class="meta">{esc(meta.base_url)} · {esc(meta.behaviour)} · '
        f"started {esc(meta.started_at)} · ended {esc(meta.ended_at)} ({esc(meta.stop_reason)})"
        f" · seed {esc(meta.seed)} · {esc(meta.hostname)}</p>"
    )
    chart_html = "".join(f'<div class="chart">{part}</div>' for part in charts(timeseries))
    body = [
        header,
        verdict_banner(report),
        cards(report),
        "<h2>Over time</h2>",
        chart_html,
        "<h2>Thresholds</h2>",
        thresholds_table(report.thresholds),
        baseline_section(report.baseline),
        "<h2>Endpoints (measured phase)</h2>",
        endpoints_table(report.endpoints),
        "<h2>Errors</h2>",
        errors_table(report.errors),
        # the held windows get their own table when the report has their evidence (every class found)
        lock_section(report.lock_issues, None if report.held_windows is not None else report.hold_lock),
        held_windows_section(report.hold_lock, report.held_windows),
        server_log_section(report.server_log),
        f'<p class="note">latency: {esc(meta.latency_model)}; percentiles: {esc(meta.percentile_method)}</p>',
    ]
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n"
    )
