"""The coordinator: starts worker processes on their shares of the plan, paces the run, stops it, collects."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from amanflix_stress.engine.aggregator import Aggregator, WorkerState
from amanflix_stress.engine.client import check_reachable
from amanflix_stress.engine.limits import CONNECTIONS_PER_USER, Limits, check_limits
from amanflix_stress.engine.plan import RunPlan, WorkerShare, worker_shares
from amanflix_stress.engine.user import behaviour_class
from amanflix_stress.engine.worker import TICK_S, run_worker, watch_parent

# explicit: no inherited threads or sockets; the same path works on every platform
START_METHOD: Final = "spawn"
# a live worker that sends nothing for this long, not even its heartbeat (a thread of its own, every second),
# is reported as hung; one whose heartbeat comes but whose batches are this late is slow, and is waited for
WORKER_SILENCE_S = 15.0
READY_GRACE_S = 60.0  # start-up allowance on top of the plan's setup timeout
PROGRESS_EVERY_S = 1.0
FLAG_POLL_S = 0.01  # how often a worker waiting for go looks at the flag: go's delay at the start
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
MAIN = threading.main_thread()
ABANDON_CLEANUP_AT = 3  # the first signal stops gracefully, the second forces the workers down, the third
# abandons the coordinator's cleanup (the report then names each account nobody checked)


@dataclass
class RunResult:
    """What a run produced, before rendering."""

    aggregator: Aggregator
    start_s: float
    end_s: float
    stop_reason: str
    interrupted: bool
    shared: dict
    intervals: list[dict] = field(default_factory=list)  # the time series: one row per closed interval
    abandon: threading.Event = field(default_factory=threading.Event)  # set: stop cleaning up now
    extra: dict = field(default_factory=dict)  # sections a behaviour adds (lock issues, cleanup, ...)


class SharedFlag:
    """A boolean shared by processes without a lock: multiprocessing's Event takes a lock even in is_set(),
    and a worker killed with -9 while holding it would block the coordinator's stop and every other worker
    for ever. Waiters poll it."""

    def __init__(self, ctx) -> None:
        self._value = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout_s: float) -> bool:
        until = time.monotonic() + timeout_s
        while not self.is_set() and time.monotonic() < until:
            time.sleep(min(FLAG_POLL_S, max(0.0, until - time.monotonic())))  # nothing to block on: poll
        return self.is_set()


class LocalControl:
    """Run-wide signals for local worker processes: stop, go with the shared start time, the in-flight cap."""

    def __init__(self, ctx, max_concurrent: int) -> None:
        self.stop = SharedFlag(ctx)
        self.go = SharedFlag(ctx)
        self.start_s = ctx.RawValue("d", 0.0)  # written before go is set, read after: no lock needed
        self.limiter = ctx.BoundedSemaphore(max_concurrent) if max_concurrent > 0 else None

    def wait_go(self, timeout_s: float) -> float | None:
        return self.start_s.value if self.go.wait(timeout_s) else None

    def set_go(self, start_s: float) -> None:
        self.start_s.value = start_s
        self.go.set()


def _worker_process_main(share: WorkerShare, results, control, parent: tuple[int, bool]) -> None:
    """Entry point of a local worker process: the coordinator alone handles Ctrl-C and SIGTERM (a signal to
    the whole process group must not kill a worker before it told the coordinator what it did), and the
    worker ends by itself if the coordinator dies however it dies."""
    for sig in STOP_SIGNALS:  # the parent started us with these blocked: ignore them, then unblock
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    watch_parent(*parent)
    try:
        run_worker(share, results, control)
    finally:
        results.close()
        results.join_thread()


def say_now(line: str) -> None:
    """One line from a signal handler, written straight to fd 2: a handler that writes into sys.stderr's
    buffer while the interrupted code is flushing it can make the buffer write the line twice."""
    try:
        os.write(sys.stderr.fileno(), line.encode())
    except (OSError, ValueError):  # stderr closed or not a real file: the report still says why it stopped
        pass


class Coordinator:
    """Runs one plan on local worker processes and returns the RunResult."""

    def __init__(
        self,
        plan: RunPlan,
        on_progress: Callable[[dict], None] | None = None,
        on_interval: Callable[[dict], None] | None = None,
    ) -> None:
        self.plan = plan
        self.on_progress = on_progress or (lambda snapshot: None)
        self.on_start: Callable[[float], None] = lambda start_s: None  # e.g. start --hold-lock's schedule
        self.ctx = multiprocessing.get_context(START_METHOD)
        self.results = self._make_results()
        self.control = self._make_control()
        self.aggregator = Aggregator(plan.interval_s, on_interval)  # on_interval: e.g. the time series file
        self.processes: dict[int, multiprocessing.process.BaseProcess] = {}
        self.interrupts = 0
        self.stop_reason = ""
        self.abandon = threading.Event()
        self.limits: Limits | None = None

    def _make_results(self):
        """Where workers put their messages; the seam a remote variant (cluster.py) overrides."""
        return self.ctx.Queue()

    def _make_control(self):
        return LocalControl(self.ctx, self.plan.max_concurrent)

    def run(self) -> RunResult:
        """Prepare, drive the workers, then finish (cleanup) with our signal handlers still in place: a
        signal during cleanup must not kill the process before the report says what is left."""
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        try:
            return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> RunResult:
        start_s, shared = time.time(), {}
        behaviour = behaviour_class(self.plan.behaviour_path)
        self._check_limits(getattr(behaviour, "connections_per_user", CONNECTIONS_PER_USER))
        try:
            check_reachable(self.plan.base_url)
            shared = behaviour.prepare_run(self.plan)
            if not self.control.stop.is_set():
                start_s = self._drive(worker_shares(self.plan, shared))
        finally:
            self._reap()
        end_s = time.time()
        self.aggregator.close_intervals(end_s, final=True)
        result = RunResult(
            self.aggregator,
            start_s,
            end_s,
            self.stop_reason,
            self.interrupts > 0,
            shared,
            intervals=self.aggregator.intervals,
            abandon=self.abandon,
        )
        if self.limits is not None:
            result.extra["limits"] = self.limits.to_plain()
        result.extra.update(behaviour.finish_run(self.plan, result))
        return result

    def _check_limits(self, connections_per_user: int) -> None:
        """Before anything is sent: this machine's descriptors, threads and memory fit the run's users
        (UsageError otherwise). A remote variant checks where its workers run instead."""
        self.limits = check_limits(self.plan.users, self.plan.workers, connections_per_user)

    def _drive(self, shares: list[WorkerShare]) -> float:
        self.aggregator.begin_setup(time.time())
        for share in shares:
            self._launch(share)
        self._pump_until(
            lambda: self._all_settled(("ready", "done", "died", "hung")),
            self.plan.setup_timeout_s + READY_GRACE_S,
        )
        start_s = time.time()
        self.aggregator.begin(start_s)
        self.on_start(start_s)
        if not self.control.stop.is_set():
            self.control.set_go(start_s)
        deadline = time.monotonic() + self.plan.duration_s
        self._pump_until(
            lambda: time.monotonic() >= deadline or self._all_settled(("done", "died", "hung")), None
        )
        self.stop_reason = self.stop_reason or (
            "deadline" if time.monotonic() >= deadline else "all workers ended"
        )
        self.control.stop.set()
        self.aggregator.end_run(time.time())  # the measured phase ends here; teardown is not in it
        self._pump_until(
            lambda: self._all_settled(("done", "died", "hung")),
            self.plan.timeout_s + self.plan.teardown_timeout_s + 5.0,
        )
        return start_s

    def _launch(self, share: WorkerShare) -> None:
        process = self.ctx.Process(
            target=_worker_process_main,
            args=(share, self.results, self.control, (os.getpid(), threading.current_thread() is MAIN)),
            name=f"amanflix-stress-worker-{share.worker_id}",
            daemon=True,
        )
        # the child inherits the signal mask across exec: a group signal during its start-up stays pending
        # until it has chosen to ignore it (a signal here is delivered to us when we unblock)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self.processes[share.worker_id] = process
        self.aggregator.workers[share.worker_id] = WorkerState(share.worker_id, users=len(share.users))

    def _pump_until(self, done: Callable[[], bool], timeout_s: float | None) -> None:
        """Handle messages until done() or the timeout; notices dead and silent workers on the way."""
        until = time.monotonic() + timeout_s if timeout_s is not None else None
        next_progress = time.monotonic() + PROGRESS_EVERY_S
        while not done() and (until is None or time.monotonic() < until):
            if self.interrupts > 1:
                return
            try:
                self.aggregator.handle(self.results.get(timeout=TICK_S))
            except queue.Empty:
                pass
            self._check_workers()
            now = time.monotonic()
            if now >= next_progress:
                self.aggregator.close_intervals(time.time())
                self.on_progress(self.aggregator.progress(time.time()))
                next_progress = now + PROGRESS_EVERY_S
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self.aggregator.handle(self.results.get_nowait())
            except (queue.Empty, OSError, ValueError):
                return

    def _check_workers(self) -> None:
        for wid, process in self.processes.items():
            state = self.aggregator.workers[wid]
            if state.status in ("done", "died", "hung"):
                continue
            if not process.is_alive():
                self._drain()
                if state.status != "done":
                    state.status, state.detail = (
                        "died",
                        f"exit code {process.exitcode}; its {state.users} users stopped",
                    )
            else:
                self._judge_silence(state)

    def _judge_silence(self, state: WorkerState) -> None:
        """A live worker: hung when even its heartbeat stopped, slow when only its batches are late."""
        now, limit_s = time.monotonic(), WORKER_SILENCE_S
        if state.status == "starting":
            return
        if now - state.last_seen_mono > limit_s:
            state.status, state.detail = "hung", f"silent for {limit_s:.0f} s; its {state.users} users lost"
        elif now - state.last_data_mono > limit_s and not state.detail.startswith("slow"):
            state.detail = f"slow: no batch for over {limit_s:.0f} s while its heartbeat came on time"

    def _all_settled(self, statuses: tuple[str, ...]) -> bool:
        return all(self.aggregator.workers[w].status in statuses for w in self.processes)

    def _on_signal(self, signum, _frame) -> None:
        self.interrupts += 1
        self.stop_reason = self.stop_reason or ("interrupted" if signum == signal.SIGINT else "terminated")
        self.control.stop.set()
        self.aggregator.end_run(time.time())  # a stop mid-run ends the measured phase now
        if self.interrupts == 1:
            say_now(
                "\namanflix-stress: stopping: users finish their requests, then teardown, cleanup and the "
                "report (signal again to force the workers down)\n"
            )
        if self.interrupts == 2:
            say_now(
                "\namanflix-stress: stopping the workers now; the run's accounts are still cleaned up "
                "(signal again to abandon that)\n"
            )
        if self.interrupts > 1:
            for process in self.processes.values():
                if process.is_alive():
                    process.kill()
        if self.interrupts >= ABANDON_CLEANUP_AT:
            self.abandon.set()

    def _reap(self) -> None:
        for process in self.processes.values():
            process.join(timeout=2.0)
            if process.is_alive():
                process.kill()
                process.join(timeout=2.0)
