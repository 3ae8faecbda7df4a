"""The verdict: the run's exit code and the one-line summary for cron mail, from the report's figures."""

from __future__ import annotations

from amanflix_stress.amanflix.records import LockIssues
from amanflix_stress.engine.health import verdict_note
from amanflix_stress.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLDS
from amanflix_stress.output.model import Comparison, Health, ThresholdResult, Verdict, WorkerRow, to_json
from amanflix_stress.output.thresholds import breached


def lost_workers(workers: tuple[WorkerRow, ...]) -> list[str]:
    """Workers that died or hung, one phrase each."""
    return [f"worker {w.id} {w.status} ({w.detail})" for w in workers if w.status in ("died", "hung")]


def decide(
    workers: tuple[WorkerRow, ...],
    thresholds: tuple[ThresholdResult, ...],
    lock_issues: LockIssues | None,
    interrupted: bool,
    baseline: Comparison | None,
    health: Health,
) -> Verdict:
    """Exit code and a one-line verdict suitable for cron mail; a degraded generator is noted, not failed."""
    code, line = verdict_line(workers, thresholds, lock_issues, interrupted, baseline)
    return Verdict(exit_code=code, summary=line + verdict_note(to_json(health)), degraded=health.degraded)


def verdict_line(workers, thresholds, lock_issues, interrupted: bool, baseline) -> tuple[int, str]:
    problems = lost_workers(workers) + [r.summary for r in breached(thresholds)]
    locks = lock_verdict(lock_issues)
    if interrupted:
        return EXIT_INTERRUPTED, "INTERRUPTED: partial report written" + "".join(
            f"; {p}" for p in problems
        ) + locks
    if problems:
        return EXIT_THRESHOLDS, "FAIL: " + "; ".join(problems) + locks
    regressions = baseline.regressions if baseline else 0
    return EXIT_OK, (
        "PASS"
        + (f" ({regressions} endpoint regression(s) against the baseline)" if regressions else "")
        + locks
    )


def lock_verdict(section: LockIssues | None) -> str:
    """The lock findings in the verdict line, so a run without thresholds still says what it found."""
    if not section:
        return ""
    if not section.detected:
        return "; no lock issues detected"
    classes = ", ".join(f"{cls} {n}" for cls, n in section.by_class.items())
    return f"; DATABASE LOCK ISSUES: {section.total} ({classes})"
