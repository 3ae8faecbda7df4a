"""SandboxConfig: the knobs chosen when a sandbox Amanflix starts."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

MODES = ("upstream", "strict", "fixed")
CATALOGS = ("default", "empty")
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
MAX_PORT = 65535
DEFAULT_HASH_ITERATIONS = (
    40_000  # PBKDF2-SHA256: ~15 ms per hash here; ~1_000_000 mimics upstream's ~0.4 s bcrypt
)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a sandbox needs to start; plain values only so it can cross a process boundary."""

    mode: str = "upstream"
    db_path: str | None = None
    port: int = 0
    busy_timeout_s: float = 5.0
    hash_iterations: int = DEFAULT_HASH_ITERATIONS
    catalog: str = "default"
    admin_password: str | None = None
    truth_path: str | None = None
    # False (default, like the `sandbox` command and the demo): Werkzeug's generic 500 page that names no
    # exception, as the server is deployed; True: the debugger page naming it (upstream's app.run).
    debug: bool = False
    log_path: str | None = None  # server log (default <db dir>/amanflix.log)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.catalog not in CATALOGS:
            raise ValueError(f"catalog must be one of {CATALOGS}, got {self.catalog!r}")
        if (
            not 0 <= self.port <= MAX_PORT
        ):  # the OS would take a port modulo 65536, or refuse with a traceback
            raise ValueError(f"port must be 0 to {MAX_PORT} (0 = any free port), got {self.port}")
        if self.busy_timeout_s < 0 or self.hash_iterations < 1:
            raise ValueError("busy_timeout_s must be >= 0 and hash_iterations >= 1")


def check_paths(db_path: str | None, log_path: str | None = None, truth_path: str | None = None) -> None:
    """Before starting: each file the sandbox will open can be opened as it needs. A ValueError names the
    flag, the path and why (rather than SQLAlchemy's traceback on the first query)."""
    problems = [("--db", db_path, database_problem(db_path) if db_path else None)]
    for flag, path in (("--log-path", log_path), ("--truth-path", truth_path)):
        problems.append((flag, path, file_problem(path) if path else None))
    for flag, path, problem in problems:
        if problem:
            raise ValueError(f"{flag} {path}: {problem}")


def database_problem(path: str) -> str | None:
    """Why SQLite could not use `path` as a read-write database, or None."""
    if not os.path.exists(path):
        return folder_problem(path)
    if os.path.isdir(path) or not os.path.isfile(path):
        return "is a directory" if os.path.isdir(path) else "not a regular file"
    try:
        with open(path, "r+b") as db:  # read-write, as SQLite opens it
            header = db.read(len(SQLITE_HEADER))
    except OSError as exc:
        return f"cannot open it read-write ({exc.strerror})"
    if header and header != SQLITE_HEADER:  # an empty file is a new database
        return "not a SQLite database"
    return folder_problem(path)


def file_problem(path: str) -> str | None:
    """Why the log or truth file at `path` could not be written, or None."""
    if os.path.isdir(path) or (os.path.exists(path) and not os.path.isfile(path)):
        return "is a directory" if os.path.isdir(path) else "not a regular file"
    try:
        open(path, "ab").close()  # append: never truncates an existing log
    except OSError as exc:
        return f"cannot write it ({exc.strerror})"
    return None


def folder_problem(path: str) -> str | None:
    """SQLite creates the database and its rollback journal beside it: that folder must take a new file."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"its folder {folder} does not exist"
    try:
        fd, probe = tempfile.mkstemp(prefix=".amanflix-sandbox-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot create files in its folder ({exc.strerror}); SQLite keeps its journal there"
    return None
