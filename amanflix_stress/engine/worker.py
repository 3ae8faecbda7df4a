"""A worker: runs its share of the simulated users on threads and ships batched stats over a queue."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback

from amanflix_stress.engine.client import HttpClient, InflightGauge
from amanflix_stress.engine.health import HealthMeter, pin_to_core
from amanflix_stress.engine.limits import raise_fd_limit
from amanflix_stress.engine.messages import Batch, Crash, Done, Heartbeat, Hello, Message, Ready
from amanflix_stress.engine.pacing import ArrivalSchedule, build_segments
from amanflix_stress.engine.plan import WorkerShare
from amanflix_stress.engine.sample import Sample
from amanflix_stress.engine.stats import Stats
from amanflix_stress.engine.user import Behaviour, UserContext, behaviour_class

BATCH_S = 1.0  # how often a worker ships its stats: the aggregator's freshness vs queue traffic
TICK_S = 0.1  # how often the worker looks at the stop flag and its deadline
HEARTBEAT_S = 1.0  # how often a worker's own heartbeat thread says it lives, whatever its users are doing
# The stop wakes user threads a group at a time: one Event for thousands of threads thinking makes them all
# runnable at once, and a worker with thousands of runnable threads starves its own main thread for seconds
STOP_GROUP = 50  # users that share one stop event (woken together)
STOP_STEP_S = 0.005  # the pause between two groups: 5,000 users stop within half a second
# Every thread waiting for the GIL wakes each switch interval to ask for it: with thousands of users waking
# from their think time at once that is a million futex calls a second (measured: ~2,000 threads runnable
# for 14 s, all system time) and the worker stalls. Our threads give the GIL up at each socket call anyway,
# so a longer interval costs no latency and divides that storm by ten (see docs/performance.md).
SWITCH_INTERVAL_S = 0.05
THREADED_USERS_FEW = 200  # up to this many users per worker, Python's default interval stays
SETUP_PHASE, RUN_PHASE, TEARDOWN_PHASE = "setup", "run", "teardown"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_S = 0.5  # how soon a worker notices its coordinator is gone where the kernel does not tell it
PARENT_GONE_EXIT = 3  # a worker's exit code when its coordinator died


def watch_parent(parent_pid: int, kernel_signal: bool = True) -> None:
    """End this process when `parent_pid` (the coordinator) dies, however it dies (kill -9 included): the
    kernel's parent-death signal on Linux, and a poll of getppid() everywhere (the signal is not sent if the
    parent died before we asked). The kernel's signal fires when the parent *thread* that started us ends,
    so the parent asks for it only when it started us from its main thread."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the poll alone does it
        if not kernel_signal:
            raise OSError
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(PARENT_GONE_EXIT)
    threading.Thread(target=_poll_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()


def _poll_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)  # a daemon thread's poll: nothing to wait on but the kernel's parent id
    os._exit(PARENT_GONE_EXIT)  # no coordinator to report to: stop every user thread at once


def run_worker(share: WorkerShare, results, control) -> None:
    """Run one worker's share of the plan. `results` has put() for messages; `control` see LocalControl."""
    Worker(share, results, control).run()


class Worker:
    """One worker's users, their threads, and the batches it ships."""

    def __init__(self, share: WorkerShare, results, control) -> None:
        self.share, self.results, self.control = share, results, control
        self.id = share.worker_id
        self.stop = threading.Event()  # the worker's own: its loops and the setup/teardown jobs
        groups = max(1, -(-len(share.users) // STOP_GROUP))
        self.user_stops = [threading.Event() for _ in range(groups)]  # each user waits on its group's
        self.group_of = {index: position // STOP_GROUP for position, (index, _) in enumerate(share.users)}
        self.finished = threading.Event()  # the heartbeat thread ends with it
        self.phase = SETUP_PHASE
        self.next_flush_mono = 0.0  # when flush_when_due ships the next batch (set by each flush)
        self.pending: collections.deque[Sample] = collections.deque()
        self.gauge = InflightGauge()
        self.active_users = 0
        self.start_s = 0.0
        self.origin_ns = 0  # perf_counter_ns at the run's start: the open model's due times count from here
        self.threads: list[threading.Thread] = []
        self.health = HealthMeter()
        self.busy = InflightGauge()  # open model: user threads running an arrival
        self.clients: dict[int, list[HttpClient]] = {}
        self.schedule = open_schedule(share)

    def run(self) -> None:
        share = self.share
        core = pin_to_core(self.id) if share.pin_cores else None
        raise_fd_limit()  # a remote (Dask) worker's own limit; a local one inherits the coordinator's
        if len(share.users) > THREADED_USERS_FEW:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.send(Hello(self.id, os.getpid(), socket.gethostname(), len(share.users), core))
        heartbeat = threading.Thread(target=self.heartbeat_loop, daemon=True, name="heartbeat")
        heartbeat.start()
        try:
            self.run_share()
        finally:
            self.finished.set()
            heartbeat.join()

    def run_share(self) -> None:
        share = self.share
        everyone = [self.make_user(index) for index, _offset in share.users]
        ready = self.run_phase(SETUP_PHASE, [(u, u.setup) for u in everyone], share.setup_timeout_s)
        users = [u for u, ok in zip(everyone, ready) if ok is True]
        self.send(Ready(self.id, users_ready=len(users), users_dropped=len(ready) - len(users)))
        start_s = self.wait_go()
        if start_s is not None:
            self.start_s = start_s
            for user in users:
                user.ctx.start_s = self.start_s
            self.run_users(users)
        self.stop_all()
        self.phase = TEARDOWN_PHASE
        self.run_phase(TEARDOWN_PHASE, [(u, u.teardown) for u in users], share.teardown_timeout_s)
        counters: dict[str, int] = {}
        for user in everyone:  # dropped users count too: they may have created accounts
            for key, count in user.counters().items():
                counters[key] = counters.get(key, 0) + count
            user.close()
        hung = sum(t.is_alive() for t in self.threads)
        self.send(Done(self.id, users=len(users), hung_users=hung, counters=counters))

    def make_user(self, index: int) -> Behaviour:
        share = self.share
        ctx = UserContext(
            index=index,
            worker_id=self.id,
            run_id=share.run_id,
            base_url=share.base_url,
            settings=share.settings,
            shared=share.shared,
            stop=self.user_stops[self.group_of[index]],
            rng=random.Random(f"{share.seed}:{index}"),
            new_client=lambda: self.new_client(index),
            open_model=self.schedule is not None,
        )
        return behaviour_class(share.behaviour_path)(ctx)

    def new_client(self, index: int) -> HttpClient:
        client = HttpClient(
            self.share.base_url,
            index,
            self.pending.append,
            timeout_s=self.share.timeout_s,
            connect_timeout_s=self.share.connect_timeout_s,
            gauge=self.gauge,
            limiter=getattr(self.control, "limiter", None),
        )
        self.clients.setdefault(index, []).append(client)
        return client

    def wait_go(self) -> float | None:
        """Block until the coordinator says go (returns the shared start time) or stop (returns None)."""
        while not self.control.stop.is_set():
            start_s = self.control.wait_go(TICK_S)
            if start_s is not None:
                return start_s
            self.flush_when_due(SETUP_PHASE)  # an empty batch tells the coordinator this worker lives
        return None

    def run_users(self, users: list[Behaviour]) -> None:
        deadline = time.monotonic() + self.share.duration_s - (time.time() - self.start_s)
        offset_of = dict(self.share.users)
        offsets = sorted(((offset_of[u.ctx.index], u) for u in users), key=lambda pair: pair[0])
        self.origin_ns = time.perf_counter_ns() - int((time.time() - self.start_s) * 1e9)
        if self.schedule is not None:  # open model: the whole pool waits for arrivals from the start
            offsets = [(0.0, user) for _offset, user in offsets]
        self.phase = RUN_PHASE
        self.flush(RUN_PHASE)  # an empty batch: the CPU clock's reading at the start of the measured phase
        while not self.control.stop.is_set() and time.monotonic() < deadline:
            while offsets and time.time() >= self.start_s + offsets[0][0]:
                self.start_user(offsets.pop(0)[1])
            self.flush_when_due(RUN_PHASE)
            self.tick()
        self.stop.set()
        self.stop_users_in_turn()
        self.join_users(time.monotonic() + self.share.timeout_s + 2 * TICK_S)
        self.flush(RUN_PHASE)

    def stop_users_in_turn(self) -> None:
        """Wake the users a group at a time (each ends after its request), shipping batches meanwhile."""
        for event in self.user_stops:
            event.set()
            time.sleep(STOP_STEP_S)  # pacing the wake-ups themselves: nothing to wait on
            self.flush_when_due(RUN_PHASE)

    def join_users(self, until: float) -> None:
        """Wait for the user threads until `until`, shipping a batch every BATCH_S: never silent here."""
        for thread in self.threads:
            while thread.is_alive() and time.monotonic() < until:
                thread.join(max(0.0, min(until, self.next_flush_mono) - time.monotonic()))
                self.flush_when_due(RUN_PHASE)

    def stop_all(self) -> None:
        """Stop everything at once: setup and teardown run few threads, so no herd to stagger."""
        self.stop.set()
        for event in self.user_stops:
            event.set()

    def heartbeat_loop(self) -> None:
        """Say this worker lives every HEARTBEAT_S from a thread of its own: a main loop that is late
        shipping its batch (thousands of busy users) is slow, not hung."""
        while not self.finished.wait(HEARTBEAT_S):
            self.send(Heartbeat(self.id, self.phase, self.active_users, threading.active_count()))

    def start_user(self, user: Behaviour) -> None:
        thread = threading.Thread(
            target=self.user_loop, args=(user,), daemon=True, name=f"user-{user.ctx.index}"
        )
        self.active_users += 1
        self.threads.append(thread)
        thread.start()

    def tick(self) -> None:
        """Wait one tick; how late it ends is the schedule lag every thread of this process suffers."""
        self.health.busy(self.busy.value if self.schedule else None, self.active_users)
        asked_s = time.perf_counter()
        if not self.stop.wait(TICK_S):
            self.health.lag(time.perf_counter() - asked_s - TICK_S)

    def elapsed_s(self) -> float:
        return (time.perf_counter_ns() - self.origin_ns) / 1e9

    def user_loop(self, user: Behaviour) -> None:
        stop = user.ctx.stop  # its group's: the stop reaches the users a group at a time
        try:
            if self.schedule is not None:
                self.arrival_loop(user, self.schedule)
            while self.schedule is None and not stop.is_set():
                user.step()
        except Exception:
            self.send(Crash(self.id, traceback.format_exc()))
        finally:
            self.active_users -= 1

    def arrival_loop(self, user: Behaviour, schedule: ArrivalSchedule) -> None:
        """Open model: take the next arrival, wait until it is due, run a step carrying its intended start."""
        clients = self.clients.get(user.ctx.index, [])
        stop = user.ctx.stop
        while not stop.is_set():
            now_s = self.elapsed_s()
            due_s = schedule.take(now_s)
            if due_s is None:
                return
            if due_s > now_s:
                if stop.wait(due_s - now_s):
                    return
                self.health.lag(
                    self.elapsed_s() - due_s
                )  # an idle thread woke this late: the generator's lag
            schedule.count_late(self.elapsed_s() - due_s)
            for client in clients:
                client.intended_ns = self.origin_ns + int(due_s * 1e9)
            with self.busy:
                user.step()
            for client in clients:
                client.intended_ns = None

    def run_phase(self, phase: str, jobs: list, timeout_s: float) -> list:
        """Setup or teardown jobs on a bounded number of threads; each result, or None if it never ended."""
        results: list = [None] * len(jobs)
        slots = threading.Semaphore(self.share.setup_concurrency)

        def run_one(position: int, fn) -> None:
            try:
                results[position] = fn()
            except Exception:
                results[position] = False
                self.send(Crash(self.id, traceback.format_exc()))
            finally:
                slots.release()

        threads = []
        for position, (_user, fn) in enumerate(jobs):
            while not slots.acquire(timeout=TICK_S):
                self.flush(phase)
            if phase == SETUP_PHASE and self.control.stop.is_set():
                self.stop_all()  # Ctrl-C while users register: start no more, and cut the retries short
                slots.release()
                break
            threads.append(threading.Thread(target=run_one, args=(position, fn), daemon=True))
            threads[-1].start()
        until = time.monotonic() + timeout_s
        for thread in threads:
            while thread.is_alive() and time.monotonic() < until:
                thread.join(min(BATCH_S, max(0.0, until - time.monotonic())))
                self.flush(phase)
        self.flush(phase)
        return results

    def interval_of(self, sample: Sample, interval_s: float) -> int:
        """The interval a sample ended in: a 5 s lock wait lands where it was seen, not in an interval long
        written by the time its answer came (so the time series loses none of the slow failures)."""
        ended_s = sample.start_s + sample.latency_us / 1e6
        return max(0, int((ended_s - self.start_s) // interval_s))

    def flush_when_due(self, phase: str) -> None:
        """Flush when BATCH_S has passed since the last flush: the coordinator never waits longer to hear."""
        if time.monotonic() >= self.next_flush_mono:
            self.flush(phase)

    def flush(self, phase: str) -> None:
        """Ship what was measured since the last flush, grouped by time-series interval."""
        self.next_flush_mono = time.monotonic() + BATCH_S
        samples = [self.pending.popleft() for _ in range(len(self.pending))]
        by_interval: dict[int, list[Sample]] = {}
        interval_s = self.share.interval_s
        for sample in samples:
            by_interval.setdefault(
                self.interval_of(sample, interval_s) if phase == RUN_PHASE else -1, []
            ).append(sample)
        batches = []
        for index, group in by_interval.items():
            stats = Stats()
            stats.add_samples(group)
            batches.append((index, stats.to_plain()))
        self.send(
            Batch(
                self.id,
                phase,
                tuple(batches),
                active_users=self.active_users,
                inflight=self.gauge.value,
                cpu_s=time.process_time(),
                wall_s=time.time(),
                health=self.health.snapshot(),
                arrivals=self.schedule.counts() if self.schedule is not None else None,
            )
        )

    def send(self, message: Message) -> None:
        self.results.put(message)


def open_schedule(share: WorkerShare) -> ArrivalSchedule | None:
    """This worker's share of the open model's arrivals, or None for a closed-model (think time) run."""
    if not share.open_model:
        return None
    segments = build_segments(share.rate, list(share.stages), share.duration_s)
    return ArrivalSchedule(segments, share.worker_id, share.workers)
