"""The probe's scenarios, one per failure class: what each sends, and what decides its outcome."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from amanflix_stress.amanflix.api import token_subject
from amanflix_stress.amanflix.detect import explicit_lock
from amanflix_stress.amanflix.probe_records import (
    NOT_REPRODUCED,
    REPRODUCED,
    SERVER_SAID,
    SKIPPED,
    VERIFIED,
    Finding,
    Observation,
)
from amanflix_stress.engine.client import Reply

if TYPE_CHECKING:  # the runner imports this module; scenarios only receive it
    from amanflix_stress.amanflix.probe import Account, Held, Probe, Title

# simultaneous first writes per round, and rounds at most (stopping at the first duplicate): a race, so
# several rounds; measured on the sandbox, a round of 4 duplicates 35-75 % of the time
DUPLICATE_WRITERS, DUPLICATE_ROUNDS = 4, 12
BARRIER_TIMEOUT_S = 10.0
BEFORE_S, SENT_S = 120.0, 240.0  # the lost update's starting position and the position sent under the lock


def field_of(reply: Reply, name: str):
    """A field of a 200 JSON object answer, else None."""
    data = reply.json()
    return data.get(name) if reply.status == 200 and isinstance(data, dict) else None


def seconds(reply: Reply) -> float:
    return reply.latency_us / 1e6


def outcome(base: Finding, result: str, summary: str, observed=()) -> Finding:
    return replace(base, outcome=result, summary=summary, observations=tuple(observed))


def start(title: Title | str, readback: str = "", held: Held | None = None) -> Finding:
    """A finding's fixed part; `outcome` fills in the rest."""
    return Finding("", "", "", title=str(title), readback=readback, held_s=held.held_s if held else None)


def history_path(title: Title) -> str:
    return f"GET /api/watch-history/get/{title.content_type}/{title.content_id}"


def visible_failure(probe: Probe, reply: Reply, what: str, base: Finding) -> Finding:
    """Under the lock the server answered an error (strict servers) or something unexpected."""
    if reply.status >= 500:
        summary = (
            f"{what} answered {reply.status} after {seconds(reply):.2f} s under the lock; {base.readback}"
        )
        return outcome(base, REPRODUCED, summary, probe.visible(reply, what))
    return outcome(base, SKIPPED, f"inconclusive: {what} answered {reply.status or reply.error}")


# the lock scenarios (need --db)
def lost_update(probe: Probe) -> Finding:
    """Hold a write lock, update an existing row, release: the 200 echoes old values or the read-back does."""
    account, title = probe.register("lu"), probe.title(0)
    api = account.api
    first = probe.step(
        f"POST /api/watch-history/update {title} watch_timestamp {BEFORE_S}",
        api.update_history(title.body(BEFORE_S)),
    )
    if field_of(first, "watch_timestamp") != BEFORE_S:
        return outcome(start(title), SKIPPED, f"inconclusive: the starting write answered {first.status}")
    held = probe.hold("reserved", lambda: api.update_history(title.body(SENT_S)))
    reply = probe.step(
        f"POST /api/watch-history/update {title} watch_timestamp {SENT_S}", held.reply, "reserved"
    )
    stored = field_of(probe.step(history_path(title), api.get_history(*title.key())), "watch_timestamp")
    echoed = field_of(reply, "watch_timestamp")
    base = start(title, f"the server holds watch_timestamp {stored}", held)
    if reply.status == 200 and echoed == SENT_S and stored == SENT_S:
        probe.check_target_database(held, "a watch-history update")
        return outcome(base, NOT_REPRODUCED, "the update waited for the lock and was stored")
    if reply.status != 200:
        return visible_failure(probe, reply, "the update", base)
    observed = [
        Observation(
            "commit_swallowed",
            VERIFIED,
            f"200 echoing watch_timestamp {echoed} (sent {SENT_S}); the read-back shows {stored}",
        ),
        *probe.log_said("commit_swallowed", "the update"),
        *probe.timing(reply, "the update"),
    ]
    summary = f"200 echoing position {echoed} (sent {SENT_S}); {base.readback}"
    return outcome(base, REPRODUCED, summary, observed)


def lost_insert(probe: Probe) -> Finding:
    """Hold a write lock, first write of a new title: 500 (any page) and no row afterwards."""
    account, title = probe.register("li"), probe.title(1)
    api = account.api
    probe.step("GET /api/auth/profile (warms the server's user cache)", api.profile())
    held = probe.hold("reserved", lambda: api.update_history(title.body(60.0)))
    reply = probe.step(f"POST /api/watch-history/update {title} (first write)", held.reply, "reserved")
    back = probe.step(history_path(title), api.get_history(*title.key()))
    stored = field_of(back, "watch_timestamp")
    base = start(
        title, "the server holds " + ("no row" if back.status == 404 else f"a row at {stored}"), held
    )
    if stored is not None and reply.status == 200:
        probe.check_target_database(held, "a first watch-history write")
        return outcome(base, NOT_REPRODUCED, "the insert waited for the lock and was stored")
    if stored is not None or back.status != 404 or (reply.status != 200 and reply.status < 500):
        return outcome(
            base,
            SKIPPED,
            f"inconclusive: the write answered {reply.status or reply.error}, the read-back {back.status}",
        )
    observed = []
    signature = explicit_lock(reply)
    if reply.status == 200:
        observed.append(
            Observation("commit_swallowed", VERIFIED, "200 for a first write, yet no row is stored")
        )
    elif signature and signature[0] == "lost_insert":
        observed.append(
            Observation(
                "commit_swallowed",
                SERVER_SAID,
                f"{reply.status} naming 'NoneType' object "
                "has no attribute 'isoformat': the handler went on with a rolled-back row",
            )
        )
    observed += probe.log_said("commit_swallowed", "the insert") + probe.visible(reply, "the insert")
    summary = f"{reply.status} after {seconds(reply):.2f} s under the lock; {base.readback}"
    return outcome(base, REPRODUCED, summary, observed)


def locked_read(probe: Probe) -> Finding:
    """Hold an exclusive lock, one read that touches the database: 500 at the busy timeout."""
    account, title = probe.register("lr"), probe.title(2)
    api = account.api
    probe.step(
        f"POST /api/watch-history/update {title} watch_timestamp 90.0", api.update_history(title.body(90.0))
    )
    probe.step("GET /api/auth/profile (warms the server's user cache)", api.profile())
    held = probe.hold("exclusive", lambda: api.get_history(*title.key()))
    reply = probe.step(history_path(title), held.reply, "exclusive")
    base = start(title, held=held)
    if reply.status in (200, 404):
        summary = f"the read answered {reply.status} in {seconds(reply):.2f} s while the lock was held"
        return outcome(base, NOT_REPRODUCED, summary)
    if reply.status < 500:
        return outcome(base, SKIPPED, f"inconclusive: the read answered {reply.status or reply.error}")
    observed = [
        Observation(
            "busy_timeout",
            VERIFIED,
            f"a read answered {reply.status} after {seconds(reply):.2f} s while "
            "another connection held a write lock: readers wait for writers (rollback journal)",
        ),
        *probe.visible(reply, "the read"),
    ]
    return outcome(
        base,
        REPRODUCED,
        f"the read answered {reply.status} after {seconds(reply):.2f} s under the lock",
        observed,
    )


def phantom_registration(probe: Probe) -> Finding:
    """Hold a write lock, register: a 200 whose token does not authenticate, and no account."""
    name, password = probe.credentials("ph")
    api = probe.new_api()
    held = probe.hold("reserved", lambda: api.register(name, password, f"{name}@amanflix-stress.test"))
    reply = probe.step(f"POST /api/auth/register username={name} password={password}", held.reply, "reserved")
    login = probe.step(
        f"POST /api/auth/login username={name} password={password}",
        api.login(name, password, expect=(200, 401)),
    )
    stored = login.status == 200
    if stored:  # the registration went through after all: the account is ours to remove
        probe.adopt(name, password, api)
    base = start("", "the account exists" if stored else f"login answered {login.status}: no account", held)
    token = field_of(reply, "api_key")
    if reply.status == 200 and stored:
        probe.check_target_database(held, "a registration")
        return outcome(base, NOT_REPRODUCED, "the registration waited for the lock and was stored")
    if reply.status != 200 or not token:
        return visible_failure(probe, reply, "the registration", base)
    check_api = probe.new_api()
    check_api.set_token(str(token))
    check = probe.step("GET /api/auth/profile with the registration's token", check_api.profile())
    subject = token_subject(str(token))
    observed = [
        Observation(
            "phantom_token",
            VERIFIED,
            f"register answered 200 with a token for user {subject!r}; that "
            f"token answered {check.status} on GET /api/auth/profile",
        ),
        Observation("commit_swallowed", VERIFIED, "the registration's failed commit was answered 200"),
        *probe.log_said("commit_swallowed", "the registration"),
    ]
    summary = f"200 with a token for user {subject!r} that answers {check.status}; {base.readback}"
    return outcome(base, REPRODUCED, summary, observed)


def lost_mylist_write(probe: Probe) -> Finding:
    """Hold a write lock, add to my list: 200 and the list does not hold it."""
    account, title = probe.register("ml"), probe.title(3)
    api = account.api
    probe.step("GET /api/auth/profile (warms the server's user cache)", api.profile())
    held = probe.hold("reserved", lambda: api.mylist("add", title.content_type, title.content_id))
    reply = probe.step(f"POST /api/mylist/add {title}", held.reply, "reserved")
    check = probe.step(
        f"POST /api/mylist/check {title}", api.mylist("check", title.content_type, title.content_id)
    )
    exists = field_of(check, "exists")
    base = start(title, f"POST /api/mylist/check says exists={exists}", held)
    if reply.status == 200 and exists is True:
        probe.check_target_database(held, "a my-list add")
        return outcome(base, NOT_REPRODUCED, "the add waited for the lock and was stored")
    if reply.status != 200 or exists is not False:
        return visible_failure(probe, reply, "the add", base)
    observed = [
        Observation("commit_swallowed", VERIFIED, f"my-list add answered 200; {base.readback}"),
        *probe.log_said("commit_swallowed", "the add"),
        *probe.timing(reply, "the add"),
    ]
    return outcome(base, REPRODUCED, f"200 but the list does not hold it ({base.readback})", observed)


# the scenarios without a lock
def duplicate_rows(probe: Probe) -> Finding:
    """Simultaneous first writes of one title by one account, a few rounds: two rows for one title."""
    account = probe.register("du")
    rounds: list[str] = []
    for round_index in range(DUPLICATE_ROUNDS):
        title = probe.title(4 + round_index)
        replies = race_first_writes(probe, account, title)
        ids = [field_of(r, "id") if r is not None else None for r in replies]
        rounds.append(f"{title}: row ids {ids}")
        distinct = sorted({i for i in ids if i is not None})
        if len(distinct) > 1 or round_index == DUPLICATE_ROUNDS - 1:  # the evidence: the deciding round
            for index, reply in enumerate(replies):
                if reply is not None:
                    probe.step(f"POST /api/watch-history/update {title} (writer {index + 1})", reply)
        if len(distinct) > 1:
            text = (
                f"{len(ids)} simultaneous first writes of {title} by one account answered 200 with "
                f"{len(distinct)} different row ids {distinct}"
            )
            observed = [Observation("check_then_insert", VERIFIED, text)]
            summary = f"{len(distinct)} rows for {title} (ids {distinct}) in round {round_index + 1}"
            return outcome(start(title, "; ".join(rounds)), REPRODUCED, summary, observed)
    summary = f"{DUPLICATE_ROUNDS} rounds of {DUPLICATE_WRITERS} simultaneous first writes: one row per title"
    return outcome(start("", "; ".join(rounds)), NOT_REPRODUCED, summary)


def race_first_writes(probe: Probe, account: Account, title: Title) -> list[Reply | None]:
    """DUPLICATE_WRITERS connections of one account send their first write of `title` at one instant."""
    barrier = threading.Barrier(DUPLICATE_WRITERS)
    replies: list[Reply | None] = [None] * DUPLICATE_WRITERS
    apis = [probe.new_api() for _ in range(DUPLICATE_WRITERS)]

    def write(index: int) -> None:
        apis[index].set_token(str(account.api.token))
        barrier.wait(BARRIER_TIMEOUT_S)
        replies[index] = apis[index].update_history(title.body(30.0 + index))

    threads = [
        threading.Thread(target=write, args=(i,), name=f"probe-race-{i}") for i in range(DUPLICATE_WRITERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BARRIER_TIMEOUT_S + probe.cfg.timeout_s)
    return replies


def leftovers_after_self_delete(probe: Probe) -> Finding:
    """Write, self-delete, register anew: the deleted account's rows remain, under the reused id."""
    first, title = probe.register("sd"), probe.title(DUPLICATE_ROUNDS + 4)
    api = first.api
    probe.step(
        f"POST /api/watch-history/update {title} watch_timestamp 300.0", api.update_history(title.body(300.0))
    )
    probe.step(f"POST /api/mylist/add {title}", api.mylist("add", title.content_type, title.content_id))
    old_token = str(api.token)
    deleted = probe.step(
        f"DELETE /api/auth/delete password={first.password}", api.delete_self(first.password)
    )
    if deleted.status != 200:
        return outcome(
            start(title), SKIPPED, f"inconclusive: self-delete answered {deleted.status or deleted.error}"
        )
    first.alive = False
    second = probe.register("sd2")
    if second.user_id != first.user_id:
        why = (
            f"inconclusive: the new account got id {second.user_id}, not the deleted account's id "
            f"{first.user_id} (another account was created in between)"
        )
        return outcome(start(title), SKIPPED, why)
    return inherited(probe, second, title, old_token)


def inherited(probe: Probe, second: Account, title: Title, old_token: str) -> Finding:
    """What the new account with the reused id sees of the deleted one."""
    api = second.api
    history = probe.step(history_path(title) + " as the new account", api.get_history(*title.key()))
    check = probe.step(
        f"POST /api/mylist/check {title} as the new account",
        api.mylist("check", title.content_type, title.content_id),
    )
    old = probe.new_api()
    old.set_token(old_token)
    who = field_of(
        probe.step("GET /api/auth/profile with the deleted account's token", old.profile()), "username"
    )
    found = [
        what
        for what, hit in (
            ("watch history", history.status == 200),
            ("my list", field_of(check, "exists") is True),
        )
        if hit
    ]
    readback = (
        f"the new account (same id {second.user_id}) sees {' and '.join(found) or 'nothing'}; the old "
        f"token authenticates as {'the new account' if who == second.name else who or 'nobody'}"
    )
    base = start(title, readback)
    if not found:
        return outcome(base, NOT_REPRODUCED, "the deleted account's rows went with it")
    observed = [
        Observation(
            "self_delete_no_cascade",
            VERIFIED,
            f"after a self-delete the next account (reused id "
            f"{second.user_id}) holds the deleted account's {' and '.join(found)}",
        )
    ]
    if who == second.name:
        observed.append(
            Observation(
                "self_delete_no_cascade",
                VERIFIED,
                "the deleted account's token authenticates as the new account",
            )
        )
    summary = f"the deleted account's {' and '.join(found)} reappear under the reused id {second.user_id}"
    return outcome(base, REPRODUCED, summary, observed)


# (name, needs --db, scenario), in the order they run
SCENARIOS = (
    ("lost update", True, lost_update),
    ("lost insert", True, lost_insert),
    ("locked read", True, locked_read),
    ("phantom registration", True, phantom_registration),
    ("lost my-list write", True, lost_mylist_write),
    ("duplicate rows", False, duplicate_rows),
    ("leftovers after self-delete", False, leftovers_after_self_delete),
)
