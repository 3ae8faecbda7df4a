"""JUnit XML: one test case per threshold (and one for the run itself) so CI systems show what failed."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from amanflix_stress.output.model import Report, ThresholdResult
from amanflix_stress.output.verdict import lost_workers


def run_case(report: Report) -> ET.Element:
    """The run finished with every worker: a lost worker fails the build like a breached threshold."""
    case = ET.Element(
        "testcase",
        classname="amanflix-stress.run",
        name="all workers finished",
        time=f"{report.totals.duration_s:.3f}",
    )
    lost = lost_workers(report.workers)
    if lost:
        ET.SubElement(case, "failure", message="; ".join(lost), type="worker_lost").text = "\n".join(lost)
    return case


def threshold_case(result: ThresholdResult) -> ET.Element:
    case = ET.Element("testcase", classname="amanflix-stress.thresholds", name=result.name, time="0")
    if not result.passed:
        failure = ET.SubElement(case, "failure", message=result.summary, type="threshold_breached")
        failure.text = result.summary
    else:
        ET.SubElement(case, "system-out").text = result.summary
    return case


def render_junit(report: Report) -> str:
    """A <testsuites> document: the run case, then one case per threshold in evaluation order."""
    cases = [run_case(report), *(threshold_case(r) for r in report.thresholds)]
    failures = sum(case.find("failure") is not None for case in cases)
    meta = report.meta
    suite = ET.Element(
        "testsuite",
        name=f"amanflix-stress {meta.run_id}",
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{report.totals.duration_s:.3f}",
        timestamp=meta.started_at or "",
        hostname=meta.hostname,
    )
    suite.extend(cases)
    root = ET.Element("testsuites", name="amanflix-stress", tests=str(len(cases)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
