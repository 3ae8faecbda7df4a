"""Run-wide Amanflix steps (coordinator): catalog and schedule before the run; cleanup, lock summary after."""

from __future__ import annotations

import random
import secrets

from amanflix_stress.amanflix.api import AdminApi, AmanflixApi
from amanflix_stress.amanflix.catalog import fetch_catalog_retrying
from amanflix_stress.amanflix.detect import busy_window_s, lock_summary
from amanflix_stress.amanflix.records import Accounts, Cleanup, LockIssues, RunFindings
from amanflix_stress.engine.client import HttpClient
from amanflix_stress.engine.coordinator import RunResult
from amanflix_stress.engine.plan import RunPlan
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
    """After the workers stopped (deadline, Ctrl-C or SIGTERM): clean up accounts, summarise lock issues."""
    counters = dict(result.aggregator.counters)
    counters["setup_retries"] = counters.get("setup_retries", 0) + result.shared.get("catalog_retries", 0)
    # an unprepared run (no shared data) created no account
    cleanup = cleanup_accounts(plan, result.shared, counters) if result.shared else NO_CLEANUP
    return {
        "amanflix": Accounts(
            catalog={k: len(v) for k, v in result.shared.get("catalog", {}).items()},
            counters=dict(sorted(counters.items())),
            cleanup=cleanup,
        ),
        "lock_issues": summarise_locks(plan, result),
    }


NO_CLEANUP = Cleanup(method="-", created=0, deleted=0, left_behind=0)


def cleanup_accounts(plan, shared: dict, counters: dict) -> Cleanup:
    created = counters.get("accounts_created", 0) + 1  # + the catalog account
    if not plan.settings["accounts"]["cleanup"]:
        return Cleanup(
            method="none (accounts.cleanup = false)", created=created, deleted=0, left_behind=created
        )
    if shared.get("admin_cleanup"):
        return admin_cleanup(plan, created)
    api = AmanflixApi(new_client(plan))
    deleted = counters.get("accounts_deleted", 0)
    if api.login(shared["bootstrap_user"], shared["password"]).status == 200:
        deleted += api.delete_self(shared["password"]).status == 200
    return Cleanup(
        method="self-delete (no admin credentials)",
        created=created,
        deleted=deleted,
        left_behind=created - deleted,
        rows_left_behind=counters.get("rows_left_behind", 0),
        note="self-delete removes the user row only: its watch history and my-list rows stay in the database",
    )


def admin_cleanup(plan: RunPlan, created: int) -> Cleanup:
    password = plan.admin.password if plan.admin else ""
    admin = AdminApi(new_client(plan))
    if plan.admin is None or not admin.login(plan.admin.user, password):
        return Cleanup(
            method="admin batch delete",
            created=created,
            deleted=0,
            left_behind=created,
            error="admin login failed at cleanup",
        )
    ids = run_account_ids(admin, account_prefix(plan))
    deleted = 0
    for start in range(0, len(ids), BATCH_DELETE_SIZE):
        reply = admin.batch_delete(ids[start : start + BATCH_DELETE_SIZE], password)
        data = reply.json()
        deleted += data.get("deleted_count", 0) if isinstance(data, dict) else 0
    left = len(run_account_ids(admin, account_prefix(plan)))
    return Cleanup(
        method="admin batch delete (also removes watch history and my-list rows)",
        created=created,
        found=len(ids),
        deleted=deleted,
        left_behind=left,
    )


def run_account_ids(admin: AdminApi, prefix: str) -> list[int]:
    return [u["id"] for u in admin.users() if str(u.get("username", "")).startswith(prefix)]


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
