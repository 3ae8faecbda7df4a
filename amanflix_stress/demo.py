"""`demo`: a sandbox in a child process, a short run against it with held locks, and the ground truth beside
what the tool detected."""

from __future__ import annotations

import importlib
import os
import tempfile
import time
from types import ModuleType

from tabulate import tabulate

from amanflix_stress.errors import EXIT_INTERRUPTED, UsageError
from amanflix_stress.output.report import read_json_report

DEMO_PROFILE = "demo"
DEMO_HOLD = "6s/20s"  # two or three held lock windows in the demo's 45 s
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


def demo_report_path(report_dir: str) -> str:
    return os.path.join(report_dir, time.strftime("demo-%Y%m%d-%H%M%S") + f"-{os.getpid()}.json")


def demo_run_args(url: str, db_path: str, report_path: str, admin: tuple[str, str]) -> list[str]:
    """The demo's `run` command line; the sandbox's admin account goes in as flags (the report masks the
    password), so the demo writes nothing to the environment."""
    return [
        "run",
        "--profile",
        DEMO_PROFILE,
        "--base-url",
        url,
        "--report-json",
        report_path,
        "--hold-lock",
        db_path,
        "--hold-lock-schedule",
        DEMO_HOLD,
        "--admin-user",
        admin[0],
        "--admin-password",
        admin[1],
    ]


def run_demo(run_command, report_dir: str = "reports") -> int:
    """Start a sandbox, run the demo profile via `run_command(argv) -> exit code`, compare with the truth.

    The report stays in `report_dir` (where `run` puts its reports); the sandbox's database is removed.
    """
    report_path = demo_report_path(report_dir)
    code, truth = run_against_sandbox(import_sandbox(), run_command, report_path)
    report = read_json_report(report_path)
    print(render_comparison(compare_with_truth(report, truth)))
    print(f"\n{verdict_note(report)}")
    print(f"report and time series: {report_path}")
    return (
        EXIT_INTERRUPTED if code == EXIT_INTERRUPTED else 0
    )  # the verdict does not fail a demo; Ctrl-C does


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


def run_against_sandbox(sandbox_package: ModuleType, run_command, report_path: str) -> tuple[int, dict]:
    """The demo run against a sandbox child; its database lives in a temp folder that is removed after."""
    with tempfile.TemporaryDirectory(prefix="amanflix-demo-") as db_folder:
        # debug off: the generic 500 page that names no exception, as the server is deployed
        config = sandbox_package.SandboxConfig(
            mode="upstream", db_path=os.path.join(db_folder, "amanflix.db"), debug=False
        )
        sandbox = sandbox_package.launch_sandbox_process(config)
        try:
            where = f"at {sandbox.url}; database {sandbox.db_path}"
            print(f"sandbox Amanflix (upstream mode, real SQLite, debug off) {where}\n")
            admin = (sandbox.admin_username, sandbox.admin_password)
            code = run_command(demo_run_args(sandbox.url, sandbox.db_path, report_path, admin))
            return code, sandbox.truth()
        finally:
            sandbox.stop()


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
            "echo check, read-back of each bare 500, read-backs, final verification",
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
