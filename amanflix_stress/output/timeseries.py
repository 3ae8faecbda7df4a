"""The time series file: each closed interval's row appended as one JSON line while the run goes."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Callable


def warn_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class TimeSeriesWriter:
    """The aggregator's interval sink for one run: starts the file empty, then appends one line per row.
    A write that fails (disk full, EIO) never stops the run: one warning line, and the row is skipped."""

    def __init__(self, path: str, warn: Callable[[str], None] = warn_stderr) -> None:
        self.path, self.warn = path, warn
        self.rows_lost, self.warned = 0, False
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            open(path, "w").close()  # a report path used again must not keep an earlier run's lines
        except OSError as exc:
            self._failed(exc, rows=0)

    def __call__(self, row: dict) -> None:
        try:
            append_line(self.path, (json.dumps(row) + "\n").encode())
        except OSError as exc:
            self._failed(exc, rows=1)

    def _failed(self, exc: OSError, rows: int) -> None:
        self.rows_lost += rows
        if not self.warned:  # one line, not one per interval of a disk that stays full
            self.warned = True
            self.warn(
                f"amanflix-stress: warning: time series {self.path}: cannot write ({exc.strerror or exc}); "
                "the run goes on, rows that cannot be written are skipped"
            )


def append_line(path: str, line: bytes) -> None:
    """Append one whole line or nothing: a short or failed write is cut back off, so every line a reader
    finds parses. Opened per row (one every interval): a crash keeps every line so far."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, line) != len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
