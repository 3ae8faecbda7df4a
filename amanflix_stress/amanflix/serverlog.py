"""--server-log: follows the target's log during a run and sets its lock events beside the tool's findings."""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from amanflix_stress.amanflix.detect import LOCK_CAUSED
from amanflix_stress.amanflix.records import doc

POLL_S = 0.1  # how often the follower looks for new lines (tail -f does the same); read at call time
READ_CHUNK_BYTES = 64 * 1024
MAX_READ_PER_POLL_BYTES = 8 * 1024 * 1024  # a huge burst of log is read over several polls, never at once
TAIL_BYTES = 256  # compared on each look: a timestamped line makes a false match after a truncation unlikely
MAX_LINE_BYTES = 64 * 1024  # a longer line is cut: only its start can name a lock
MAX_EVENTS = 500_000  # a run that logs more keeps counting but stops keeping each event's time

# upstream's logger: '2026-11-30 01:41:21,395 [WARNING] ⚠ [db_utils.py:153] Database locked during ...';
# Flask's (debug off): '[2026-11-30 01:41:21,395] ERROR in app: Exception on /api/... [PUT]'
LINE_TIME = re.compile(r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]? ")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # upstream colours its console lines; a redirected log may keep them
COMMIT_LOCK = re.compile(r"Database locked during commit, attempt (\d+)")
TOKEN_LOCK = re.compile(r"Unexpected error in (?:admin_)?token_required: .*database (?:table )?is locked")
# the last line of an unhandled lock's traceback (one per request; the real server prints tracebacks to its
# console, not to logs/amanflix.log, so this counts only where the console is captured into the file)
UNHANDLED_LOCK = re.compile(
    r"^sqlalchemy\.exc\.OperationalError: \(sqlite3\.OperationalError\) database (?:table )?is locked"
)
EVENT_KINDS = ("commit_helper", "token_check", "unhandled")
CLOCK_NOTE = (
    "log times are the server's local time read on this machine: the server and the tool must share a clock "
    "(same machine)"
)
N_MEANS = (
    "requests, not lines: the commit helper logs one line per failed attempt (up to 4 per request), so "
    "only its 'attempt 1' lines count, plus each token-check lock and each unhandled 'database is locked' "
    "traceback"
)
M_MEANS = (
    "logged events matched one to one with lock-caused failures the tool found answered in the same interval "
    "or the next (the answer leaves after the log line); bare 500s, suspected lock waits and duplicate rows "
    "are not counted, and a loss found later by a read-back is not matched"
)


class LogEvent(NamedTuple):
    """One lock the server logged: when (epoch seconds), which kind, which attempt (commit helper only)."""

    time_s: float
    kind: str
    attempt: int = 1


def strip_ansi(line: str) -> str:
    return ANSI.sub("", line)


def line_time_s(line: str) -> float | None:
    """The epoch seconds of a line's leading 'YYYY-mm-dd HH:MM:SS,mmm' (local time), or None."""
    match = LINE_TIME.match(line)
    if not match:
        return None
    whole = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
    return whole + int(match.group(2)) / 1000


def parse_line(line: str, record_s: float | None, read_s: float) -> tuple[LogEvent | None, float | None]:
    """The lock event a line records (or None), and the time of the record it opens. A line without a time
    (a traceback's) belongs to the 'ERROR in app' record just before it (debug off); a bare traceback
    (debug on) gets the moment it was read, `read_s` (the follower looks every POLL_S)."""
    line = strip_ansi(line)
    stamped = line_time_s(line)
    if stamped is not None:
        record_s = stamped if "ERROR in app" in line else None
    now_s = stamped if stamped is not None else record_s if record_s is not None else read_s
    if commit := COMMIT_LOCK.search(line):
        return LogEvent(now_s, "commit_helper", int(commit.group(1))), record_s
    if TOKEN_LOCK.search(line):
        return LogEvent(now_s, "token_check"), record_s
    if UNHANDLED_LOCK.match(line):
        return LogEvent(now_s, "unhandled"), record_s
    return None, record_s


def is_request(event: LogEvent) -> bool:
    """One event per request: a commit helper's retries of the same request are not new locks."""
    return event.kind != "commit_helper" or event.attempt == 1


class LogFollower:
    """A bounded thread that tails one file from its end: it reopens after a rotation, rereads after a
    truncation, and reports each problem once through `warn`; it never raises into the run."""

    def __init__(self, path: str, warn: Callable[[str], None]) -> None:
        self.path, self.warn = path, warn
        self.events: list[LogEvent] = []
        self.counts = {kind: 0 for kind in EVENT_KINDS}
        self.commit_lines = 0
        self.lines_read = 0
        self.problems: list[str] = []
        self.followed = False
        self._file: BinaryIO | None = None
        self._inode: tuple[int, int] | None = None
        self._partial = b""
        self._tail = b""  # the last bytes read, to notice a truncation the file has since outgrown
        self._record_s: float | None = None  # the time of the 'ERROR in app' record being read
        self._missing = False
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Open the log at its end and follow it; False (after one line through `warn`) if it cannot."""
        try:
            self._open(at_end=True)
        except OSError as exc:
            self._problem(
                f"--server-log: cannot follow {self.path}: {reason(exc)}; the run goes on without it"
            )
            return False
        self.followed = True
        self._thread = threading.Thread(target=self._loop, daemon=True, name="server-log")
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop following after reading what the server has written up to now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10 * POLL_S + 5.0)
        if self._file is not None:
            self._file.close()
            self._file = None

    def wait_for_events(self, count: int, timeout_s: float) -> bool:
        """Block until `count` lock events (requests) have been read, or the timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.requests() >= count, timeout_s)

    def requests(self) -> int:
        return sum(self.counts.values())

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            self._poll()
        self._poll()  # the last lines, written before the run's last answers arrived

    def _open(self, at_end: bool) -> None:
        # non-blocking: opening a FIFO for reading would otherwise wait for a writer
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise OSError(f"not a regular file ({stat.filemode(info.st_mode)})")
        handle = os.fdopen(fd, "rb")  # held open across polls, closed in stop/_reopen
        if at_end:
            handle.seek(0, os.SEEK_END)
        self._file, self._inode, self._partial = handle, (info.st_dev, info.st_ino), b""
        self._tail = b""
        if at_end and handle.tell():
            self._tail = os.pread(handle.fileno(), TAIL_BYTES, max(0, handle.tell() - TAIL_BYTES))

    def _poll(self) -> None:
        try:
            info = os.stat(self.path)
        except OSError as exc:
            self._read_new()  # what the old file got before it went away
            if not self._missing:
                self._missing = True
                self._problem(
                    f"--server-log: {self.path} went away ({reason(exc)}); waiting for it to return"
                )
            return
        if (info.st_dev, info.st_ino) != self._inode:
            self._read_new()
            self._reopen("was replaced (rotated)")
        elif self._file is not None and self._shrank(info.st_size):
            self._file.seek(0)
            self._partial = self._tail = b""
            self._problem(f"--server-log: {self.path} was truncated at {clock()}; reading it from the start")
        self._read_new()

    def _shrank(self, size: int) -> bool:
        """Truncated since the last look: shorter than what was read, or (truncated and written again
        past that point) the bytes just before the read position are no longer the ones read there."""
        assert self._file is not None
        position = self._file.tell()
        if size < position:
            return True
        seen = len(self._tail)
        return seen > 0 and os.pread(self._file.fileno(), seen, position - seen) != self._tail

    def _reopen(self, why: str) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            self._open(at_end=False)
        except OSError as exc:
            self._inode = None
            self._problem(f"--server-log: {self.path} {why} but cannot be reopened: {reason(exc)}")
            return
        self._missing = False
        self._problem(f"--server-log: {self.path} {why} at {clock()}; following the new file from its start")

    def _read_new(self) -> None:
        if self._file is None:
            return
        budget = MAX_READ_PER_POLL_BYTES
        try:
            while budget > 0 and (chunk := self._file.read(READ_CHUNK_BYTES)):
                budget -= len(chunk)
                self._take(chunk)
        except OSError as exc:
            self._problem(f"--server-log: cannot read {self.path}: {reason(exc)}")

    def _take(self, chunk: bytes) -> None:
        self._tail = (self._tail + chunk)[-TAIL_BYTES:]
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        self._partial = self._partial[:MAX_LINE_BYTES]
        for raw in lines:
            self._line(raw[:MAX_LINE_BYTES].decode("utf-8", errors="replace"))
        with self._changed:
            self._changed.notify_all()

    def _line(self, line: str) -> None:
        self.lines_read += 1
        event, self._record_s = parse_line(line, self._record_s, time.time())
        if event is None:
            return
        self.commit_lines += event.kind == "commit_helper"
        if not is_request(event):
            return
        with self._changed:
            self.counts[event.kind] += 1
        if len(self.events) < MAX_EVENTS:
            self.events.append(event)

    def _problem(self, line: str) -> None:
        if line not in self.problems:
            self.problems.append(line)
            self.warn(line)


def reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def clock() -> str:
    return time.strftime("%H:%M:%S")


@dataclass(frozen=True)
class LoggedInterval:
    """The server's lock events beside the tool's findings in one time-series interval (or before/after)."""

    phase: str = doc("setup (before the measured phase), run, or teardown (after it)")
    interval: int | None = doc("interval index in the measured phase; null for setup and teardown")
    start_s: float | None = doc("interval start, epoch seconds; null for setup and teardown")
    server_events: int = doc("lock events the server logged (requests, see server_log.events_are)")
    tool_lock_failures: int = doc("lock-caused failures the tool found answered here")
    bare_5xx: int = doc("500s the tool did not attribute to a lock (class http_5xx)")
    accounted: int = doc("logged events matched with a tool finding here or in the next interval")


@dataclass(frozen=True)
class ServerLogEvidence:
    """The `server_log` section (with --server-log): the server's count of lock events beside the tool's."""

    path: str = doc("the log followed")
    followed: bool = doc("false when it could not be opened at the start (see problems)")
    clock: str = doc("how log times were read (the assumption that server and tool share a clock)")
    problems: tuple[str, ...] = doc("what went wrong while following (missing, unreadable, rotated, ...)")
    lines_read: int = doc("log lines read during the run")
    commit_helper_lines: int = doc("'Database locked during commit' lines, every attempt")
    by_kind: Mapping[str, int] = doc("commit_helper / token_check / unhandled -> requests")
    events: int = doc("N: lock events the server logged, counted per request")
    events_are: str = doc("what N counts")
    accounted: int = doc("M: of those, how many the tool accounted for")
    accounted_means: str = doc("what M counts")
    tool_lock_failures: int = doc("lock-caused failures the tool found in all phases")
    intervals: tuple[LoggedInterval, ...] = doc("setup, each interval and teardown with events or findings")


class Buckets(NamedTuple):
    """Counts per time bucket in order: setup, interval 0..K, teardown."""

    keys: list[tuple[str, int | None, float | None]]
    tool: list[int]
    bare: list[int]


def lock_failures(classes: Mapping[str, int]) -> int:
    """The lock-caused failures in a class -> count mapping (what the tool claims the lock did)."""
    return sum(n for c, n in classes.items() if c in LOCK_CAUSED)


def tool_buckets(result) -> Buckets:
    """The tool's findings per bucket, from the run's intervals and its setup and teardown phases."""
    phases = result.aggregator.phases
    rows = {row["interval"]: row for row in result.intervals}
    last = max(rows, default=-1)
    keys: list[tuple[str, int | None, float | None]] = [("setup", None, None)]
    tool, bare = (
        [lock_failures(phases["setup"].count_by_class())],
        [phases["setup"].count_by_class().get("http_5xx", 0)],
    )
    for index in range(last + 1):
        errors = rows.get(index, {}).get("errors", {})
        keys.append(("run", index, rows[index]["start_s"] if index in rows else None))
        tool.append(lock_failures(errors))
        bare.append(errors.get("http_5xx", 0))
    teardown = phases["teardown"].count_by_class()
    keys.append(("teardown", None, None))
    tool.append(lock_failures(teardown))
    bare.append(teardown.get("http_5xx", 0))
    return Buckets(keys, tool, bare)


def bucket_of(time_s: float, start_s: float, interval_s: float, deadline_s: float, intervals: int) -> int:
    """The bucket position of a logged time: 0 setup, 1 + interval index, or the last (teardown)."""
    if time_s < start_s:
        return 0
    index = int((time_s - start_s) // interval_s)
    return 1 + index if index < intervals or time_s < deadline_s else intervals + 1


def match(server: list[int], tool: list[int]) -> list[int]:
    """Per bucket, logged events matched one to one with tool findings in the same bucket or the next."""
    accounted, carry = [0] * len(server), 0
    for k in range(len(server)):
        from_before = min(carry, tool[k])
        if k:
            accounted[k - 1] += from_before
        here = min(server[k], tool[k] - from_before)
        accounted[k] += here
        carry = server[k] - here
    return accounted


def evidence(follower: LogFollower, plan, result) -> ServerLogEvidence:
    """The server_log section: N, M and the per-interval comparison."""
    buckets = tool_buckets(result)
    intervals = len(buckets.keys) - 2
    server = [0] * len(buckets.keys)
    deadline_s = result.start_s + plan.duration_s
    for event in follower.events:
        server[bucket_of(event.time_s, result.start_s, plan.interval_s, deadline_s, intervals)] += 1
    accounted = match(server, buckets.tool)
    rows = tuple(
        LoggedInterval(phase, index, start_s, server[k], buckets.tool[k], buckets.bare[k], accounted[k])
        for k, (phase, index, start_s) in enumerate(buckets.keys)
        if server[k] or buckets.tool[k] or buckets.bare[k]
    )
    return ServerLogEvidence(
        path=follower.path,
        followed=follower.followed,
        clock=CLOCK_NOTE,
        problems=tuple(follower.problems),
        lines_read=follower.lines_read,
        commit_helper_lines=follower.commit_lines,
        by_kind=dict(follower.counts),
        events=follower.requests(),
        events_are=N_MEANS,
        accounted=sum(accounted),
        accounted_means=M_MEANS,
        tool_lock_failures=sum(buckets.tool),
        intervals=rows,
    )


def event_times(follower: LogFollower | None) -> list[float] | None:
    """The logged lock events' times (per request), or None without a followed log."""
    return [e.time_s for e in follower.events] if follower is not None and follower.followed else None


def follower_for(args, warn: Callable[[str], None]) -> LogFollower | None:
    """The follower --server-log asks for, started now (at the log's end); None without the flag."""
    path = getattr(args, "server_log", None)
    if not path:
        return None
    follower = LogFollower(path, warn)
    follower.start()
    return follower
