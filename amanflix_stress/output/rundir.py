"""Run folders: a timestamped folder per run under --report-dir, its files, the overlap lock and retention."""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from amanflix_stress.errors import AlreadyRunning, ReportWriteFailed, UsageError
from amanflix_stress.output.baseline import BaselineRun, load_baseline, render_baseline
from amanflix_stress.output.files import check_writable, write_atomic
from amanflix_stress.output.model import Report
from amanflix_stress.output.report import render_report, write_json
from amanflix_stress.output.thresholds import breached, render_thresholds
from amanflix_stress.output.verdict import console_verdict

LOCK_NAME = ".amanflix-stress.lock"
MARKER_NAME = ".amanflix-stress-run"  # only folders carrying it are ever removed by retention
RUN_NAME = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
FILES = {"report": "report.json", "summary": "summary.txt", "html": "report.html", "junit": "junit.xml"}


class DirLock:
    """An flock on <dir>/.amanflix-stress.lock: the kernel drops it when its holder dies, so a crashed run's
    lock is stale by construction; the holder's details in the file let a refusal say who holds it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> dict | None:
        """Take the lock; the details of a previous holder that never released it (a crashed run), if any."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(fd)
            os.close(fd)
            raise AlreadyRunning(
                f"{self.path.parent} is in use by another run ({describe(holder)}); "
                "wait for it to finish or give another --report-dir"
            ) from None
        self.fd = fd
        stale = read_holder(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder_details()).encode(), 0)
        return stale or None

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # an empty lock file means the last holder finished cleanly
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def holder_details() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {"pid": "?", "started_at": "unknown time"}


def describe(holder: dict) -> str:
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started_at', '?')}"
    )


def run_folders(root: Path) -> list[Path]:
    """This tool's run folders under root, oldest first (names start with the start time)."""
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and RUN_NAME.match(p.name) and (p / MARKER_NAME).exists()
    )


def is_complete(folder: Path) -> bool:
    """A run folder counts once its report is written: a crashed run's folder is not a run to keep."""
    return (folder / FILES["report"]).is_file()


def prune(root: Path, keep: int) -> list[Path]:
    """Keep the newest `keep` complete runs (0 keeps everything); remove older runs, and crashed runs'
    folders older than the oldest run kept. A crashed run never pushes a good one (the baseline) out."""
    folders = run_folders(root)
    complete = [f for f in folders if is_complete(f)]
    if not 0 < keep < len(complete):
        return []
    oldest_kept = complete[-keep]
    doomed = [f for f in folders if f < oldest_kept]
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed


def previous_report(root: Path, current: Path | None) -> Path | None:
    for folder in reversed(run_folders(root)):
        if folder != current and is_complete(folder):
            return folder / FILES["report"]
    return None


def timeseries_path_for(report_path: str) -> str:
    """The time series file beside a report: report.json -> report.timeseries.jsonl."""
    return os.path.splitext(report_path)[0] + ".timeseries.jsonl"


def default_report_path() -> str:
    return os.path.join("reports", time.strftime("run-%Y%m%d-%H%M%S") + f"-{os.getpid()}.json")


class RunDir:
    """Where one run's files go: a locked, timestamped folder under report_dir, or a single JSON path."""

    def __init__(self, reporting: dict, report_json: str | None) -> None:
        self.reporting = reporting
        self.root = Path(reporting["report_dir"]) if reporting["report_dir"] else None
        if self.root and report_json:
            raise UsageError(
                "--report-json and --report-dir both given: the run folder holds report.json; "
                "drop one of them"
            )
        if not self.root and (reporting["keep"] or reporting["baseline"] == "previous"):
            what = "--keep" if reporting["keep"] else "--baseline previous"
            raise UsageError(
                f"{what} needs --report-dir DIR (or [reporting] report_dir) to find earlier runs"
            )
        self.lock = DirLock(self.root) if self.root else None
        self.folder: Path | None = None
        self.report_path = report_json or default_report_path()
        self.stale: dict | None = None
        self.failed: list[str] = []  # outputs that could not be written at the end: "path (OS error)"

    def __enter__(self) -> RunDir:
        """Take the folder and check every output path before the run: a report that cannot be written
        must stop the run before it creates a single account, not after a two-hour soak."""
        try:
            if self.root and self.lock is not None:  # the lock exists exactly when root is set
                self._open_folder(self.root, self.lock)
            self.check_outputs()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def _open_folder(self, root: Path, lock: DirLock) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--report-dir {root}: cannot create it ({exc.strerror})") from None
        try:
            self.stale = lock.acquire()
            folder = self.folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
            folder.mkdir()
            (folder / MARKER_NAME).write_text(json.dumps(holder_details()) + "\n")
        except OSError as exc:
            raise UsageError(f"--report-dir {root}: cannot write there ({exc.strerror})") from None
        if self.stale:
            print(
                f"amanflix-stress: note: took over the lock of a run that did not finish "
                f"({describe(self.stale)})",
                file=sys.stderr,
            )
        self.report_path = str(folder / FILES["report"])

    def check_outputs(self) -> None:
        """Each file the run will write can be written there (summary and HTML share report.json's folder)."""
        flag = "--report-dir" if self.folder else "--report-json"
        check_writable(self.report_path, flag)
        check_writable(self.timeseries_path, flag)
        if self.reporting["junit"]:
            check_writable(self.reporting["junit"], "--junit")

    @property
    def timeseries_path(self) -> str:
        return timeseries_path_for(self.report_path)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type and self.folder and not (self.folder / FILES["report"]).exists():
            shutil.rmtree(self.folder, ignore_errors=True)  # the run never started: leave no empty folder
        if self.lock:
            self.lock.release()

    def load_baseline(self) -> BaselineRun | None:
        """The configured baseline report, read back; None when there is none (yet)."""
        wanted = self.reporting["baseline"]
        if wanted == "previous":
            if self.root is None:  # __init__ refuses this combination
                raise UsageError("--baseline previous needs --report-dir DIR (or [reporting] report_dir)")
            path = previous_report(self.root, self.folder)
        else:
            path = Path(wanted) if wanted else None
        if path is None:
            return None
        return load_baseline(str(path))

    def write(self, report: Report, tty: bool) -> str:
        """Write every output, each on its own: one that fails is noted (raise_write_failures reports it)
        and the others are still written. The console text: the full summary on a terminal or when a file
        is missing, a few lines for cron mail."""
        summary = summary_text(report)
        written = self._write_file("report", self.report_path, lambda path: write_json(report, path))
        written.append(f"time series: {report.meta.timeseries}")
        if self.folder:
            summary_path = str(self.folder / FILES["summary"])
            written += self._write_file(
                "summary", summary_path, lambda path: write_atomic(path, summary + "\n")
            )
            written += self._write_html(report, self.folder)
        written += self._write_junit(report)
        removed = prune(self.root, self.reporting["keep"]) if self.root else []
        if removed:
            written.append(f"removed {len(removed)} old run folder(s), keeping {self.reporting['keep']}")
        if self.folder and not tty and not self.failed:
            return "\n".join([f"results: {self.folder}", *problem_lines(report), report.verdict.summary])
        return "\n".join([summary, *written, console_verdict(report.verdict, tty)])

    def _write_file(self, what: str, path: str, write: Callable[[str], None]) -> list[str]:
        """Write one output (atomically); a failure (disk full, EIO, read-only) is noted, never raised."""
        try:
            write(path)
        except OSError as exc:
            self.failed.append(f"{path} ({exc.strerror or exc})")
            return [f"{what}: NOT WRITTEN: {path} ({exc.strerror or exc})"]
        return [f"{what}: {path}"]

    def raise_write_failures(self) -> None:
        """After the run folder is closed (what was written stays): one line naming each unwritten file."""
        if self.failed:
            raise ReportWriteFailed(f"could not write {'; '.join(self.failed)}: the summary is on stdout")

    def _write_html(self, report: Report, folder: Path) -> list[str]:
        if not self.reporting["html"]:
            return []
        try:
            from amanflix_stress.output.html import read_timeseries, render_html
        except ImportError as exc:
            return [f"html report skipped: {exc.name} is not installed (pip install 'amanflix-stress[html]')"]
        page = render_html(report, read_timeseries(report.meta.timeseries))
        return self._write_file("html", str(folder / FILES["html"]), lambda path: write_atomic(path, page))

    def _write_junit(self, report: Report) -> list[str]:
        target = self.reporting["junit"]
        if not target:
            return []
        from amanflix_stress.output.junit import render_junit

        xml = render_junit(report)
        return self._write_file("junit", target, lambda path: write_atomic(path, xml))


def summary_text(report: Report) -> str:
    """The full text summary: the console report, then thresholds and the baseline comparison."""
    parts = [
        render_report(report).rstrip("\n"),
        render_thresholds(report.thresholds),
        render_baseline(report.baseline),
    ]
    return "\n\n".join(p for p in parts if p)


def problem_lines(report: Report) -> list[str]:
    """Breached thresholds and regressions, one line each, for log-friendly output."""
    lines = [f"breached: {r.summary}" for r in breached(report.thresholds)]
    changes = report.baseline.endpoints if report.baseline else ()
    lines += [f"regression: {r.name}: {r.why}" for r in changes if r.regression]
    return lines
