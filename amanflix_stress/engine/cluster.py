"""Scale-out on Dask distributed: the same worker function on Dask workers, stats back over a Dask queue."""

from __future__ import annotations

import collections
import contextlib
import logging
import pickle
import queue
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from amanflix_stress import __version__
from amanflix_stress.engine.aggregator import WorkerState
from amanflix_stress.engine.coordinator import READY_GRACE_S, WORKER_SILENCE_S, Coordinator, RunResult
from amanflix_stress.engine.messages import Crash, Message
from amanflix_stress.engine.plan import RunPlan, WorkerShare
from amanflix_stress.engine.worker import run_worker
from amanflix_stress.errors import EXIT_UNREACHABLE, SetupFailed, StressError, UsageError

if TYPE_CHECKING:  # mypy checks the paths that run with the extra; require_dask() guards each entry point
    import dask
    import distributed
else:
    try:  # an optional extra: without it only --cluster is unavailable
        import dask
        import distributed
    except ImportError:  # pragma: no cover - exercised by patching `distributed` to None
        dask = distributed = None

INSTALL_HINT = "pip install 'amanflix-stress[cluster]'"
CONNECT_TIMEOUT_S = 10.0  # reaching the scheduler and seeing at least one worker
LOCAL_MAX_PROCESSES = 64
WATCH_S = 0.5  # one long-poll on the stop event: bounds how long a worker's watcher outlives its task
LIVENESS_EVERY_S = 1.0  # how often the coordinator asks the scheduler which Dask workers are alive
GO_GRACE_S = 30.0  # a worker that never hears go gives up this long after the coordinator would have started
REAP_WAIT_S = 5.0  # after every share said done (or was lost), how long their Dask tasks may take to return
BEAT_EVERY_S = 1.0  # how often the coordinator tells the workers, through the scheduler, that it lives
COORDINATOR_SILENCE_S = 10.0  # a worker that hears no beat this long stops its users: the coordinator died
RESTART_TIMEOUT_S = 20.0  # last resort: restarting a Dask worker whose share ignored the stop
UNREACHABLE_BEATS = 5  # a Dask worker that missed this many heartbeats to the scheduler cannot be restarted
UNREACHABLE_MIN_S = 5.0  # nor one silent this long, whatever the cluster's size
REFUSED = (
    "this share was started again by Dask after its first Dask worker was lost; "
    "refused so the load is not doubled"
)


class ClusterUnreachable(StressError):
    """The Dask scheduler did not answer."""

    exit_code = EXIT_UNREACHABLE


def parse_address(address: str) -> tuple[str, str | int]:
    """`local:N` -> ("local", N); `tcp://host:port` or `tls://host:port` -> ("remote", address)."""
    local = re.fullmatch(r"local:(\d+)", address)
    if local and 1 <= int(local.group(1)) <= LOCAL_MAX_PROCESSES:
        return "local", int(local.group(1))
    if re.fullmatch(r"(tcp|tls)://[^\s/:]+:\d{1,5}", address):
        return "remote", address
    raise UsageError(
        f"--cluster {address!r}: expected tcp://HOST:PORT (a running 'dask scheduler') "
        f"or local:N with N from 1 to {LOCAL_MAX_PROCESSES}"
    )


def require_dask() -> None:
    if distributed is None:
        raise UsageError(f"--cluster needs Dask, which is not installed: {INSTALL_HINT}")


def run_on_cluster(
    address: str,
    plan: RunPlan,
    on_progress: Callable[[dict], None] | None = None,
    workers_given: bool = False,
    on_start: Callable[[float], None] | None = None,
    on_interval: Callable[[dict], None] | None = None,
) -> RunResult:
    """Run the plan on the Dask cluster at `address`: a share per Dask worker thread unless --workers says."""
    require_dask()
    with connect(address) as client:
        slots = worker_slots(client)
        if not workers_given:
            plan = replace(plan, workers=len(slots))
        coordinator = DaskCoordinator(plan, on_progress, client, on_interval)
        if on_start is not None:
            coordinator.on_start = on_start
        return coordinator.run()


@contextlib.contextmanager
def connect(address: str) -> Iterator[distributed.Client]:
    """A client on the cluster (started here for local:N), checked to run our version; closed on exit."""
    _kind, where = parse_address(address)
    with contextlib.ExitStack() as stack:
        if isinstance(where, int):  # local:N, the only kind parsed to a number
            cluster = stack.enter_context(start_local_cluster(where))
            scheduler = cluster.scheduler_address
        else:
            scheduler = where
        client = stack.enter_context(_client(scheduler))
        check_workers(client, address)
        yield client


@contextlib.contextmanager
def start_local_cluster(processes: int) -> Iterator[distributed.LocalCluster]:
    """N single-threaded worker processes on loopback; no dashboard or memory limit; lost tasks not re-run.
    Their scratch space is a folder of the run's, removed after (Dask's default stays behind in /tmp)."""
    with (
        tempfile.TemporaryDirectory(prefix="amanflix-dask-") as scratch,
        dask.config.set({"temporary-directory": scratch}),
    ):
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}), _sigint_ignored():
            local = distributed.LocalCluster(
                n_workers=processes,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address="127.0.0.1:0",
                scheduler_kwargs={"dashboard": False},
                memory_limit=0,
                silence_logs=logging.ERROR,
                local_directory=scratch,
            )
        with local:
            yield local


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Worker processes inherit an ignored SIGINT, so a terminal's Ctrl-C reaches only the coordinator."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _client(address: str) -> distributed.Client:
    try:
        return distributed.Client(
            address, timeout=CONNECT_TIMEOUT_S, set_as_default=False, name="amanflix-stress"
        )
    except (OSError, TimeoutError) as exc:
        raise ClusterUnreachable(
            f"no Dask scheduler answered at {address} within {CONNECT_TIMEOUT_S:.0f} s "
            f"({type(exc).__name__}): start 'dask scheduler' there or fix --cluster"
        ) from None


def check_workers(client: distributed.Client, address: str) -> None:
    """At least one Dask worker, and every one of them runs this version of amanflix-stress."""
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError):
        raise SetupFailed(
            f"the Dask scheduler at {address} has no workers: run 'dask worker {address}' "
            "on each load machine"
        ) from None
    try:
        versions = client.run(worker_version, on_error="return")
    except Exception as exc:  # the scheduler itself failed the call
        raise SetupFailed(
            f"the Dask workers could not be asked for their amanflix-stress ({type(exc).__name__}): "
            f"{INSTALL_HINT} on every worker machine"
        ) from None
    for addr, answer in sorted(versions.items()):
        if isinstance(answer, BaseException):  # cannot unpickle our function (no package), or unreachable
            raise SetupFailed(
                f"Dask worker {addr} cannot run amanflix-stress ({type(answer).__name__}): "
                f"{INSTALL_HINT} on that machine, and check the scheduler and it reach each other"
            )
    wrong = {addr: v for addr, v in versions.items() if v != __version__}
    for addr, version in sorted(wrong.items())[:1]:
        raise SetupFailed(
            f"Dask worker {addr} has amanflix-stress {version}, this is {__version__}: "
            "install the same version on every machine"
        )


def worker_version() -> str:
    return __version__


def worker_slots(client: distributed.Client) -> list[str]:
    """One entry per Dask worker thread, interleaved across workers, so shares spread over machines first."""
    workers = client.scheduler_info()["workers"]
    depth = max((w["nthreads"] for w in workers.values()), default=0)
    return [addr for level in range(depth) for addr, w in sorted(workers.items()) if w["nthreads"] > level]


def share_caps(max_concurrent: int, shares: int) -> list[int]:
    """The run-wide in-flight cap split across shares (a round trip to the scheduler per request is timed)."""
    if max_concurrent <= 0:
        return [0] * shares
    if max_concurrent < shares:
        raise UsageError(
            f"--max-concurrent {max_concurrent} is below the {shares} shares on the cluster, and each "
            f"share needs one slot: raise it or pass --workers {max_concurrent}"
        )
    return [max_concurrent // shares + (1 if i < max_concurrent % shares else 0) for i in range(shares)]


class ResultStream:
    """The coordinator's end of the results: a Dask queue read like a multiprocessing queue."""

    def __init__(self, dask_queue: distributed.Queue) -> None:
        self.queue = dask_queue
        self.buffer: collections.deque = collections.deque()
        self.lost: str = ""  # why the scheduler stopped answering, if it did

    def get(self, timeout: float | None = None):
        if not self.buffer:
            self._fetch(timeout)
        if not self.buffer:
            raise queue.Empty
        return self.buffer.popleft()

    def get_nowait(self):
        return self.get(None)

    def _fetch(self, timeout_s: float | None) -> None:
        """Everything waiting, not blocking; then a local pause (a timed get logs errors on the scheduler)."""
        try:
            items = self.queue.get(batch=True)
        except TimeoutError:  # a slow scheduler; the liveness check decides whether it is gone
            items = []
        except Exception as exc:  # closed comms, or a client that gave up reconnecting (scheduler is None)
            self.lost, items = f"lost contact with the Dask scheduler ({type(exc).__name__})", []
        self.buffer.extend(pickle.loads(item) for item in items)
        if not items and timeout_s:
            time.sleep(timeout_s)


class ResultSender:
    """A worker's end: each message pickled, so the records arrive exactly as a local queue delivers them."""

    def __init__(self, dask_queue: distributed.Queue) -> None:
        self.queue = dask_queue

    def put(self, message: Message) -> None:
        self.queue.put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


class ClusterControl:
    """The coordinator's end of stop and go. A signal handler sets a local flag; the run loop publishes it."""

    def __init__(self, client: distributed.Client, prefix: str) -> None:
        self.names = {
            "results": f"{prefix}-results",
            "stop": f"{prefix}-stop",
            "go": f"{prefix}-go",
            "alive": f"{prefix}-alive",
        }
        self.stop = threading.Event()
        self.remote_stop = distributed.Event(self.names["stop"], client=client)
        self.go = distributed.Event(self.names["go"], client=client)
        self.alive = distributed.Variable(self.names["alive"], client=client)
        self.published = False
        self.beats = 0
        self.next_beat_mono = 0.0

    def set_go(self, start_s: float) -> None:
        self.go.set()  # each worker counts from hearing go on its own clock: skew between hosts cancels out

    def publish(self) -> None:
        """Called on every tick of the run loop: the stop once it is asked for, and a beat every second
        (a coordinator killed with -9 sends neither, and its workers notice the silence)."""
        if self.stop.is_set() and not self.published:
            with contextlib.suppress(Exception):  # no scheduler: each worker's own deadline still stops it
                self.remote_stop.set()
                self.published = True
        now = time.monotonic()
        if now >= self.next_beat_mono:
            self.next_beat_mono, self.beats = now + BEAT_EVERY_S, self.beats + 1
            with contextlib.suppress(Exception):
                self.alive.set(self.beats)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the scheduler may be gone; nothing is left to tidy then
            self.remote_stop.clear()
            self.go.clear()


class RemoteControl:
    """A worker's view: a stop flag fed by the scheduler's stop event, go, its part of the in-flight cap."""

    def __init__(self, client: distributed.Client, spec: dict) -> None:
        self.stop = threading.Event()
        self.limiter = (
            threading.BoundedSemaphore(spec["max_concurrent"]) if spec["max_concurrent"] > 0 else None
        )
        self.go = distributed.Event(spec["go"], client=client)
        self.remote_stop = distributed.Event(spec["stop"], client=client)
        self.alive = distributed.Variable(spec["alive"], client=client)
        self.last_beat: object = None
        self.beat_seen_mono = time.monotonic()
        self.give_up_mono = time.monotonic() + spec["go_timeout_s"]
        self.closed = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True, name="amanflix-stress-stop-watcher")
        self.watcher.start()

    def wait_go(self, timeout_s: float) -> float | None:
        if time.monotonic() >= self.give_up_mono:  # the coordinator is gone: end instead of waiting forever
            self.stop.set()
            return None
        return time.time() if self.go.wait(timeout_s) else None

    def _watch(self) -> None:
        while not self.closed.is_set() and not self.stop.is_set():
            try:
                if self.remote_stop.wait(WATCH_S) or self.coordinator_silent():
                    self.stop.set()
            except Exception:  # scheduler unreachable: the worker's own deadline still ends the run
                self.closed.wait(WATCH_S)

    def coordinator_silent(self) -> bool:
        """True once the coordinator's beat stayed the same for COORDINATOR_SILENCE_S: it died (-9 too)."""
        try:
            beat = self.alive.get(timeout=WATCH_S)
        except TimeoutError:  # not set yet: the coordinator sets it on its first tick
            beat = None
        now = time.monotonic()
        if beat != self.last_beat:
            self.last_beat, self.beat_seen_mono = beat, now
        return now - self.beat_seen_mono > COORDINATOR_SILENCE_S

    def close(self) -> None:
        self.closed.set()
        self.watcher.join(2 * WATCH_S)


def run_share(share: WorkerShare, spec: dict) -> str:
    """The Dask task: one worker's share, run at most once, with results and control through the scheduler."""
    client = distributed.get_client()
    distributed.secede()  # a long task: leave the thread pool so any number of shares fit on a worker
    results = ResultSender(distributed.Queue(spec["results"], client=client))
    claim = distributed.Queue(spec["claim"], client=client)
    try:
        if not claim.get(batch=True):
            results.put(Crash(share.worker_id, REFUSED))
            return "refused"
        run_claimed(share, results, RemoteControl(client, spec))
        return "done"
    finally:  # the scheduler keeps a queue while any client holds it
        claim.close()
        results.queue.close()


def run_claimed(share: WorkerShare, results: ResultSender, control: RemoteControl) -> None:
    try:
        run_worker(share, results, control)
    finally:
        control.close()


class SchedulerHeartbeats:
    """When each Dask worker's heartbeat to the scheduler last moved, by this machine's clock (the scheduler's
    own clock may be another host's). A worker it stopped hearing from is off the network (no restart can
    reach it) or frozen whole (its users send nothing, and its deadline stops them once it thaws): waiting
    for it, or restarting it, only makes the run end late."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.moved: dict[str, tuple[float | None, float]] = {}  # address -> (scheduler's last_seen, when)

    def note(self, workers: Mapping[str, Mapping[str, Any]]) -> None:
        """Record the scheduler's `last_seen` of each worker (`scheduler_info()["workers"]`)."""
        now = self.clock()
        for address, worker in workers.items():
            seen = worker.get("last_seen")
            if address not in self.moved or self.moved[address][0] != seen:
                self.moved[address] = (seen, now)

    def unreachable_s(self, address: str) -> float:
        """How long the scheduler has not heard from this worker, once that is past the limit; else 0."""
        if address not in self.moved:
            return 0.0
        silent_s = self.clock() - self.moved[address][1]
        # Dask spaces the heartbeats by the cluster's size (0.5 s up to 10 workers, 6 s at 1,000)
        beat_s = distributed.scheduler.heartbeat_interval(len(self.moved))
        return silent_s if silent_s > max(UNREACHABLE_MIN_S, UNREACHABLE_BEATS * beat_s) else 0.0


class DaskCoordinator(Coordinator):
    """The local coordinator's run, with each worker's share a Dask task instead of a local process."""

    def __init__(
        self,
        plan: RunPlan,
        on_progress: Callable[[dict], None] | None,
        client: distributed.Client,
        on_interval: Callable[[dict], None] | None = None,
    ):
        self.client = client
        self.prefix = f"amanflix-stress-{plan.run_id}-{uuid.uuid4().hex[:8]}"
        super().__init__(plan, on_progress, on_interval)
        self.futures: dict[int, distributed.Future] = {}
        self.placement: dict[int, str] = {}
        self.claims: dict[int, distributed.Queue] = {}
        self.slots: list[str] = []
        self.caps: list[int] = []
        self.next_liveness_mono = 0.0
        self.heartbeats = SchedulerHeartbeats()

    def _check_limits(self, connections_per_user: int) -> None:
        """The users run on the Dask hosts, not here: each worker raises its own descriptor limit there, and
        this machine's limits say nothing about theirs, so the report states none rather than wrong ones."""
        self.limits = None

    def _make_results(self) -> ResultStream:
        return ResultStream(distributed.Queue(f"{self.prefix}-results", client=self.client))

    def _make_control(self) -> ClusterControl:
        return ClusterControl(self.client, self.prefix)

    def _launch(self, share: WorkerShare) -> None:
        wid = share.worker_id
        if not self.slots:
            self.slots = worker_slots(self.client)
            self.caps = share_caps(self.plan.max_concurrent, min(self.plan.workers, self.plan.users))
        address = self.slots[wid % len(self.slots)]
        claim = self.claims[wid] = distributed.Queue(f"{self.prefix}-claim-{wid}", client=self.client)
        claim.put(wid)  # the one ticket: a second start of this share finds none
        spec = {
            **self.control.names,
            "claim": claim.name,
            "max_concurrent": self.caps[wid],
            "go_timeout_s": self.plan.setup_timeout_s + READY_GRACE_S + GO_GRACE_S,
        }
        self.futures[wid] = self.client.submit(
            run_share,
            share,
            spec,
            key=f"{self.prefix}-worker-{wid}",
            pure=False,
            retries=0,
            workers=[address],
            allow_other_workers=False,
        )
        self.placement[wid] = address
        self.aggregator.workers[wid] = WorkerState(wid, users=len(share.users), host=address)

    def _check_workers(self) -> None:
        self.control.publish()
        now = time.monotonic()
        if now < self.next_liveness_mono:
            return
        self.next_liveness_mono = now + LIVENESS_EVERY_S
        alive = self._alive_workers()
        for wid, future in self.futures.items():
            state = self.aggregator.workers[wid]
            if state.status in ("done", "died", "hung"):
                continue
            lost = self._loss(wid, future, alive)
            if lost:
                self._drain()
                if state.status != "done":
                    state.status, state.detail = (
                        "died",
                        f"{lost}; its {state.users} users stopped, not re-run",
                    )
                    self._announce(state)
            elif now - state.last_seen_mono > WORKER_SILENCE_S and state.status != "starting":
                # a host cut off the network says nothing and the scheduler keeps it for minutes: silence
                state.status, state.detail = (
                    "hung",
                    f"Dask worker {self.placement[wid]} silent for {WORKER_SILENCE_S:g} s (host down or cut "
                    f"off?); its {state.users} users lost, not re-run",
                )
                self._announce(state)

    def _announce(self, state: WorkerState) -> None:
        """One line the moment a share is lost, by worker, host and Dask address; the report repeats it."""
        host = f" on {state.host}" if state.host else ""
        sys.stderr.write(f"amanflix-stress: worker {state.id}{host} lost ({state.status}): {state.detail}\n")
        sys.stderr.flush()

    def _alive_workers(self) -> set[str] | None:
        """The Dask workers the scheduler knows, or None when the scheduler is out of reach."""
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except Exception:  # as in ResultStream._fetch: any failure here means no answer
            return None
        if self.client.status != "running" or "workers" not in info:
            return None
        self.heartbeats.note(info["workers"])
        return set(info["workers"])

    def _loss(self, wid: int, future, alive: set[str] | None) -> str:
        """Why this share's task can no longer report, or "" while it can."""
        address = self.placement[wid]
        if alive is None or self.results.lost:
            return self.results.lost or "lost the Dask scheduler"
        if address not in alive:
            return f"Dask worker {address} left the cluster"
        if future.status == "error":
            error = future.exception(timeout=5)
            return f"its Dask task failed on {address} ({type(error).__name__}: {str(error)[:200]})"
        if future.status in ("cancelled", "lost"):
            return f"its Dask task was {future.status} on {address}"
        if future.status == "finished":
            return f"its Dask task on {address} ended without saying done"
        return ""

    def _all_settled(self, statuses: tuple[str, ...]) -> bool:
        return all(self.aggregator.workers[w].status in statuses for w in self.futures)

    def _reap(self) -> None:
        """Publish stop, give the tasks a moment to return; restart a Dask worker still running a share."""
        self.control.stop.set()
        steps = (self.control.publish, self._wait_for_shares, self._restart_stuck, self._drain, self._release)
        for step in steps:
            # the scheduler may be gone: each step still gets its chance, and each worker's own deadline and
            # the coordinator's silenced beat stop their users anyway
            with contextlib.suppress(Exception):
                step()
        self.control.close()

    def _wait_for_shares(self) -> None:
        """Up to REAP_WAIT_S for the shares' tasks to return, but not for one on a host cut off: it cannot."""
        self._alive_workers()  # fresh heartbeats: the last liveness check may be a second old
        running = [
            f
            for w, f in self.futures.items()
            if self.aggregator.workers[w].status != "died"
            and not self.heartbeats.unreachable_s(self.placement[w])
        ]
        if running and self.interrupts < 2:
            with contextlib.suppress(TimeoutError), self.client.as_current():  # wait() asks for "its" client
                distributed.wait(running, timeout=REAP_WAIT_S)

    def _release(self) -> None:
        self.client.cancel(list(self.futures.values()), force=True)
        for claim in self.claims.values():
            claim.close()
        self.results.queue.close()

    def _restart_stuck(self) -> None:
        """The last resort, for a share that ignored both the stop event and its own deadline."""
        stuck = {
            w: self.placement[w]
            for w, f in self.futures.items()
            if not f.done() and self.aggregator.workers[w].status != "died"
        }
        if not stuck:
            return
        self._alive_workers()
        cut_off = {w: self.heartbeats.unreachable_s(a) for w, a in stuck.items()}
        cut_off = {w: silent_s for w, silent_s in cut_off.items() if silent_s}
        reachable = sorted({a for w, a in stuck.items() if w not in cut_off})
        if reachable:
            self.client.restart_workers(reachable, timeout=RESTART_TIMEOUT_S, raise_for_error=False)
        for wid in stuck:
            state = self.aggregator.workers[wid]
            note = (
                f"its Dask worker was not restarted: the scheduler has not heard from it for "
                f"{cut_off[wid]:.0f} s (its users stop on their own, at the run's deadline or "
                f"{COORDINATOR_SILENCE_S:g} s after they lose the coordinator's beat)"
                if wid in cut_off
                else "its Dask worker was restarted to stop it"
            )
            state.detail = (state.detail + "; " if state.detail else "") + note
