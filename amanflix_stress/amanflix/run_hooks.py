"""Run-wide Amanflix steps (coordinator): catalog and schedule before the run; cleanup, lock summary after."""

from __future__ import annotations

import random
import re
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from amanflix_stress.amanflix.api import AdminApi, AmanflixApi
from amanflix_stress.amanflix.catalog import fetch_catalog_retrying
from amanflix_stress.amanflix.detect import VERIFIED, busy_window_s, lock_summary, tagged
from amanflix_stress.amanflix.diagnosis import diagnose_run
from amanflix_stress.amanflix.records import Accounts, Cleanup, LeftAccount, LockIssues, RunFindings
from amanflix_stress.engine.client import HttpClient, Reply
from amanflix_stress.engine.coordinator import RunResult
from amanflix_stress.engine.plan import AdminCredentials, RunPlan
from amanflix_stress.engine.sample import Sample
from amanflix_stress.engine.stats import Stats
from amanflix_stress.errors import SetupFailed, UsageError

BATCH_DELETE_SIZE = 100


def new_client(plan, record=None) -> HttpClient:
    return HttpClient(
        plan.base_url,
        -1,
        record or (lambda sample: None),
        timeout_s=plan.timeout_s,
        connect_timeout_s=plan.connect_timeout_s,
    )


def account_prefix(plan) -> str:
    return f"{plan.settings['accounts']['prefix']}{plan.run_id}"


def prepare_run(plan: RunPlan) -> dict:
    """Before the workers start: a password for the run's accounts, the real catalog, the burst schedule."""
    password = secrets.token_urlsafe(12)
    api = AmanflixApi(new_client(plan))
    name = account_prefix(plan) + "cat"
    reply = api.register(name, password, f"{name}@amanflix-stress.test")
    data = reply.json()
    if reply.status != 200 or not isinstance(data, dict) or not data.get("api_key"):
        raise SetupFailed(
            f"could not register a test account to read the catalog: POST /api/auth/register "
            f"answered {reply.status or reply.error}; is {plan.base_url} an Amanflix API?"
        )
    api.set_token(data["api_key"])
    try:
        catalog, retries = fetch_catalog_retrying(api, plan.settings["accounts"]["setup_retries"])
    except SetupFailed:
        api.delete_self(password)
        raise
    admin = plan.admin  # the CLI read it from the flags or the environment; workers never see it
    if admin and not AdminApi(new_client(plan)).login(admin.user, admin.password):
        api.delete_self(password)
        names = plan.settings["accounts"]
        raise UsageError(
            f"admin login failed: check ${names['admin_username_env']} and ${names['admin_password_env']}"
        )
    return {
        "catalog": catalog,
        "password": password,
        "admin_cleanup": bool(admin and plan.settings["accounts"]["cleanup"]),
        "bursts": burst_schedule(plan, catalog),
        "seed": plan.seed,
        "bootstrap_user": name,
        "catalog_retries": retries,
    }


def burst_schedule(plan, catalog: dict) -> list:
    """[offset s, item] of each burst: the same title for everybody, chosen from the run seed."""
    every_s = plan.settings["watch_history"]["burst_every_s"]
    if every_s <= 0 or not catalog["movies"]:
        return []
    rng = random.Random(f"{plan.seed}:bursts")
    bursts, offset_s = [], every_s
    while offset_s < plan.duration_s:
        movie_id, runtime_s = rng.choice(catalog["movies"])
        bursts.append([offset_s, ["movie", movie_id, None, None, runtime_s, round(rng.uniform(60, 600), 1)]])
        offset_s += every_s
    return bursts


def finish_run(plan: RunPlan, result: RunResult) -> RunFindings:
    """After the workers stopped (deadline, Ctrl-C, SIGTERM, a dead worker): remove every account the run
    created or may have created, counted on the server; summarise lock issues and diagnose them."""
    counters = dict(result.aggregator.counters)
    counters["setup_retries"] = counters.get("setup_retries", 0) + result.shared.get("catalog_retries", 0)
    samples: list[Sample] = []
    # an unprepared run (no shared data) created no account
    cleanup = (
        cleanup_accounts(plan, result.shared, counters, samples.append, result.abandon)
        if result.shared
        else NO_CLEANUP
    )
    if samples:  # cleanup's requests belong to the TEARDOWN table (a lost delete is a lock issue too)
        stats = Stats()
        stats.add_samples(samples)
        result.aggregator.phases["teardown"].merge(stats)
    accounts = Accounts(
        catalog={k: len(v) for k, v in result.shared.get("catalog", {}).items()},
        counters=dict(sorted(counters.items())),
        cleanup=cleanup,
        bursts_s=tuple(offset_s for offset_s, _item in result.shared.get("bursts", ())) or None,
    )
    locks = summarise_locks(plan, result)
    return {"amanflix": accounts, "lock_issues": locks, "diagnosis": diagnose_run(locks, accounts)}


NO_CLEANUP = Cleanup(method="-", created=0, deleted=0, left_behind=0)
SELF_DELETE = "self-delete (no admin credentials)"
ADMIN_DELETE = "admin batch delete (also removes watch history and my-list rows)"
ROWS_NOTE = (
    "self-delete removes the user row only: the server keeps its watch history and my-list rows "
    "(counted from what each account listed before deleting itself; duplicates a listing groups stay hidden)"
)
RUN_ID_PATTERN = "[0-9a-f]{8}"  # RunPlan.run_id: uuid4().hex[:8]
# three password checks per account (login, delete, the proof it is gone): ~0.6 s at the real server's ~5
# bcrypt/s, so a long list is not cut at teardown_timeout_s
SELF_DELETE_S_PER_ACCOUNT = 1.0
LIST_PAGES_MAX = 20  # pages of a listing read to count an account's rows: bounds a huge history


def account_names(plan) -> list[str]:
    """Every account the run may have created: the catalog reader, then one per user index."""
    base = account_prefix(plan)
    return [base + "cat"] + [f"{base}u{index}" for index in range(plan.users)]


def account_pattern(prefix: str, run_id: str | None = None) -> re.Pattern:
    """Names a run creates (`<prefix><run id>u<index>` or `...cat`; `r<n>` from older releases' retries):
    nothing else matches, so an account a person made is never touched."""
    run = re.escape(run_id) if run_id else RUN_ID_PATTERN
    return re.compile(rf"{re.escape(prefix)}{run}(?:u\d+(?:r\d+)?|cat)")


def cleanup_accounts(plan, shared: dict, counters: dict, record=None, abandon=None) -> Cleanup:
    """Remove the run's accounts, whoever created them and whatever ended the run; count on the server."""
    abandon = abandon or threading.Event()
    if not plan.settings["accounts"]["cleanup"]:
        created = counters.get("accounts_created", 0) + 1  # + the catalog account
        return Cleanup(
            method="none (accounts.cleanup = false)", created=created, deleted=0, left_behind=created
        )
    if shared.get("admin_cleanup") and plan.admin is not None:
        admin = AdminApi(new_client(plan, record))
        if admin.login(plan.admin.user, plan.admin.password):
            return admin_cleanup(plan, admin, abandon)
        fallback = "admin login failed at cleanup: each account deleted itself instead"
        return replace(self_delete_cleanup(plan, shared, record, abandon), error=fallback)
    return self_delete_cleanup(plan, shared, record, abandon)


@dataclass(frozen=True)
class Sweep:
    """An admin batch delete by name pattern: the matching users before and after, and refusals by id."""

    before: tuple[dict, ...]
    after: tuple[dict, ...]
    refused: Mapping[int, str]

    @property
    def removed(self) -> list[str]:
        left = {u["id"] for u in self.after}
        return [u["username"] for u in self.before if u["id"] not in left]

    def not_removed(self) -> tuple[LeftAccount, ...]:
        return tuple(
            LeftAccount(u["username"], self.refused.get(u["id"], "still listed after the batch delete"))
            for u in self.after
        )


def admin_sweep(admin: AdminApi, password: str, pattern: re.Pattern, abandon=None) -> Sweep:
    """List the users matching `pattern`, batch delete them (unless abandoned), list again."""
    before = matching_users(admin, pattern)
    refused: dict[int, str] = {}
    ids = [u["id"] for u in before]
    for start in range(0, len(ids), BATCH_DELETE_SIZE):
        if abandon is not None and abandon.is_set():
            break
        batch = ids[start : start + BATCH_DELETE_SIZE]
        refused.update(batch_refusals(admin.batch_delete(batch, password), batch))
    return Sweep(tuple(before), tuple(matching_users(admin, pattern)), refused)


def batch_refusals(reply, batch: list[int]) -> dict[int, str]:
    """user id -> why the batch delete refused it; every id of the batch when the call itself failed."""
    data = reply.json()
    if reply.status == 200 and isinstance(data, dict):
        failed = [f for f in data.get("failed", ()) if isinstance(f, dict)]
        return {int(f["id"]): str(f.get("reason")) for f in failed if str(f.get("id", "")).isdigit()}
    return {uid: f"batch delete answered {reply.status or reply.error}" for uid in batch}


def matching_users(admin: AdminApi, pattern: re.Pattern) -> list[dict]:
    """The users whose name matches; raises SetupFailed when the list cannot be read (no count to give)."""
    return [u for u in admin.users() if pattern.fullmatch(str(u.get("username", "")))]


def admin_cleanup(plan: RunPlan, admin: AdminApi, abandon) -> Cleanup:
    password = plan.admin.password if plan.admin else ""
    pattern = account_pattern(plan.settings["accounts"]["prefix"], plan.run_id)
    try:
        sweep = admin_sweep(admin, password, pattern, abandon)
    except SetupFailed as exc:
        names = account_names(plan)
        return Cleanup(
            method=ADMIN_DELETE,
            created=0,
            deleted=0,
            left_behind=0,
            error=f"{exc}: the run's accounts could not be counted",
            not_removed=tuple(LeftAccount(n, "not checked: the user list could not be read") for n in names),
            unchecked=len(names),
        )
    return Cleanup(
        method=ADMIN_DELETE,
        created=len(sweep.before),
        found=len(sweep.before),
        deleted=len(sweep.removed),
        left_behind=len(sweep.after),
        not_removed=sweep.not_removed() or None,
        error="cleanup abandoned (interrupted again)" if abandon.is_set() and sweep.after else None,
    )


@dataclass(frozen=True)
class Outcome:
    """One possible account after self-delete cleanup: did it exist, is it gone, what it held, or why not."""

    name: str
    existed: bool | None  # None: nobody could tell
    deleted: bool = False
    rows: int = 0
    reason: str = ""


def self_delete_cleanup(plan, shared: dict, record, abandon) -> Cleanup:
    """Log in as each possible account (a 401 says it does not exist), count what it holds, delete it."""
    password, names = shared["password"], account_names(plan)
    until = time.monotonic() + max(plan.teardown_timeout_s, len(names) * SELF_DELETE_S_PER_ACCOUNT)
    with ThreadPoolExecutor(max(1, plan.setup_concurrency), thread_name_prefix="cleanup") as pool:
        outcomes = list(
            pool.map(lambda name: remove_self(plan, name, password, record, abandon, until), names)
        )
    existed = [o for o in outcomes if o.existed]
    deleted = [o for o in existed if o.deleted]
    unchecked = [o for o in outcomes if o.existed is None]
    left = [o for o in outcomes if o.existed is None or (o.existed and not o.deleted)]
    return Cleanup(
        method=SELF_DELETE,
        created=len(existed),
        deleted=len(deleted),
        left_behind=len(existed) - len(deleted),
        rows_left_behind=sum(o.rows for o in deleted),
        note=ROWS_NOTE,
        not_removed=tuple(LeftAccount(o.name, o.reason) for o in left) or None,
        unchecked=len(unchecked) or None,
    )


def remove_self(plan, name: str, password: str, record, abandon, until: float) -> Outcome:
    """One account: absent (login 401), or its rows counted, then deleted and proved gone."""
    if abandon.is_set() or time.monotonic() >= until:
        why = "cleanup abandoned (interrupted again)" if abandon.is_set() else "cleanup ran out of time"
        return Outcome(name, None, reason=f"not checked: {why}")
    detect = plan.settings.get("detection", {})
    api = AmanflixApi(new_client(plan, record), detect.get("lock_wait_s", 5.0))
    try:
        login = api.login(name, password, expect=(200, 401))
        if login.status == 401:
            return Outcome(name, False)
        if login.status != 200:
            return Outcome(name, None, reason=f"not checked: login answered {login.status or login.error}")
        rows = held_rows(api)
        reply = None
        for _attempt in range(plan.settings["accounts"]["setup_retries"] + 1):
            reply = api.delete_self(password)
            if reply.status == 200 and gone(api, name, password):
                return Outcome(name, True, deleted=True, rows=rows)
        status = reply.status or reply.error if reply is not None else "-"
        return Outcome(name, True, reason=f"self-delete failed (last answer {status}); the account logs in")
    finally:
        api.client.close()


def gone(api: AmanflixApi, name: str, password: str) -> bool:
    """A deleted account cannot log in (the server can answer 200 and lose the delete under a lock)."""
    probe = api.call(
        "POST /api/auth/login",
        "POST",
        "/api/auth/login",
        form={"username": name, "password": password},
        expect=(200, 401),
        check=deleted_check,
    )
    return probe.status == 401


def deleted_check(reply: Reply):
    """A delete answered 200 whose account still logs in: verified lost, as a refuting read-back shows."""
    if reply.status == 200:
        return "lost_write", tagged(
            VERIFIED, "self-delete answered 200, but the account still logs in: the delete was rolled back"
        )
    return None


def held_rows(api: AmanflixApi) -> int:
    """Watch-history titles and my-list items the account lists: what self-delete leaves on the server."""
    history = api.history(per_page=50).json()
    titles = history.get("total", 0) if isinstance(history, dict) else 0
    items = 0
    for page in range(1, LIST_PAGES_MAX + 1):
        listed = api.mylist_all(page=page, per_page=50).json()
        if not isinstance(listed, list):
            break
        items += len(listed)
        if len(listed) < 50:
            break
    return int(titles) + items


@dataclass(frozen=True)
class Leftovers:
    """What the cleanup command removed, and what it could not."""

    removed: tuple[str, ...]
    not_removed: tuple[LeftAccount, ...]


def remove_leftovers(
    base_url: str, admin: AdminCredentials, prefix: str, run_id: str | None, timeout_s: float
) -> Leftovers:
    """The `cleanup` command: an admin batch delete of one earlier run's accounts (or every run's, with
    run_id None), matched by the tool's name pattern and nothing else."""
    api = AdminApi(HttpClient(base_url, -1, lambda sample: None, timeout_s=timeout_s, connect_timeout_s=3.0))
    if not api.login(admin.user, admin.password):
        raise UsageError("admin login failed: check the admin user and password")
    sweep = admin_sweep(api, admin.password, account_pattern(prefix, run_id))
    return Leftovers(tuple(sweep.removed), sweep.not_removed())


def summarise_locks(plan: RunPlan, result: RunResult) -> LockIssues:
    agg = result.aggregator
    everything = Stats()  # setup finds phantom registrations, the final verification pass lost writes
    for stats in agg.phases.values():
        everything.merge(stats)
    counters = agg.counters
    verified = {
        k: counters.get(k, 0)
        for k in (
            "watch_writes_acked",
            "echoes_checked",
            "echoes_explained_by_other_device",
            "readbacks",
            "final_keys_verified",
            "history_listings_checked",
            "mylist_items_verified",
            "phantom_registrations",
        )
    }
    detection = plan.settings.get("detection", {})
    window = busy_window_s(detection.get("lock_wait_s", 5.0), detection.get("lock_wait_tolerance_s", 0.6))
    return lock_summary(
        agg.error_rows(everything),
        agg.user_rows(everything),
        everything.requests,
        result.intervals,
        counters,
        verified,
        window,
    )
