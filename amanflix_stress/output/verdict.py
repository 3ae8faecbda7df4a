"""The verdict: the run's exit code, status and one-line summary for cron mail, from the report's figures."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from amanflix_stress.amanflix.records import LockIssues
from amanflix_stress.engine.health import verdict_note
from amanflix_stress.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLDS
from amanflix_stress.output.model import (
    Comparison,
    Health,
    ThresholdResult,
    Totals,
    Verdict,
    VerdictReason,
    WorkerRow,
    to_json,
)
from amanflix_stress.output.thresholds import breached

# The rules that fail a run with no thresholds configured; [verdict] fail_on or --fail-on picks among them.
# Thresholds and lost workers always fail a run: a breach is what the user asked for, a lost worker
# means the figures are incomplete.
RULES = ("target", "locks", "errors")
DEFAULT_MAX_ERROR_RATE = 0.01  # the `errors` rule: more than 1 % failed requests fails a run
NO_ANSWER_CLASSES = ("connect", "timeout", "read")  # the target gave no response at all
GENERATOR_CLASSES = ("fd_exhausted",)  # requests the generator itself could not send: always fails a run
TIMING_ONLY_CLASSES = ("lock_wait",)  # a slow success: a suspicion, so never part of the `errors` rule's rate
TARGET_WINDOW_S = 5.0  # the `target` rule looks at the measured phase's last intervals covering this long
TARGET_DOWN_SHARE = 0.5  # ... and fires when more than this share of their requests got no answer


@dataclass(frozen=True)
class Policy:
    """What fails a run besides thresholds and lost workers: the profile's [verdict] and --fail-on."""

    fail_on: tuple[str, ...] = RULES
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    error_rate_threshold: bool = False  # [thresholds] error_rate is set: it replaces the `errors` rule


def policy_from(profile: Mapping) -> Policy:
    section = profile.get("verdict") or {}
    return Policy(
        fail_on=tuple(section.get("fail_on", RULES)),
        max_error_rate=section.get("max_error_rate", DEFAULT_MAX_ERROR_RATE),
        error_rate_threshold=(profile.get("thresholds") or {}).get("error_rate") is not None,
    )


def found_lock_issues(section: LockIssues | None) -> int:
    """Lock issues that fail a run under the `locks` rule. The one place that says which issues count: the
    lock section's total, which holds found issues only (verified or said by the server); timing-only
    suspicions are kept apart in `suspected` and never fail a run."""
    return section.total if section else 0


def lost_workers(workers: tuple[WorkerRow, ...]) -> list[str]:
    """Workers that died or hung, one phrase each."""
    return [f"worker {w.id} {w.status} ({w.detail})" for w in workers if w.status in ("died", "hung")]


def target_down(intervals: Sequence[Mapping]) -> str | None:
    """Why the target counts as having stopped answering, or None: over the measured phase's last intervals
    (TARGET_WINDOW_S), more than TARGET_DOWN_SHARE of the requests got no response (connect, timeout,
    read). A window with no finished request says nothing (a hung target's timeouts arrive later)."""
    rows = [row for row in intervals if row.get("requests") is not None]
    if not rows:
        return None
    last_end_s = rows[-1]["end_s"]
    window = rows[-1:]  # the last interval, and earlier ones until the window covers TARGET_WINDOW_S
    while len(window) < len(rows) and last_end_s - window[0]["start_s"] < TARGET_WINDOW_S:
        window = rows[-len(window) - 1 :]
    requests = sum(row["requests"] for row in window)
    by_class = {c: sum(row["errors"].get(c, 0) for row in window) for c in NO_ANSWER_CLASSES}
    silent = sum(by_class.values())
    if not requests or silent <= TARGET_DOWN_SHARE * requests:
        return None
    span_s = last_end_s - window[0]["start_s"]
    counts = ", ".join(f"{c} {n:,}" for c, n in by_class.items() if n)
    return (
        f"the target stopped answering: {silent / requests:.0%} of the last {span_s:.0f} s's "
        f"{requests:,} requests got no response ({counts})"
    )


def generator_failures(error_classes: Mapping[str, int]) -> list[str]:
    """Requests the generator could not send for want of its own resources, one phrase per class: such a
    run measured the generator, not the target, whatever its error rate."""
    return [
        f"the generator ran out of file descriptors: {count:,} requests failed with 'Too many open files' "
        "(raise ulimit -n or use fewer users per worker)"
        for cls, count in error_classes.items()
        if cls in GENERATOR_CLASSES and count
    ]


def judged_error_rate(totals: Totals, error_classes: Mapping[str, int]) -> float:
    """The `errors` rule's rate: failed requests without the timing-only signals (a write that answered
    after about the busy timeout may have succeeded; latency alone never proves a loss)."""
    timing_only = sum(error_classes.get(c, 0) for c in TIMING_ONLY_CLASSES)
    return (totals.failures - timing_only) / totals.requests if totals.requests else 0.0


def lock_phrase(section: LockIssues) -> str:
    classes = ", ".join(f"{cls} {n}" for cls, n in section.by_class.items())
    return f"DATABASE LOCK ISSUES: {found_lock_issues(section)} ({classes})"


def judged(rule: str, summary: str, policy: Policy) -> VerdictReason:
    """A default rule's finding: it fails the run when the rule is in force, else it is a warning."""
    if rule in policy.fail_on:
        return VerdictReason(rule=rule, summary=summary, fails=True)
    return VerdictReason(rule=rule, summary=f"{summary} (not judged: fail_on)", fails=False)


def failure_reasons(
    workers, thresholds, lock_issues, totals: Totals, error_classes, down: str | None, policy: Policy
) -> list[VerdictReason]:
    """Every finding that can fail a run, failing or not under the policy, in the verdict line's order."""
    reasons = [VerdictReason(rule="workers", summary=p, fails=True) for p in lost_workers(workers)]
    reasons += [
        VerdictReason(rule="generator", summary=p, fails=True) for p in generator_failures(error_classes)
    ]
    if down:
        reasons.append(judged("target", down, policy))
    if found_lock_issues(lock_issues) and lock_issues is not None:
        reasons.append(judged("locks", lock_phrase(lock_issues), policy))
    error_rate = judged_error_rate(totals, error_classes)
    if not policy.error_rate_threshold and error_rate > policy.max_error_rate:
        rate = f"error rate {error_rate:.2%} > {policy.max_error_rate:.2%}"
        reasons.append(judged("errors", f"{rate} (the default limit, [verdict] max_error_rate)", policy))
    reasons += [VerdictReason(rule="thresholds", summary=r.summary, fails=True) for r in breached(thresholds)]
    return reasons


def warnings(baseline: Comparison | None, health: Health) -> list[VerdictReason]:
    out = []
    if baseline and baseline.regressions:
        summary = f"{baseline.regressions} endpoint regression(s) against the baseline"
        out.append(VerdictReason(rule="baseline", summary=summary, fails=False))
    note = verdict_note(to_json(health))
    if note:
        out.append(VerdictReason(rule="degraded", summary=note.removeprefix("; "), fails=False))
    return out


def decide(
    *,
    workers: tuple[WorkerRow, ...],
    thresholds: tuple[ThresholdResult, ...],
    lock_issues: LockIssues | None,
    totals: Totals,
    error_classes: Mapping[str, int],
    intervals: Sequence[Mapping],
    interrupted: bool,
    baseline: Comparison | None,
    health: Health,
    policy: Policy,
) -> Verdict:
    """Exit code, status and a one-line verdict: FAIL on any failing reason, PASS otherwise (amber when it
    carries warnings); an interrupted run keeps its own code and lists what it found."""
    down = target_down(intervals)
    reasons = failure_reasons(workers, thresholds, lock_issues, totals, error_classes, down, policy)
    reasons += warnings(baseline, health)
    failing = [r for r in reasons if r.fails]
    if interrupted:
        code, status = EXIT_INTERRUPTED, "interrupted"
    else:
        code = EXIT_THRESHOLDS if failing else EXIT_OK
        status = "fail" if failing else "warn" if reasons else "pass"
    return Verdict(
        exit_code=code,
        status=status,
        summary=verdict_line(status, reasons, lock_issues, policy),
        reasons=tuple(reasons),
        fail_on=policy.fail_on,
        max_error_rate=policy.max_error_rate,
        degraded=health.degraded,
    )


def verdict_line(status: str, reasons: list[VerdictReason], lock_issues: LockIssues | None, policy) -> str:
    """FAIL: the failing reasons, then the warnings; PASS: what was judged, then the warnings."""
    failing = [r.summary for r in reasons if r.fails]
    rest = [r.summary for r in reasons if not r.fails]
    if status == "interrupted":
        return "; ".join(["INTERRUPTED: partial report written", *failing, *rest])
    if status == "fail":
        return "FAIL: " + "; ".join([*failing, *rest])
    head = "PASS" if policy.fail_on == RULES else f"PASS (fail_on: {', '.join(policy.fail_on) or 'none'})"
    clean_locks = lock_issues is not None and not found_lock_issues(lock_issues)
    return "; ".join([head, *(["no lock issues detected"] if clean_locks else []), *rest])


def verdict_head(verdict: Verdict) -> str:
    """The verdict in a few words, for a banner that lists the reasons below it."""
    if verdict.status != "pass" and verdict.status != "warn":
        return {"fail": "FAIL", "interrupted": "INTERRUPTED: partial report written"}[verdict.status]
    head = "PASS with warnings" if verdict.status == "warn" else "PASS"
    return (
        head
        if tuple(verdict.fail_on) == RULES
        else f"{head} (fail_on: {', '.join(verdict.fail_on) or 'none'})"
    )


COLOURS = {"pass": "32", "warn": "33", "interrupted": "33", "fail": "31"}  # ANSI green, amber, red


def console_verdict(verdict: Verdict, tty: bool) -> str:
    """The verdict line as the console shows it: on a terminal coloured by status (green only for a clean
    PASS), unless NO_COLOR is set; plain for logs and cron mail."""
    if not tty or os.environ.get("NO_COLOR"):
        return verdict.summary
    return f"\033[1;{COLOURS.get(verdict.status, '31')}m{verdict.summary}\033[0m"
