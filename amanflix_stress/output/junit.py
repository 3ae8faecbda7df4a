"""JUnit XML: a test case per verdict rule, one per threshold, so CI systems show each reason a run failed."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from amanflix_stress.output.model import Report, ThresholdResult, VerdictReason
from amanflix_stress.output.verdict import RULES

RULE_CASES = {  # verdict rule -> the test case that passes when the rule found nothing
    "workers": "all workers finished",
    "target": "the target answered to the end",
    "locks": "no database lock issues",
    "errors": "error rate within the default limit",
}


def rule_cases(report: Report, rule: str) -> list[ET.Element]:
    """One rule's cases: one passing case when it found nothing, one failing case per reason it gave,
    one skipped case when fail_on leaves it out (saying what it found), none for `errors` when
    [thresholds] error_rate replaces it (the threshold's own case judges)."""
    verdict = report.verdict
    found: list[VerdictReason] = [r for r in verdict.reasons if r.rule == rule]
    if rule == "errors" and any(t.name == "error_rate" for t in report.thresholds):
        return []
    if rule in RULES and rule not in verdict.fail_on:
        case = new_case(RULE_CASES[rule])
        message = "; ".join(r.summary for r in found) or "nothing found"
        ET.SubElement(case, "skipped", message=f"not judged (fail_on): {message}")
        return [case]
    if not found:
        return [new_case(RULE_CASES[rule])]
    cases = []
    for i, reason in enumerate(found, 1):
        case = new_case(RULE_CASES[rule] + (f" ({i})" if len(found) > 1 else ""))
        failure = ET.SubElement(case, "failure", message=reason.summary, type=f"verdict_{rule}")
        failure.text = reason.summary
        cases.append(case)
    return cases


def new_case(name: str) -> ET.Element:
    return ET.Element("testcase", classname="amanflix-stress.run", name=name, time="0")


def threshold_case(result: ThresholdResult) -> ET.Element:
    case = ET.Element("testcase", classname="amanflix-stress.thresholds", name=result.name, time="0")
    if not result.passed:
        failure = ET.SubElement(case, "failure", message=result.summary, type="threshold_breached")
        failure.text = result.summary
    else:
        ET.SubElement(case, "system-out").text = result.summary
    return case


def render_junit(report: Report) -> str:
    """A <testsuites> document: one case per verdict rule, then one case per threshold in evaluation order."""
    cases = [case for rule in RULE_CASES for case in rule_cases(report, rule)]
    cases += [threshold_case(r) for r in report.thresholds]
    failures = sum(case.find("failure") is not None for case in cases)
    skipped = sum(case.find("skipped") is not None for case in cases)
    meta = report.meta
    suite = ET.Element(
        "testsuite",
        name=f"amanflix-stress {meta.run_id}",
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{report.totals.duration_s:.3f}",
        timestamp=meta.started_at or "",
        hostname=meta.hostname,
    )
    suite.extend(cases)
    root = ET.Element("testsuites", name="amanflix-stress", tests=str(len(cases)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
