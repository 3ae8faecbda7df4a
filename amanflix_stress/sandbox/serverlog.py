"""The sandbox's server log, line for line in the formats upstream's logs/amanflix.log and Flask use."""

from __future__ import annotations

import threading
import time
import traceback

# upstream's utils/logger.py writes '%(asctime)s [%(levelname)s] <symbol> [<file>:<line>] <message>'; the
# sources below are upstream's own call sites, so a parser written for the real log reads this one
SAFE_COMMIT_SOURCE = "db_utils.py:153"  # the WARNING in safe_commit
SAFE_COMMIT_FAILED_SOURCE = "db_utils.py:148"  # the ERROR after its last try
NON_LOCKING_SOURCE = "db_utils.py:143"  # an OperationalError that is not a lock
COMMIT_ERROR_SOURCE = "db_utils.py:163"  # any other error at commit (e.g. IntegrityError)
TOKEN_REQUIRED_SOURCE = "utils.py:219"
ADMIN_TOKEN_REQUIRED_SOURCE = "utils.py:273"
SYMBOLS = {"WARNING": "⚠", "ERROR": "✗", "INFO": "ℹ"}


def asctime(now_s: float) -> str:
    """logging's default asctime: local time, milliseconds after a comma."""
    whole = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now_s))
    return f"{whole},{int(now_s * 1000) % 1000:03d}"


def lock_retry_line(attempt: int, delay_s: float) -> str:
    """The message safe_commit logs for a failed, retried commit attempt (1-based)."""
    return f"Database locked during commit, attempt {attempt}, retrying in {delay_s:.2f}s"


class ServerLog:
    """Appends to one file from many request threads; one write per record so lines never interleave."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        # open for the server's lifetime, closed by close(); appends across restarts, as upstream's log does
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def _write(self, text: str) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.write(text)
                self._file.flush()

    def record(self, level: str, source: str, message: str) -> None:
        """One upstream-style line, e.g. '... [WARNING] ⚠ [db_utils.py:153] Database locked ...'."""
        self._write(f"{asctime(time.time())} [{level}] {SYMBOLS[level]} [{source}] {message}\n")

    def exception(self, path: str, method: str, exc: BaseException, debug: bool) -> None:
        """An unhandled exception as the server prints it: Flask's 'ERROR in app' record with debug off,
        the bare traceback Werkzeug's debugger writes with debug on."""
        trace = "".join(traceback.format_exception(exc))
        if debug:
            self._write(trace)
        else:
            self._write(f"[{asctime(time.time())}] ERROR in app: Exception on {path} [{method}]\n{trace}")

    def close(self) -> None:
        with self._lock:
            self._file.close()
