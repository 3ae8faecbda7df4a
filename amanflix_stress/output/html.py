"""The HTML report: one self-contained page answering, top to bottom, did my server lose data, when, where,
how fast, and can I trust the numbers; every figure the console shows, charts as inline SVG."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from amanflix_stress.amanflix.holdlock import WindowEvidence
from amanflix_stress.amanflix.records import Accounts, Cause, HoldLock, LockIssues
from amanflix_stress.amanflix.serverlog import ServerLogEvidence
from amanflix_stress.output.charts import Timeline, ladder_svg, make_spans, timeline_svg
from amanflix_stress.output.model import (
    Comparison,
    EndpointRow,
    ErrorRow,
    Health,
    Meta,
    PhaseTables,
    Report,
    ThresholdResult,
    UserRow,
)
from amanflix_stress.output.report import (
    HEALTH_HEADERS,
    evidence_text,
    health_verdict,
    in_flight_text,
    open_model_rows,
    other_phases_text,
    phase_title,
    short_example,
    verified_text,
)
from amanflix_stress.output.verdict import found_lock_issues, verdict_head

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f5f6f8;color:#222}
main{max-width:1320px;margin:0 auto;padding:20px 28px}
h1{font-size:23px;margin:0 0 4px}
h2{font-size:19px;margin:34px 0 8px;padding-top:8px;border-top:2px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
.meta,.note,.none{color:#555;font-size:13px}.none{font-style:italic}
.verdict{padding:12px 16px;border-radius:6px;font-weight:600;margin:14px 0;color:#fff;font-size:16px}
.pass{background:#2e7d32}.fail{background:#c62828}.warn{background:#b26a00}.interrupted{background:#6d4c41}
.verdict ul{margin:6px 0 0;padding-left:20px;font-weight:400;font-size:14px}
nav{font-size:13px;margin:4px 0 10px}nav a{margin-right:14px;color:#1f4e8c}
.answer{background:#fff;border-left:6px solid #888;padding:10px 16px;margin:12px 0;box-shadow:0 1px 2px #0002}
.answer.lost{border-color:#c62828}.answer.clean{border-color:#2e7d32}.answer b.big{font-size:18px}
.answer ul{margin:4px 0;padding-left:20px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{background:#fff;border-radius:6px;padding:8px 14px;min-width:120px;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:20px}.card span{color:#555;font-size:12px}.card.alert b{color:#c62828}
.chart{background:#fff;border-radius:6px;padding:8px;margin:10px 0;box-shadow:0 1px 2px #0002}
.chart svg{width:100%;height:auto}
table{border-collapse:collapse;width:100%;background:#fff;
 box-shadow:0 1px 2px #0002;font-size:13px;margin:6px 0}
th,td{padding:5px 8px;border-bottom:1px solid #eee;text-align:right;vertical-align:top}th{background:#f0f1f3}
td:first-child,th:first-child,.text{text-align:left}table.narrow{width:auto;min-width:40%}
tr.breached td,tr.regression td,tr.bad td{background:#fdecea}
.ok{color:#2e7d32}.bad{color:#c62828;font-weight:600}
@media print{
 body{background:#fff;font-size:11px}main{max-width:none;padding:0}nav{display:none}
 .verdict,.card,.answer{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 .chart,table,.answer,.cards{box-shadow:none;break-inside:avoid}h2,h3{break-after:avoid}
 section{break-before:auto}
}
"""
SECTIONS = (
    ("loss", "1. Did the server lose data?"),
    ("when", "2. When"),
    ("where", "3. Where"),
    ("speed", "4. How fast"),
    ("trust", "5. Can I trust the numbers?"),
)
ROWS_MAX = 50  # rows of the longer tables (error groups, failing users); the JSON report has them all


def read_timeseries(path: str | None) -> list[dict]:
    """The aggregator's JSONL rows; a missing file (a run stopped before its first interval) is no rows."""
    try:
        lines = Path(path).read_text().splitlines() if path else []
    except OSError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


# ---- small pieces


def esc(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return html.escape(f"{value:,}" if isinstance(value, int) else str(value))


def table(
    tid: str, headers: Sequence[str], rows: Sequence[Sequence[str]], none: str, marks=None, text=()
) -> str:
    """A table of already escaped cells, or one line saying there is nothing to show: never an empty
    table. `marks` is a CSS class per row (a breached threshold, a regression); `text` the columns of
    words (left-aligned, numbers are right-aligned); tables of few columns keep to their content's width."""
    if not rows:
        return f'<p class="none" id="{tid}">{esc(none)}</p>'
    align = [' class="text"' if i in text else "" for i in range(len(headers))]
    head = "".join(f"<th{a}>{esc(h)}</th>" for h, a in zip(headers, align))
    body = "".join(
        f'<tr class="{(marks or [""] * len(rows))[i]}">'
        + "".join(f"<td{a}>{c}</td>" for c, a in zip(row, align))
        + "</tr>"
        for i, row in enumerate(rows)
    )
    narrow = ' class="narrow"' if len(headers) <= 4 else ""
    return f'<table id="{tid}"{narrow}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def para(text: str, css: str = "note") -> str:
    return f'<p class="{css}">{esc(text)}</p>'


def clock(epoch_s: float | None) -> str:
    return "-" if epoch_s is None else time.strftime("%H:%M:%S", time.localtime(epoch_s))


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in counts.items()) or "-"


def since(epoch_s: float | None, origin_s: float | None) -> str:
    """Seconds since the measured phase started: the charts' axis, so a row can be found on them."""
    if epoch_s is None or origin_s is None:
        return "-"
    return f"{epoch_s - origin_s:,.1f}"


# ---- the time axis


def interval_width_s(report: Report, rows: Sequence[Mapping]) -> float:
    load = (report.meta.profile or {}).get("load") or {}
    if load.get("interval_s"):
        return float(load["interval_s"])
    return rows[0]["end_s"] - rows[0]["start_s"] if rows else 5.0


def origin_s(report: Report, rows: Sequence[Mapping]) -> float | None:
    """Epoch seconds of the measured phase's start, where the intervals count from."""
    if rows:
        return rows[0]["start_s"] - rows[0]["interval"] * interval_width_s(report, rows)
    started = report.meta.started_at
    return datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp() if started else None


def burst_times_s(report: Report, phase_s: float) -> tuple[float, ...]:
    """The scheduled bursts the run sent, up to the end of the measured phase (an interrupted run's ends
    early)."""
    scheduled = (report.amanflix.bursts_s if report.amanflix else None) or ()
    return tuple(at_s for at_s in scheduled if at_s < phase_s)


def build_timeline(report: Report, rows: Sequence[Mapping]) -> Timeline | None:
    origin = origin_s(report, rows)
    if not rows or origin is None:
        return None
    phase_s = report.totals.duration_s
    spans, left_out = make_spans(rows, origin, phase_s, interval_width_s(report, rows))
    held = tuple(
        (w.start_s - origin, (w.end_s if w.end_s is not None else origin + phase_s) - origin)
        for w in (report.hold_lock.windows if report.hold_lock else ())
        if not w.error
    )
    marks = tuple(
        (r.start_s - origin, r.end_s - origin, sum(r.classes.values()))
        for r in (report.lock_issues.timeline if report.lock_issues else ())
    )
    bursts = burst_times_s(report, phase_s)
    return Timeline(spans, phase_s, held, bursts, marks, left_out, clock(origin))


# ---- the top: verdict, the answer, the cards


def verdict_banner(report: Report) -> str:
    """Red for FAIL, amber for a PASS with warnings, brown for interrupted, green only for a clean PASS;
    each reason on its own line below the verdict."""
    verdict = report.verdict
    head = verdict_head(verdict) if verdict.reasons else verdict.summary
    items = "".join(f"<li>{'' if r.fails else 'warning: '}{esc(r.summary)}</li>" for r in verdict.reasons)
    listed = f"<ul>{items}</ul>" if items else ""
    return f'<div class="verdict {esc(verdict.status)}" id="verdict">{esc(head)}{listed}</div>'


def answer(report: Report) -> str:
    """The first question in words: lock issues found and how sure, lost writes, what else is suspected."""
    section = report.lock_issues
    if section is None:
        text = (
            "<b class='big'>Not checked.</b> This run sent plain HTTP requests (no --amanflix): "
            "it verifies nothing it wrote, so it cannot tell whether data was lost."
        )
        return f'<div class="answer" id="answer">{text}</div>'
    found = found_lock_issues(section)
    lines = [lost_line(section), *suspected_lines(section), *server_log_lines(report.server_log)]
    if found:
        head = (
            f"<b class='big'>Yes: {found:,} database lock issues found</b> "
            f"({esc(counts_text(section.by_class))}; evidence: {esc(evidence_total(section))})"
        )
    else:
        head = "<b class='big'>No database lock issues found.</b>"
    items = "".join(f"<li>{line}</li>" for line in lines if line)
    css = "lost" if found else "clean"
    return f'<div class="answer {css}" id="answer">{head}<ul>{items}</ul></div>'


def evidence_total(section: LockIssues) -> str:
    """The found issues by evidence level, as the console's DATABASE LOCK ISSUES line sums them."""
    by_level: dict[str, int] = {}
    for cls in section.by_class:
        for level, n in (section.evidence or {}).get(cls, {}).items():
            by_level[level] = by_level.get(level, 0) + n
    return evidence_text(by_level)


def lost_line(section: LockIssues) -> str:
    figures = section.integrity
    verified = f"checked: {esc(verified_text(section))}"
    if figures is None:
        return verified
    return (
        f"writes a lock lost: <b>{figures.lock_caused_losses:,}</b>; duplicate rows from a race "
        f"(not a lock): <b>{figures.race_duplicates:,}</b>; {verified}"
    )


def suspected_lines(section: LockIssues) -> list[str]:
    lines = []
    if section.suspected:
        lines.append(f"suspected, timing only (not counted): {esc(counts_text(section.suspected))}")
    if section.suspected_lock_waits:
        waits = sum(w.count for w in section.suspected_lock_waits)
        lines.append(f"suspected lock waits (slow successes, not failures): {waits:,} writes")
    if section.not_verifiable:
        lines.append(f"not verified: {esc(section.not_verifiable)}")
    return lines


def server_log_lines(section: ServerLogEvidence | None) -> list[str]:
    if section is None or not section.followed:
        return []
    return [
        f"the server's log: {section.events:,} lock events logged, {section.accounted:,} of them accounted "
        "for by the tool's findings"
    ]


def cards(report: Report) -> str:
    t = report.totals
    figures = [
        ("requests", esc(t.requests), False),
        ("throughput", f"{t.throughput_rps:,.1f} req/s", False),
        ("error rate", f"{t.error_rate:.2%}", t.failures > 0),
        ("p50 / p95 / p99", f"{esc(t.p50_ms)} / {esc(t.p95_ms)} / {esc(t.p99_ms)} ms", False),
        ("users", esc(t.users), False),
        ("measured phase", f"{t.duration_s:,.1f} s", False),
    ]
    if report.lock_issues is not None:
        found = found_lock_issues(report.lock_issues)
        figures.append(("lock issues found", esc(found), found > 0))
    if report.amanflix is not None:
        left = report.amanflix.cleanup.left_behind
        figures.append(("accounts left behind", esc(left), left > 0))
    items = "".join(
        f'<div class="card{" alert" if alert else ""}" data-card="{esc(name)}"><b>{value}</b>'
        f"<span>{esc(name)}</span></div>"
        for name, value, alert in figures
    )
    return f'<div class="cards" id="cards">{items}</div>'


# ---- 1. did the server lose data


def lock_section(section: LockIssues | None) -> str:
    """DATABASE LOCK ISSUES as the console has it: found ones by class with their evidence, what was
    verified, then apart the timing-only suspicions, suspected lock waits and DATA INTEGRITY."""
    if section is None:
        return para("no lock detection: a plain HTTP run (use --amanflix)")
    verified = verified_text(section)
    parts = [para(f"no lock issues detected; verified: {verified}")]
    if section.detected:
        parts = [found_locks(section), para(f"verified: {verified}")]
    if section.not_verifiable:
        parts.append(para(f"not verified: {section.not_verifiable}"))
    return "".join([*parts, suspected_locks(section), suspected_waits(section), integrity(section)])


def found_locks(section: LockIssues) -> str:
    rows = [
        [
            esc(cls),
            esc(n),
            esc(evidence_text((section.evidence or {}).get(cls, {}))),
            esc(in_flight_text(section.writes_in_flight.get(cls))),
            esc(section.explain[cls]),
        ]
        for cls, n in section.by_class.items()
    ]
    head = (
        f'<h3 id="lock-total">Database lock issues detected: {found_lock_issues(section):,} '
        f"({section.lock_error_rate:.2%} of requests; evidence: {esc(evidence_total(section))})</h3>"
    )
    levels = para(
        "evidence: verified = a read-back or the answer itself proved it; server-said = the answer or the "
        "server's log named it; timing = only the busy-timeout timing (listed apart, not counted)"
    )
    headers = ["class", "count", "evidence", "writes in flight", "what it means"]
    return head + table("lock-classes", headers, rows, "none", text=(2, 3, 4)) + levels


def suspected_locks(section: LockIssues) -> str:
    if not section.suspected:
        return ""
    rows = [[esc(c), esc(n), "timing"] for c, n in section.suspected.items()]
    return (
        "<h3>Suspected, timing only (not counted as found)</h3>"
        + para(
            "a bare 500 answered at the busy timeout, nothing naming the cause, no read-back to prove a loss"
        )
        + table("suspected", ["class", "count", "evidence"], rows, "none")
    )


def suspected_waits(section: LockIssues) -> str:
    if not section.suspected_lock_waits:
        return ""
    low, high = section.lock_wait_window_s or (0.0, 0.0)
    rows = [
        [esc(w.endpoint), esc(w.count), esc(f"{w.min_s:.1f}-{w.max_s:.1f} s")]
        for w in section.suspected_lock_waits
    ]
    return (
        "<h3>Suspected lock waits (not failures, not in the error rate or the lock count)</h3>"
        + para(f"unverifiable writes answered 2xx in {low:.1f}-{high:.1f} s, the busy-timeout window")
        + table("lock-waits", ["endpoint", "writes", "latency"], rows, "none", text=(2,))
    )


def integrity(section: LockIssues) -> str:
    figures = section.integrity
    if figures is None:
        return ""
    rows = [[esc(figures.lock_caused_losses), esc(figures.race_duplicates)]]
    return (
        "<h3>Data integrity</h3>"
        + table("integrity", ["lock-caused losses", "race-caused duplicate rows"], rows, "none")
        + para("duplicates come from concurrent first writes with no unique key: a race, not a lock")
    )


def diagnosis_section(causes: tuple[Cause, ...] | None) -> str:
    """DIAGNOSIS: each cause the run's observations support, with its evidence level and cure."""
    if not causes:
        return ""
    rows = [
        [
            esc(c.name),
            esc(c.level),
            "<br>".join(esc(o) for o in c.observations),
            esc(c.cure),
        ]
        for c in causes
    ]
    return "<h3>Diagnosis</h3>" + table(
        "diagnosis", ["cause", "evidence", "observations", "cure"], rows, "none", text=(0, 1, 2, 3)
    )


def server_log_section(section: ServerLogEvidence | None, origin: float | None) -> str:
    """The server's own lock events beside the tool's findings: the reconciliation, then per interval."""
    if section is None:
        return ""
    problems = "".join(para(line) for line in section.problems)
    head = f"<h3>Server log {esc(section.path)}</h3>"
    if not section.followed:
        return head + para("not followed") + problems
    kinds = ", ".join(f"{k.replace('_', ' ')} {n:,}" for k, n in section.by_kind.items())
    rows = [
        [
            esc(clock(r.start_s) if r.start_s is not None else r.phase),
            esc(since(r.start_s, origin)),
            esc(r.server_events),
            esc(r.tool_lock_failures),
            esc(r.bare_5xx),
            esc(r.accounted),
        ]
        for r in section.intervals
    ]
    headers = ["when", "s since start", "server logged", "tool: lock failures", "bare 500", "accounted"]
    return (
        head
        + f'<p id="server-log-line"><b>server logged {section.events:,} lock events; the tool accounted for '
        f"{section.accounted:,} of them</b></p>"
        + para(
            f"N counts requests, not lines: {kinds} ({section.commit_helper_lines:,} commit-helper lines, "
            "one per failed attempt: only 'attempt 1' counts)"
        )
        + para(f"M counts {section.accounted_means}")
        + para(f"clock: {section.clock}")
        + table("server-log", headers, rows, "no interval with logged events or findings")
        + problems
    )


# ---- 2. when


def charts_part(timeline: Timeline | None) -> str:
    if timeline is None:
        return para("no intervals recorded: the run stopped before its first interval closed", "none")
    notes = [
        "shaded red: the SQLite lock held by --hold-lock; dotted purple: a scheduled burst; "
        "▼ N: an interval with N lock issues (every evidence level). Each step is one interval."
    ]
    if any(s.partial for s in timeline.spans):
        notes.append("the last interval was cut short by the end of the measured phase: drawn dashed/narrow")
    if timeline.left_out:
        notes.append(
            f"{timeline.left_out} last interval(s) shorter than a quarter of an interval left out of the "
            "charts (too few seconds to mean anything)"
        )
    return f'<div class="chart" id="timeline">{timeline_svg(timeline)}</div>' + "".join(
        para(n) for n in notes
    )


def held_windows_part(report: Report, origin: float | None) -> str:
    hold_lock = report.hold_lock
    if hold_lock is None:
        return ""
    if report.held_windows is not None:
        return window_evidence_table(hold_lock, report.held_windows, origin)
    rows = [
        [
            esc(i + 1),
            esc(clock(w.start_s)),
            esc(since(w.start_s, origin)),
            esc(f"{(w.end_s or w.start_s) - w.start_s:.1f} s"),
            esc(w.kind),
            esc(w.error or f"{w.lock_issues_detected:,}"),
        ]
        for i, w in enumerate(hold_lock.windows)
    ]
    caught = sum(1 for w in hold_lock.windows if w.lock_issues_detected)
    return (
        f"<h3>Held lock windows on {esc(hold_lock.path)}: {caught} of {len(rows)} showed lock issues</h3>"
        + table(
            "held-windows",
            ["#", "start", "s since start", "held", "lock", "lock issues found"],
            rows,
            "no window held",
            text=(4, 5),
        )
    )


def window_evidence_table(
    hold_lock: HoldLock, windows: tuple[WindowEvidence, ...], origin: float | None
) -> str:
    logged = any(w.server_events is not None for w in windows)
    rows = [
        [
            esc(w.window),
            esc(clock(w.start_s)),
            esc(since(w.start_s, origin)),
            esc(f"{(w.end_s or w.start_s) - w.start_s:.1f} s"),
            esc(w.kind),
            esc(w.error or counts_text(w.lock_classes)),
            esc(w.answered_500),
            esc(w.answered_2xx),
            esc(w.bare_5xx),
        ]
        + ([esc(w.server_events)] if logged else [])
        for w in windows
    ]
    headers = ["#", "start", "s since start", "held", "lock", "lock classes found", "answered 500"]
    headers += ["answered 2xx", "bare 500"] + (["server logged"] if logged else [])
    caught = sum(1 for w in windows if w.lock_classes)
    title = f"Held lock windows on {esc(hold_lock.path)}: {caught} of {len(rows)} showed lock issues"
    return f"<h3>{title}</h3>" + table("held-windows", headers, rows, "no window held", text=(4, 5))


def lock_timeline_part(section: LockIssues | None, origin: float | None) -> str:
    if section is None:
        return ""
    rows = [
        [esc(r.interval), esc(clock(r.start_s)), esc(since(r.start_s, origin)), esc(counts_text(r.classes))]
        for r in section.timeline
    ]
    headers = ["interval", "start", "s since start", "lock issues (every evidence level)"]
    return "<h3>Intervals with lock issues</h3>" + table(
        "lock-timeline", headers, rows, "no interval had lock issues", text=(3,)
    )


# ---- 3. where


def endpoints_part(rows: tuple[EndpointRow, ...], tid: str) -> str:
    """Per endpoint; where requests waited before being sent, response time beside service time."""
    if any(r.response is not None for r in rows):
        headers = ["endpoint", "requests", "failures", "req/s", "response p50 ms", "response p99 ms"]
        headers += ["response max ms", "service p50 ms", "service p99 ms", "service max ms"]
        cells = [
            [esc(r.name), esc(r.requests), esc(r.failures), esc(r.rps)]
            + [esc(getattr(r.response, f"response_{k}_ms", None)) for k in ("p50", "p99", "max")]
            + [esc(r.p50_ms), esc(r.p99_ms), esc(r.max_ms)]
            for r in rows
        ]
        return table(tid, headers, cells, "no requests")
    headers = ["endpoint", "requests", "failures", "req/s", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    keys = ("requests", "failures", "rps", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")
    cells = [[esc(r.name)] + [esc(getattr(r, k)) for k in keys] for r in rows]
    return table(tid, headers, cells, "no requests")


def lock_endpoints_part(section: LockIssues | None) -> str:
    if section is None:
        return ""
    rows = [[esc(name), esc(counts_text(counts))] for name, counts in section.endpoints.items()]
    users = [[esc(u.user), esc(u.lock_errors)] for u in section.top_users]
    return (
        "<h3>Endpoints with lock issues</h3>"
        + table("lock-endpoints", ["endpoint", "lock issues"], rows, "none", text=(1,))
        + "<h3>Users with the most lock issues (timing-only included)</h3>"
        + table("lock-users", ["user", "lock issues"], users, "none")
    )


def errors_part(rows: tuple[ErrorRow, ...], tid: str = "errors") -> str:
    cells = [
        [
            esc(r.class_),
            esc(r.status or "-"),
            esc(r.count),
            f"{r.share:.2%}",
            esc(clock(r.first_seen_s)),
            esc(clock(r.last_seen_s)),
            esc(", ".join(r.endpoints)),
            esc(short_example(r.example, 110)),
        ]
        for r in rows[:ROWS_MAX]
    ]
    headers = ["class", "status", "count", "share", "first seen", "last seen", "endpoints", "example"]
    more = (
        para(f"+{len(rows) - ROWS_MAX} more error groups in the JSON report") if len(rows) > ROWS_MAX else ""
    )
    return table(tid, headers, cells, "no failed requests", text=(6, 7)) + more


def users_part(rows: tuple[UserRow, ...]) -> str:
    failing = sorted((r for r in rows if r.failures), key=lambda r: -r.failures)[:ROWS_MAX]
    cells = [
        [
            esc(r.user),
            esc(r.requests),
            esc(r.failures),
            esc(counts_text(dict(sorted(r.errors.items(), key=lambda kv: -kv[1])))),
        ]
        for r in failing
    ]
    return f"<h3>Users with most failures (of {len(rows):,} users)</h3>" + table(
        "users", ["user", "requests", "failures", "errors"], cells, "no user had a failed request", text=(3,)
    )


# ---- 4. how fast


def totals_part(report: Report) -> str:
    t, m = report.totals, report.meta
    rows = [
        ["duration", f"{t.duration_s:.1f} s measured phase ({m.stop_reason}){other_phases_text(report)}"],
        ["users", f"{t.users:,}"],
        ["requests", f"{t.requests:,}"],
        ["throughput", f"{t.throughput_rps:,.1f} req/s"],
        ["error rate", f"{t.error_rate:.2%} ({t.failures:,} failed)"],
        ["latency p50 / p95 / p99", f"{esc(t.p50_ms)} / {esc(t.p95_ms)} / {esc(t.p99_ms)} ms"],
    ]
    rows += [[a, b] for a, b in open_model_rows(report.load_model)]
    cells = [[esc(a), esc(b)] for a, b in rows]
    return table("totals", ["figure", "value"], cells, "none", text=(1,))


def ladder_part(rows: tuple[EndpointRow, ...]) -> str:
    measured = [r for r in rows if r.p50_ms is not None]
    caveat = para(
        "The report keeps each endpoint's percentiles, not its histogram buckets, so there is no "
        "per-endpoint histogram: the percentiles are drawn on a log axis instead."
    )
    if not measured:
        return caveat + para("no endpoint measured", "none")
    return caveat + f'<div class="chart" id="ladder">{ladder_svg(measured)}</div>'


def thresholds_part(results: tuple[ThresholdResult, ...]) -> str:
    cells = [
        [
            esc(r.name),
            esc(r.summary),
            '<span class="ok">ok</span>' if r.passed else '<span class="bad">BREACHED</span>',
        ]
        for r in results
    ]
    return table(
        "thresholds",
        ["threshold", "measured vs allowed", "result"],
        cells,
        "no thresholds configured ([thresholds] in the profile)",
        ["" if r.passed else "breached" for r in results],
    )


def baseline_part(comparison: Comparison | None) -> str:
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
    caption = para(
        f"against {comparison.against} (started {comparison.against_started_at}); a regression is p95 up "
        f"more than {comparison.regression_pct:g}% or a higher error rate, judged only where both runs "
        f"have at least {comparison.min_requests} requests"
    )
    headers = ["endpoint", "p95 before ms", "p95 now ms", "change", "error rate", "result"]
    marks = ["regression" if r.regression else "" for r in comparison.endpoints]
    return (
        "<h3>Against the baseline</h3>"
        + caption
        + table("baseline", headers, cells, "no endpoint in both runs", marks)
    )


# ---- 5. can I trust the numbers


def health_part(health: Health) -> str:
    cells = [
        [
            esc(r.id),
            esc(r.core),
            "-" if r.cpu_cores is None else f"{r.cpu_cores:.2f}",
            f"{r.cpu_peak_cores:.2f}",
            esc(r.lag_p50_ms),
            esc(r.lag_p99_ms),
            esc(r.lag_max_ms),
            esc(r.threads),
            "-" if r.busy_share is None else f"{r.busy_share:.0%}",
        ]
        for r in health.workers
    ]
    headers = HEALTH_HEADERS
    css = "bad" if health.degraded else "ok"
    verdict = f'<p class="{css}" id="health-verdict">{esc(health_verdict(health))}</p>'
    return "<h3>Generator health</h3>" + table("health", headers, cells, "no worker reported") + verdict


def workers_part(report: Report) -> str:
    bad = [r for r in report.workers if r.status != "done"]
    cells = [[esc(r.id), esc(r.pid), esc(r.users), esc(r.status), esc(r.detail)] for r in bad]
    parts = [
        "<h3>Worker problems</h3>"
        + table(
            "workers",
            ["worker", "pid", "users", "status", "detail"],
            cells,
            "none: every worker finished",
            text=(4,),
        )
    ]
    if report.worker_crashes:
        lines = "".join(f"<li>{esc(c.strip().splitlines()[-1])}</li>" for c in report.worker_crashes)
        parts.append(f"<h3>Worker errors (a bug in the tool)</h3><ul>{lines}</ul>")
    return "".join(parts)


def accounts_part(section: Accounts | None, meta: Meta) -> str:
    """ACCOUNTS: created, deleted, left behind on the server, every account left named with its reason."""
    if section is None:
        return ""
    cleanup, counters = section.cleanup, section.counters
    figures = [
        ["created", esc(cleanup.created)],
        ["deleted", esc(cleanup.deleted)],
        ["left behind", esc(cleanup.left_behind)],
        ["method", esc(cleanup.method)],
    ]
    if cleanup.unchecked:
        figures.append(["not checked (may be left)", esc(cleanup.unchecked)])
    if cleanup.rows_left_behind:
        figures.append(["watch-history/my-list rows left behind", esc(cleanup.rows_left_behind)])
    extras = ("phantom_registrations", "setup_retries", "relogins", "users_dropped")
    figures += [[esc(k.replace("_", " ")), esc(counters[k])] for k in extras if counters.get(k)]
    left = [[esc(a.name), esc(a.reason)] for a in cleanup.not_removed or ()]
    notes = [cleanup.error, cleanup.note if cleanup.rows_left_behind else None]
    if cleanup.not_removed:
        notes.append(
            f"remove them later (admin credentials): amanflix-stress cleanup --base-url {meta.base_url} "
            f"--run-id {meta.run_id}"
        )
    return (
        "<h3>Accounts</h3>"
        + table("accounts", ["accounts", "count"], figures, "none", text=(1,))
        + "<h3>Accounts left behind</h3>"
        + table(
            "accounts-left",
            ["account", "why it is still there"],
            left,
            "none: every account was removed",
            text=(1,),
        )
        + "".join(para(n) for n in notes if n)
    )


def phase_part(title: str, phase: PhaseTables, tid: str) -> str:
    head = f"<h3>{esc(phase_title(title, phase))}</h3>"
    errors = errors_part(phase.errors, f"{tid}-errors") if phase.errors else ""
    return head + endpoints_part(phase.endpoints, tid) + errors


# ---- the page


def section(sid: str, *parts: str) -> str:
    title = dict(SECTIONS)[sid]
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{"".join(parts)}</section>'


def header(report: Report) -> str:
    meta = report.meta
    links = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title in SECTIONS)
    return (
        f"<h1>amanflix-stress run {esc(meta.run_id)}</h1>"
        f'<p class="meta">{esc(meta.base_url)} · {esc(meta.behaviour)} · started {esc(meta.started_at)} · '
        f"ended {esc(meta.ended_at)} ({esc(meta.stop_reason)}) · seed {esc(meta.seed)} · "
        f"{esc(meta.hostname)} · amanflix-stress {esc(meta.version)}</p><nav>{links}</nav>"
    )


def render_html(report: Report, timeseries: list[dict]) -> str:
    """The whole page as one string: no scripts, no external files, charts inline."""
    origin = origin_s(report, timeseries)
    timeline = build_timeline(report, timeseries)
    body = [
        header(report),
        verdict_banner(report),
        answer(report),
        cards(report),
        section(
            "loss",
            lock_section(report.lock_issues),
            diagnosis_section(report.diagnosis),
            server_log_section(report.server_log, origin),
        ),
        section(
            "when",
            charts_part(timeline),
            held_windows_part(report, origin),
            lock_timeline_part(report.lock_issues, origin),
        ),
        section(
            "where",
            "<h3>Endpoints (measured phase)</h3>",
            endpoints_part(report.endpoints, "endpoints"),
            lock_endpoints_part(report.lock_issues),
            "<h3>Errors (measured phase)</h3>",
            errors_part(report.errors),
            users_part(report.users),
        ),
        section(
            "speed",
            "<h3>Totals</h3>",
            totals_part(report),
            ladder_part(report.endpoints),
            "<h3>Thresholds</h3>",
            thresholds_part(report.thresholds),
            baseline_part(report.baseline),
        ),
        section(
            "trust",
            health_part(report.health),
            workers_part(report),
            accounts_part(report.amanflix, report.meta),
            phase_part("SETUP (before the measured phase)", report.setup, "setup"),
            phase_part("TEARDOWN (verification and cleanup)", report.teardown, "teardown"),
            para(f"latency: {report.meta.latency_model}; percentiles: {report.meta.percentile_method}"),
        ),
    ]
    title = f"amanflix-stress run {report.meta.run_id}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width"><style>{CSS}</style></head>'
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
