"""`demo`: the probe against a sandbox before and after the cures, then a load run with held locks against
another, its report folder, and the ground truth beside what the tool detected."""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from tabulate import tabulate

from amanflix_stress.amanflix.probe import Probe, ProbeConfig
from amanflix_stress.amanflix.probe_records import REPRODUCED, ProbeResult
from amanflix_stress.errors import EXIT_INTERRUPTED, UsageError
from amanflix_stress.output.probe_report import MARKS, exit_code
from amanflix_stress.output.report import read_json_report
from amanflix_stress.output.rundir import FILES, run_folders

DEMO_PROFILE = "demo"
DEMO_HOLD = "6s/20s"  # two or three held lock windows in the demo's 45 s
DEMO_REPORT_DIR = os.path.join("reports", "demo")  # next to the checkout `make demo` runs in
DEMO_KEEP = 5  # demo run folders kept: a demo run every day must not fill the disk
# the probe's sandboxes: a held lock lasts the busy timeout plus 0.5 s, so seven scenarios take seconds
PROBE_BUSY_TIMEOUT_S = 0.5
PROBE_MODES = {"upstream": "upstream (as deployed)", "fixed": "fixed (the cures applied)"}
WATCH_UPDATE = "POST /api/watch-history/update"
UNVERIFIABLE = ("/api/auth/update", "/api/analytics/", "/api/auth/logout")  # writes the API cannot read back
SANDBOX_MODULES = ("flask", "werkzeug", "sqlalchemy", "requests")  # the [sandbox] extra
SANDBOX_EXTRA_HINT = "pip install 'amanflix-stress[sandbox]'"


def import_sandbox() -> ModuleType:
    """The sandbox package; without its extra installed, a UsageError saying how to install it."""
    try:  # imported here so Flask loads only when a sandbox is asked for
        return importlib.import_module("amanflix_stress.sandbox")
    except ModuleNotFoundError as exc:
        package = (exc.name or "").split(".")[0]  # 'sqlalchemy.exc' missing means sqlalchemy is
        if package not in SANDBOX_MODULES:
            raise  # a bug of ours, not a missing extra
        raise UsageError(
            f"the sandbox needs {package}, which is not installed: {SANDBOX_EXTRA_HINT}"
        ) from None


def demo_run_args(url: str, db_path: str, report_dir: str, admin: tuple[str, str]) -> list[str]:
    """The demo's `run` command line; the sandbox's admin account goes in as flags (the report masks the
    password), so the demo writes nothing to the environment."""
    return [
        "run",
        "--profile",
        DEMO_PROFILE,
        "--base-url",
        url,
        "--report-dir",
        report_dir,
        "--keep",
        str(DEMO_KEEP),
        "--hold-lock",
        db_path,
        "--hold-lock-schedule",
        DEMO_HOLD,
        # '=' form: a generated password may start with '-', which argparse would take for a flag
        f"--admin-user={admin[0]}",
        f"--admin-password={admin[1]}",
    ]


def run_demo(run_command, report_dir: str = DEMO_REPORT_DIR) -> int:
    """The probe against upstream and fixed side by side, then the demo profile via
    `run_command(argv) -> exit code` against a fresh upstream sandbox, compared with its truth.

    The run's folder (report.json, time series, summary.txt, report.html) stays under `report_dir`; the
    sandboxes' databases are removed. The last line printed is the HTML report's path.
    """
    sandbox = import_sandbox()
    print(render_probes({mode: probe_sandbox(sandbox, mode) for mode in PROBE_MODES}))
    code, truth, folder = run_against_sandbox(sandbox, run_command, report_dir)
    if folder is None:  # the run stopped before it had a folder; its error is already printed
        return code
    if not sys.stdout.isatty():  # off a terminal the run printed only its folder and verdict
        print((folder / FILES["summary"]).read_text())
    report = read_json_report(str(folder / FILES["report"]))
    print(render_comparison(compare_with_truth(report, truth)))
    print(f"\n{verdict_note(report)}")
    print(f"report folder (report.json, time series, summary.txt, report.html): {folder}")
    print(html_line(folder))
    return EXIT_INTERRUPTED if code == EXIT_INTERRUPTED else 0  # the verdict does not fail a demo


def html_line(folder: Path) -> str:
    """The last line: the HTML report's path, or why there is none."""
    page = folder / FILES["html"]
    if page.is_file():
        return str(page.resolve())
    return f"no HTML report in {folder}: pip install 'amanflix-stress[html]' for it"


def probe_sandbox(sandbox_package: ModuleType, mode: str) -> tuple[ProbeResult, int]:
    """`probe` against a fresh sandbox child in `mode` (debug off), with its admin cleanup; the probe's
    result and the test users left in the sandbox's database."""
    with tempfile.TemporaryDirectory(prefix=f"amanflix-demo-probe-{mode}-") as db_folder:
        config = sandbox_package.SandboxConfig(
            mode=mode,
            db_path=os.path.join(db_folder, "amanflix.db"),
            debug=False,
            busy_timeout_s=PROBE_BUSY_TIMEOUT_S,
        )
        with sandbox_package.launch_sandbox_process(config) as sandbox:
            probe = ProbeConfig(
                sandbox.url,
                db=sandbox.db_path,
                server_log=sandbox.server_log_path,
                busy_timeout_s=PROBE_BUSY_TIMEOUT_S,
                admin=(sandbox.admin_username, sandbox.admin_password),
            )
            result = Probe(probe).run()
            return result, max(0, int(sandbox.truth().get("users_in_db", 0)))


def render_probes(results: dict[str, tuple[ProbeResult, int]]) -> str:
    """One compact table, a scenario per row and a column per sandbox mode; then upstream's diagnosis."""
    modes = list(results)
    scenarios = [f.scenario for f in results[modes[0]][0].findings]
    rows = [[name, *(outcome(results[m][0], name) for m in modes)] for name in scenarios]
    rows += [
        ["exit code (1: reproduced)", *(str(exit_code(results[m][0])) for m in modes)],
        ["test accounts left", *(str(results[m][1]) for m in modes)],
        ["seconds", *(f"{results[m][0].seconds:g}" for m in modes)],
    ]
    table = tabulate(
        rows, ["scenario", *(PROBE_MODES[m] for m in modes)], tablefmt="simple", disable_numparse=True
    )
    title = (
        "PROBE: each lock failure class once, against the sandbox before and after the cures "
        f"(debug off; busy timeout {PROBE_BUSY_TIMEOUT_S:g} s, so each held lock lasts about a second)"
    )
    return f"{title}\n{table}\n\n" + "\n".join(diagnosis_lines(results)) + "\n"


def outcome(result: ProbeResult, scenario: str) -> str:
    finding = next(f for f in result.findings if f.scenario == scenario)
    return f"{MARKS.get(finding.outcome, '–')} {finding.outcome}"


def diagnosis_lines(results: dict[str, tuple[ProbeResult, int]]) -> list[str]:
    """Each mode's causes in one line each (the probe command prints the observations behind them)."""
    lines = []
    for mode, (result, _left) in results.items():
        if not result.diagnosis:
            lines.append(f"DIAGNOSIS ({mode}): no cause found: nothing was reproduced")
            continue
        lines.append(
            f"DIAGNOSIS ({mode}): {sum(f.outcome == REPRODUCED for f in result.findings)} reproduced"
        )
        lines += [f"  {c.name} ({c.level}) -> cure: {c.cure}" for c in result.diagnosis]
    return lines


def verdict_note(report: dict) -> str:
    """The demo holds locks to make lock issues, so its run's FAIL is the expected outcome, not the demo's."""
    verdict = report.get("verdict", {})
    status = str(verdict.get("status", "")).upper()
    if status == "FAIL":
        return (
            f"the run's verdict was FAIL (exit {verdict.get('exit_code')}), as expected: the demo holds the "
            "database lock to make lock issues; the demo itself exits 0"
        )
    return f"the run's verdict was {status or 'unknown'}; the demo expected FAIL (lock issues found)"


def run_against_sandbox(
    sandbox_package: ModuleType, run_command, report_dir: str
) -> tuple[int, dict, Path | None]:
    """The demo run against a sandbox child; its database lives in a temp folder that is removed after.
    Returns the run's exit code, the sandbox's truth and the run's new folder under report_dir."""
    before = set(run_folders(Path(report_dir)))
    with tempfile.TemporaryDirectory(prefix="amanflix-demo-") as db_folder:
        # debug off: the generic 500 page that names no exception, as the server is deployed
        config = sandbox_package.SandboxConfig(
            mode="upstream", db_path=os.path.join(db_folder, "amanflix.db"), debug=False
        )
        with sandbox_package.launch_sandbox_process(config) as sandbox:
            where = f"at {sandbox.url}; database {sandbox.db_path}"
            print(f"LOAD RUN: sandbox Amanflix (upstream mode, real SQLite, debug off) {where}\n")
            admin = (sandbox.admin_username, sandbox.admin_password)
            code = run_command(demo_run_args(sandbox.url, sandbox.db_path, report_dir, admin))
            truth = sandbox.truth()
    new = sorted(set(run_folders(Path(report_dir))) - before)
    return code, truth, new[-1] if new else None


def detected_on(report: dict, classes: tuple[str, ...], endpoint_words: tuple[str, ...]) -> int:
    """Lock issues of these classes whose endpoint names contain one of these words, all phases."""
    groups = report["errors"] + report["setup"]["errors"] + report["teardown"]["errors"]
    return sum(
        n
        for g in groups
        if g["class"] in classes
        for name, n in g["endpoints"].items()
        if any(w in name for w in endpoint_words)
    )


def suspected_waits(report: dict) -> int:
    """Unverifiable writes answered in the busy-timeout window (suspicions, not found lock issues)."""
    return sum(w["count"] for w in (report.get("lock_issues") or {}).get("suspected_lock_waits", ()))


def unjudged_echoes(counters: dict) -> str:
    """Echoes showing the other device's overlapping value: not blamed, so a loss there is not counted."""
    n = counters.get("echoes_explained_by_other_device", 0)
    return f"; {n} echo(es) showed the other device's write and were not blamed" if n else ""


def compare_with_truth(report: dict, truth: dict) -> list[list]:
    """Rows of (what, the sandbox's ground truth, what the tool detected, how the tool knows)."""
    lost = truth.get("lost_writes_by_endpoint", {})
    counters = report.get("amanflix", {}).get("counters", {})
    cleanup = report.get("amanflix", {}).get("cleanup", {})
    mylist_truth = sum(n for name, n in lost.items() if "/api/mylist/" in name)
    return [
        [
            "watch-history writes lost or refused",
            truth.get("lock_events_by_endpoint", {}).get(WATCH_UPDATE, 0),
            detected_on(report, ("lost_update", "lost_insert", "lost_write"), ("watch-history",))
            + detected_on(report, ("db_locked",), (WATCH_UPDATE,)),
            "echo check, read-back of each bare 500, read-backs, final verification"
            + unjudged_echoes(counters),
        ],
        [
            "my-list writes lost",
            mylist_truth,
            detected_on(report, ("lost_write",), ("/api/mylist/",)),
            "toggle answers, read-backs, final listing",
        ],
        [
            "registrations lost",
            lost.get("POST /api/auth/register", 0),
            counters.get("phantom_registrations", 0),
            "token for user 'None', profile check",
        ],
        [
            "duplicate watch-history rows",
            max(
                truth.get("duplicate_watch_history_rows_created", 0),
                truth.get("duplicate_watch_history_rows", 0),
            ),
            counters.get("duplicate_rows", 0),
            "record ids in the update echoes",
        ],
        [
            "other writes lost (profile, analytics, logout)",
            sum(n for name, n in lost.items() if any(w in name for w in UNVERIFIABLE)),
            suspected_waits(report),
            "no safe read-back: suspected lock waits (2xx in the busy-timeout window), not counted as found",
        ],
        [
            "lock events inside the server",
            truth.get("lock_events", 0),
            "-",
            "each surfaces in a row above, as db_locked or auth_locked, or as a suspected lock wait",
        ],
        [
            "test users left in the database",
            max(0, truth.get("users_in_db", 0)),
            cleanup.get("left_behind", "-"),
            cleanup.get("method", "-"),
        ],
        [
            "rows left behind by deletes",
            truth.get("orphan_watch_history_rows", 0) + truth.get("orphan_my_list_rows", 0),
            cleanup.get("rows_left_behind", 0),
            "admin cleanup removes them",
        ],
    ]


def render_comparison(rows: list[list]) -> str:
    return "GROUND TRUTH (the sandbox counted) vs DETECTED (the tool saw through the API)\n" + tabulate(
        rows, ["", "ground truth", "detected", "how"], tablefmt="simple", disable_numparse=True
    )
