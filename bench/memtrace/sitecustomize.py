"""Bench-only probe, loaded by bench/memory_soak.py through PYTHONPATH: inside the CLI's worker process
(a multiprocessing spawn child) it traces allocations and writes what it sees, without touching the engine.

Off unless AMFX_MEMTRACE_DIR is set, and only in a process started with --multiprocessing-fork.
AMFX_MEMTRACE_FRAMES=0 leaves tracemalloc off and keeps the rest. Every AMFX_MEMTRACE_EVERY_S
seconds: one JSON line to probe.jsonl (traced bytes, tracemalloc's own bytes,
threads, glibc's mallinfo2); every AMFX_MEMTRACE_SNAPSHOT_S seconds: a tracemalloc snapshot file.
"""

import os
import sys

SNAPSHOT_TIMEOUT_S = 120.0


def _mallinfo() -> dict:
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {field[0]: getattr(info, field[0]) for field in MallInfo2._fields_}


def _probe(folder: str, every_s: float, snapshot_s: float, limit_s: float) -> None:
    import json
    import threading
    import time
    import tracemalloc

    started = time.monotonic()
    next_snapshot = snapshot_s
    with open(os.path.join(folder, f"probe-{os.getpid()}.jsonl"), "a") as out:
        while time.monotonic() - started < limit_s:  # bounded: the bench's own limit
            time.sleep(every_s)  # a sampling period, not a wait for an event
            elapsed = round(time.monotonic() - started, 1)
            traced, peak = tracemalloc.get_traced_memory()  # (0, 0) when not tracing
            row: dict[str, object] = {
                "s": elapsed,
                "wall": round(time.time(), 1),
                "traced": traced,
                "traced_peak": peak,
                "tracemalloc_own": tracemalloc.get_tracemalloc_memory(),
                "threads": threading.active_count(),
                "malloc": _mallinfo(),
            }
            if tracemalloc.is_tracing() and elapsed >= next_snapshot:
                name = row["snapshot"] = f"snap-{int(elapsed):05d}.tm"
                _snapshot_in_child(os.path.join(folder, name))
                next_snapshot += snapshot_s
            out.write(json.dumps(row) + "\n")
            out.flush()


def _snapshot_in_child(path: str) -> None:
    """Take and write the snapshot in a forked copy: building it allocates tens of MB, which would stay in
    this process's malloc arenas and show up as the very growth being measured."""
    import signal
    import time

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import tracemalloc

            tracemalloc.take_snapshot().dump(path)
            code = 0
        finally:
            os._exit(code)
    until = time.monotonic() + SNAPSHOT_TIMEOUT_S
    while time.monotonic() < until:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        time.sleep(0.2)  # polling a child we forked: bounded by SNAPSHOT_TIMEOUT_S
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _start() -> None:
    folder = os.environ.get("AMFX_MEMTRACE_DIR")
    if not folder or "--multiprocessing-fork" not in sys.argv:
        return
    import threading
    import tracemalloc

    frames = int(os.environ.get("AMFX_MEMTRACE_FRAMES", "1"))
    if frames > 0:  # 0: no tracemalloc (its tables grow the RSS being measured), only the probe's rows
        tracemalloc.start(frames)
    args = (
        folder,
        float(os.environ.get("AMFX_MEMTRACE_EVERY_S", "10")),
        float(os.environ.get("AMFX_MEMTRACE_SNAPSHOT_S", "60")),
        float(os.environ.get("AMFX_MEMTRACE_LIMIT_S", "7200")),
    )
    threading.Thread(target=_probe, args=args, daemon=True, name="memtrace").start()


_start()
