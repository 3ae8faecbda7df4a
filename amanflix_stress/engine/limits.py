"""Resource limits checked before a run starts: file descriptors, threads and memory for its users."""

from __future__ import annotations

import math
import resource
from dataclasses import asdict, dataclass
from pathlib import Path

from amanflix_stress.errors import UsageError

CONNECTIONS_PER_USER = 1  # a behaviour that opens more (a second device) says so in `connections_per_user`
FD_MARGIN = 64  # descriptors a worker holds besides its users' sockets: stdio, queue pipes, files, Python
THREAD_MARGIN = 32  # threads a worker runs besides its users': setup jobs, heartbeat, queue feeder
# Worker resident memory per simulated user, measured by bench/rss_per_user.py (idle users against a loopback
# target, worker RSS growth / users) and rounded up; see docs/performance.md
RSS_PER_USER_KIB = 48
RSS_PER_WORKER_MIB = 60  # a worker's own resident set before its users (interpreter, numpy, the plan)
THREADS_MAX = Path("/proc/sys/kernel/threads-max")
PID_MAX = Path("/proc/sys/kernel/pid_max")
MEMINFO = Path("/proc/meminfo")
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Limits:
    """What a run needs and what the machine allows, as the report states them; None where unknown."""

    users_per_worker: int
    connections_per_user: int
    fd_soft: int  # after raising the soft limit to the hard one
    fd_hard: int
    fd_needed: int  # per worker process (each has its own descriptor table)
    threads_needed: int  # all workers together
    threads_allowed: int | None  # the tightest of threads-max, pid_max, cgroup pids.max, RLIMIT_NPROC
    threads_limited_by: str
    memory_needed_mib: int
    memory_available_mib: int | None
    rss_per_user_kib: int

    def to_plain(self) -> dict:
        return asdict(self)


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft descriptor limit to its hard one (children inherit it): (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. macOS refuses above OPEN_MAX: keep what we have
            pass
    return soft, hard


def check_limits(users: int, workers: int, connections_per_user: int = CONNECTIONS_PER_USER) -> Limits:
    """The run's needs against the machine's limits; UsageError (exit 2, one line) when they do not fit,
    saying how many users would."""
    workers = max(1, min(workers, users))
    per_worker = math.ceil(users / workers)
    soft, hard = raise_fd_limit()
    limits = Limits(
        users_per_worker=per_worker,
        connections_per_user=connections_per_user,
        fd_soft=soft,
        fd_hard=hard,
        fd_needed=per_worker * connections_per_user + FD_MARGIN,
        threads_needed=users * connections_per_user + workers * THREAD_MARGIN,
        threads_allowed=None,
        threads_limited_by="",
        memory_needed_mib=math.ceil(users * RSS_PER_USER_KIB / 1024 + workers * RSS_PER_WORKER_MIB),
        memory_available_mib=available_memory_mib(),
        rss_per_user_kib=RSS_PER_USER_KIB,
    )
    allowed, by = thread_allowance()
    limits = Limits(**{**asdict(limits), "threads_allowed": allowed, "threads_limited_by": by})
    refuse_if_short(limits, users, workers)
    return limits


def refuse_if_short(limits: Limits, users: int, workers: int) -> None:
    per_user = limits.connections_per_user
    if limits.fd_needed > limits.fd_soft:
        fit = max(0, (limits.fd_soft - FD_MARGIN) // per_user) * workers
        raise UsageError(
            f"{users:,} users need {limits.fd_needed:,} open files per worker but the limit is "
            f"{limits.fd_soft:,} (hard {limits.fd_hard:,}): {fit:,} users fit on {workers} worker(s); "
            "raise it (ulimit -n) or use fewer users per worker"
        )
    if limits.threads_allowed is not None and limits.threads_needed > limits.threads_allowed:
        fit = max(0, (limits.threads_allowed - workers * THREAD_MARGIN) // per_user)
        raise UsageError(
            f"{users:,} users need {limits.threads_needed:,} threads but {limits.threads_limited_by} allows "
            f"{limits.threads_allowed:,} more: {fit:,} users fit"
        )
    available = limits.memory_available_mib
    if available is not None and limits.memory_needed_mib > available:
        fit = max(0, (available - workers * RSS_PER_WORKER_MIB) * 1024 // RSS_PER_USER_KIB)
        raise UsageError(
            f"{users:,} users need about {limits.memory_needed_mib:,} MiB ({RSS_PER_USER_KIB} KiB each) but "
            f"{available:,} MiB is available: {fit:,} users fit"
        )


def thread_allowance() -> tuple[int | None, str]:
    """How many more threads this user may start, and the limit that says so (None: no limit found)."""
    candidates: list[tuple[int, str]] = []
    running = running_threads()
    for path, name in ((THREADS_MAX, "kernel.threads-max"), (PID_MAX, "kernel.pid_max")):
        value = read_int(path)
        if value is not None and running is not None:
            candidates.append((value - running, name))
    pids = cgroup_pids()
    if pids is not None:
        candidates.append(pids)
    nproc = raise_nproc_limit()
    if nproc is not None:
        candidates.append((nproc, "RLIMIT_NPROC (ulimit -u)"))
    if not candidates:
        return None, ""
    return min(candidates)


def raise_nproc_limit() -> int | None:
    """RLIMIT_NPROC raised to its hard limit: threads count against it (per user); None when unlimited."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else soft


def running_threads() -> int | None:
    """Threads on the whole machine now (the fourth field of /proc/loadavg: running/total)."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, IndexError, ValueError):
        return None


def cgroup_pids() -> tuple[int, str] | None:
    """(pids.max - pids.current, name) of this process's cgroup (v2, or v1's pids controller), if limited."""
    folder = own_cgroup("pids")
    if folder is None:
        return None
    limit, current = read_int(folder / "pids.max"), read_int(folder / "pids.current")
    if limit is None or current is None:
        return None
    return limit - current, f"cgroup pids.max ({folder})"


def own_cgroup(controller: str) -> Path | None:
    """This process's cgroup folder for a controller: v2's unified one, else v1's, if mounted."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        for folder in (
            (CGROUP_ROOT / path.lstrip("/")) if not controllers else None,
            (CGROUP_ROOT / controller / path.lstrip("/")) if controller in controllers.split(",") else None,
        ):
            if folder is not None and folder.is_dir():
                return folder
    return None


def available_memory_mib() -> int | None:
    """MemAvailable, or less when this process's cgroup has a lower memory limit."""
    available = None
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    folder = own_cgroup("memory")
    if folder is not None:
        limit = read_int(folder / "memory.max") or read_int(folder / "memory.limit_in_bytes")
        used = read_int(folder / "memory.current") or read_int(folder / "memory.usage_in_bytes")
        if limit is not None and used is not None and limit < 1 << 60:
            room = (limit - used) // (1 << 20)
            available = room if available is None else min(available, room)
    return available


def read_int(path: Path) -> int | None:
    """An integer file such as /proc/sys/kernel/pid_max; None when absent or `max` (no limit)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
