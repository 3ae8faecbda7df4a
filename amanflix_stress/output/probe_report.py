"""The probe's renderings: the console text (a line per scenario, its evidence, the DIAGNOSIS) and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from amanflix_stress.amanflix.probe_records import (
    NOT_REPRODUCED,
    REPRODUCED,
    Finding,
    ProbeResult,
    Step,
)
from amanflix_stress.errors import EXIT_OK, EXIT_THRESHOLDS, UsageError

MARKS = {REPRODUCED: "✗", NOT_REPRODUCED: "✓"}  # anything else (skipped) is "–"
INDENT = "    "


def exit_code(result: ProbeResult) -> int:
    """0 when nothing was reproduced, 1 when something was."""
    return EXIT_THRESHOLDS if result.reproduced else EXIT_OK


def render(result: ProbeResult) -> str:
    """The whole console report as one string."""
    lines = [header(result), ""]
    for finding in result.findings:
        lines += finding_lines(finding)
    lines += ["", *diagnosis_lines(result), "", *footer_lines(result)]
    return "\n".join(lines)


def header(result: ProbeResult) -> str:
    db = f"db {result.db}" if result.db else "no --db: the lock scenarios are skipped"
    return f"PROBE {result.base_url} ({db}; busy timeout {result.busy_timeout_s:g} s)"


def finding_lines(finding: Finding) -> list[str]:
    mark = MARKS.get(finding.outcome, "–")
    lines = [f"{mark} {finding.outcome:<14} {finding.scenario}: {finding.summary}"]
    facts = [f"title {finding.title}"] if finding.title else []
    facts += [f"lock held {finding.held_s:.2f} s"] if finding.held_s is not None else []
    if facts:
        lines.append(INDENT + " · ".join(facts))
    lines += [INDENT + step_line(step) for step in finding.steps]
    if finding.readback:
        lines.append(f"{INDENT}read-back: {finding.readback}")
    if finding.server_log:
        lines += [f"{INDENT}server log:", *(INDENT * 2 + line for line in finding.server_log)]
    return lines


def step_line(step: Step) -> str:
    hold = f" [{step.during_hold} lock held]" if step.during_hold else ""
    return f"→ {step.request}{hold} → {step.status or 'no answer'} in {step.seconds:.2f} s: {step.excerpt}"


def diagnosis_lines(result: ProbeResult) -> list[str]:
    if not result.diagnosis:
        return ["DIAGNOSIS", f"{INDENT}no cause found: nothing was reproduced"]
    lines = ["DIAGNOSIS"]
    for number, cause in enumerate(result.diagnosis, 1):
        lines.append(f"{number}. {cause.name} (evidence: {cause.level})")
        lines += [f"{INDENT}- {text}" for text in cause.observations]
        lines.append(f"{INDENT}cure: {cause.cure}")
    return lines


def footer_lines(result: ProbeResult) -> list[str]:
    cleanup = result.cleanup
    accounts = (
        f"ACCOUNTS {cleanup.get('created', 0)} created, {cleanup.get('deleted', 0)} deleted, "
        f"{cleanup.get('left_behind', 0)} left behind ({cleanup.get('method', '-')})"
    )
    notes = [f"{INDENT}{cleanup[key]}" for key in ("note", "error") if cleanup.get(key)]
    counts = {o: sum(1 for f in result.findings if f.outcome == o) for o in (REPRODUCED, NOT_REPRODUCED)}
    skipped = len(result.findings) - sum(counts.values())
    verdict = (
        f"RESULT {counts[REPRODUCED]} reproduced, {counts[NOT_REPRODUCED]} not reproduced, {skipped} skipped "
        f"in {result.seconds:g} s (exit {exit_code(result)})"
    )
    return [accounts, *notes, verdict]


def to_json(result: ProbeResult) -> dict:
    """The same as the console, as data: findings, diagnosis, cleanup, exit code."""
    return {**asdict(result), "reproduced": result.reproduced, "exit_code": exit_code(result)}


def write_json(result: ProbeResult, path: str) -> None:
    try:
        Path(path).write_text(json.dumps(to_json(result), indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise UsageError(f"--json: cannot write {path}: {exc}") from None
