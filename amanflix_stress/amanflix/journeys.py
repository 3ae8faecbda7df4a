"""Amanflix users: registration, browse and watch journeys, two-device accounts, bursts and a final check."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from amanflix_stress.amanflix import run_hooks
from amanflix_stress.amanflix.api import TOKEN_RETRY_REASONS, AmanflixApi, error_reason, token_subject
from amanflix_stress.amanflix.detect import VERIFIED, missing_write_class, tagged
from amanflix_stress.amanflix.ledger import WriteLedger, same
from amanflix_stress.engine.client import Reply
from amanflix_stress.engine.coordinator import RunResult
from amanflix_stress.engine.plan import RunPlan
from amanflix_stress.engine.user import User, UserContext

SEARCH_TERMS = ("the", "a", "man", "night", "star", "love", "war", "dark", "day", "world")
PROGRESS_STEP_S = (5.0, 15.0)  # playback between two updates: the frontend reports about every 10 s
VERIFY_KEYS_MAX = 50  # titles verified per account at the end: bounds the teardown on long runs
COMPANION_JOIN_S = 5.0


class Session:
    """One device logged into the account: its own connection, token and analytics session."""

    def __init__(self, number: int, api: AmanflixApi) -> None:
        self.number, self.api = number, api
        self.analytics_id: str | None = None
        self.next_heartbeat_mono = 0.0
        self.bursts_done: set[int] = set()


class AmanflixUser(User):
    """One account: one or two sessions that browse, watch and write like people do."""

    connections_per_user = 2  # a second device has its own connection and thread (engine/limits.py)

    @staticmethod
    def prepare_run(plan: RunPlan) -> dict:
        """The catalog, the run's password and the burst schedule, once before the workers start."""
        return run_hooks.prepare_run(plan)

    @staticmethod
    def finish_run(plan: RunPlan, result: RunResult) -> run_hooks.RunFindings:
        """Cleanup and the lock summary, once after the workers stopped."""
        return run_hooks.finish_run(plan, result)

    def __init__(self, ctx: UserContext) -> None:
        super().__init__(ctx)
        self.cfg = ctx.settings
        self.journeys, self.wh, self.detect = (
            self.cfg["journeys"],
            self.cfg["watch_history"],
            self.cfg["detection"],
        )
        self.catalog, self.password = ctx.shared["catalog"], ctx.shared["password"]
        self.counts: Counter = Counter()  # before the first api: it counts suspected lock waits here
        self.sessions = [Session(1, self.new_api(self.client))]
        self.ledger = WriteLedger()
        self.mylist: dict[tuple, bool] = {}
        self.watching: list | None = (
            None  # [kind, id, season, episode, runtime_s, position_s], shared by sessions
        )
        self.watch_lock = threading.Lock()
        self.username = ""
        self.dual = ctx.rng.random() < self.journeys["dual_session_share"]
        self.companion: threading.Thread | None = None

    def new_api(self, client) -> AmanflixApi:
        return AmanflixApi(
            client, self.detect["lock_wait_s"], self.detect["lock_wait_tolerance_s"], counts=self.counts
        )

    # setup: a fresh account per user, checked before it is used
    def setup(self) -> bool:
        api = self.sessions[0].api
        for attempt in range(self.cfg["accounts"]["setup_retries"] + 1):
            if self.ctx.stop.is_set():
                return False
            self.counts["setup_retries"] += attempt > 0
            # one name per user on every attempt: the coordinator finds (and removes) it by name alone
            name = f"{self.cfg['accounts']['prefix']}{self.ctx.run_id}u{self.ctx.index}"
            if self.register(api, name):
                self.username = name
                self.load_mylist(api)
                return self.open_second_session() if self.dual else True
        self.counts["users_dropped"] += 1
        return False

    def register(self, api: AmanflixApi, name: str) -> bool:
        reply = api.register(name, self.password, f"{name}@amanflix-stress.test", check=phantom_check)
        if reply.error == "phantom_registration":
            self.counts["phantom_registrations"] += 1
            return False
        if reply.status == 400 and "exists" in str((reply.json() or {}).get("message", "")):
            self.counts["accounts_created"] += 1  # an earlier attempt reached the server; its reply did not
            return api.login(name, self.password).status == 200
        data = reply.json() if reply.status == 200 else None
        if not isinstance(data, dict) or not data.get("api_key"):
            return False
        api.set_token(data["api_key"])
        self.counts["accounts_created"] += 1
        if api.profile().status != 200:  # a token that does not work: the account is not usable
            self.counts["phantom_registrations"] += 1
            return False
        return True

    def load_mylist(self, api: AmanflixApi) -> None:
        """Start from what the server holds: SQLite reuses a deleted user's id, and self-delete leaves its
        rows, so a brand-new account can inherit a list."""
        if self.journeys["mylist_share"] <= 0 or self.wh["focus"]:
            return
        self.mylist = {key: True for key in listed_items(api.mylist_all(per_page=50)) or ()}
        self.counts["inherited_mylist_items"] += len(self.mylist)  # a new account holds none of its own

    def open_second_session(self) -> bool:
        session = Session(2, self.new_api(self.ctx.new_client()))
        if session.api.login(self.username, self.password).status != 200:
            session.api.client.close()
            self.dual = False
            return True
        self.sessions.append(session)
        return True

    # the measured phase
    def step(self) -> None:
        if self.dual and self.companion is None:
            self.companion = threading.Thread(
                target=self.companion_loop, daemon=True, name=f"user-{self.ctx.index}-device-2"
            )
            self.companion.start()
        self.act(self.sessions[0], companion=False)
        self.ctx.think()

    def companion_loop(self) -> None:
        """The second device keeps its own pace: it thinks even when arrivals pace the first (open model)."""
        while not self.ctx.stop.is_set():
            self.act(self.sessions[1], companion=True)
            self.ctx.sleep(self.ctx.rng.uniform(*self.cfg["think_time_s"]))

    def act(self, session: Session, companion: bool) -> None:
        self.keep_alive(session)
        if self.join_burst(session):
            return
        reply = self.pick_action(companion)(session)
        if reply is not None and reply.status == 403 and error_reason(reply) in TOKEN_RETRY_REASONS:
            self.counts["relogins"] += 1
            session.api.login(self.username, self.password)

    def pick_action(self, companion: bool):
        rng = self.ctx.rng
        if self.wh["focus"]:
            return self.watch if rng.random() < 0.9 else self.read
        if rng.random() < self.journeys["read_share"]:
            return self.read
        if companion:
            return self.watch
        weights = (
            self.journeys["watch_history_share"],
            self.journeys["mylist_share"],
            self.journeys["profile_update_share"],
        )
        return (
            rng.choices((self.watch, self.toggle_mylist, self.update_profile), weights)[0]
            if sum(weights)
            else self.read
        )

    def keep_alive(self, session: Session) -> None:
        every_s = self.journeys["heartbeat_every_s"]
        if every_s <= 0 or time.monotonic() < session.next_heartbeat_mono:
            return
        session.next_heartbeat_mono = time.monotonic() + every_s
        if session.analytics_id is None:
            data = session.api.start_session().json()
            session.analytics_id = data.get("session_id") if isinstance(data, dict) else None
        elif session.analytics_id:
            session.api.heartbeat(session.analytics_id)

    # reads
    def read(self, session: Session) -> Reply:
        api, rng = session.api, self.ctx.rng
        choice = rng.randrange(13)
        movie, episode = self.random_movie(), self.random_episode()
        actions = (
            lambda: api.movies(page=rng.randint(1, 3)),
            lambda: api.shows(page=rng.randint(1, 2)),
            lambda: api.movie(movie[0]) if movie else api.movies(),
            lambda: api.show(episode[0]) if episode else api.shows(),
            lambda: api.discovery(rng.choice(("random", "trending", "featured", "new-titles"))),
            lambda: api.search(rng.choice(SEARCH_TERMS)),
            lambda: api.autocomplete(rng.choice(SEARCH_TERMS)),
            lambda: api.movies_search(rng.choice(SEARCH_TERMS)),
            api.continue_watching,
            lambda: api.history(per_page=24),
            lambda: api.mylist_all(per_page=10),
            api.profile,
            api.unread_count,
        )
        return actions[choice]()

    def random_movie(self) -> list | None:
        movies = self.catalog["movies"]
        return self.ctx.rng.choice(movies) if movies else None

    def random_episode(self) -> list | None:
        episodes = self.catalog["episodes"]
        return self.ctx.rng.choice(episodes) if episodes else None

    # watch history: the writes that lock
    def watch(self, session: Session) -> Reply:
        reply = self.write_position(session, self.advance())
        if reply.status == 200 and self.ctx.rng.random() < self.wh["rapid_update_chance"]:
            low, high = self.wh["rapid_updates"]
            for _ in range(self.ctx.rng.randint(int(low), int(high))):
                if not self.ctx.sleep(self.ctx.rng.uniform(*self.wh["rapid_gap_s"])):
                    break
                reply = self.write_position(session, self.advance())
        return reply

    def advance(self) -> list:
        """The shared now-watching item, its position moved on; the next title when it ends."""
        with self.watch_lock:
            item = self.watching
            if item is None or item[5] >= item[4]:
                item = self.watching = self.next_title(item)
            item[5] = min(item[4], round(item[5] + self.ctx.rng.uniform(*PROGRESS_STEP_S), 1))
            return list(item)

    def next_title(self, finished: list | None) -> list:
        episodes = self.catalog["episodes"]
        if finished and finished[0] == "tv":
            following = [
                e for e in episodes if e[0] == finished[1] and (e[1], e[2]) > (finished[2], finished[3])
            ]
            if following:
                show, season, number, runtime_s = min(following, key=lambda e: (e[1], e[2]))
                return ["tv", show, season, number, runtime_s, 0.0]
        if episodes and (not self.catalog["movies"] or self.ctx.rng.random() < 0.4):
            show, season, number, runtime_s = self.ctx.rng.choice(episodes)
            return ["tv", show, season, number, runtime_s, 0.0]
        movie_id, runtime_s = self.ctx.rng.choice(self.catalog["movies"])
        return ["movie", movie_id, None, None, runtime_s, 0.0]

    def write_position(self, session: Session, item: list) -> Reply:
        kind, content_id, season, episode, runtime_s, position_s = item
        key = (kind, content_id, season, episode)
        body = {
            "content_id": content_id,
            "content_type": kind,
            "watch_timestamp": position_s,
            "total_duration": runtime_s,
        }
        if kind == "tv":
            body.update(season_number=season, episode_number=episode)
        write = self.ledger.begin(key, session.number, position_s)
        reply = session.api.update_history(body, check=lambda r: self.judge_echo(session, key, write, r))
        self.ledger.finish(write, write_outcome(reply))
        self.counts["watch_writes_acked"] += reply.status == 200 and not reply.error
        if write.outcome == "acked" and self.ctx.rng.random() < self.detect["readback_share"]:
            self.read_back(session, key)
        return reply

    def judge_echo(self, session: Session, key: tuple, write, reply: Reply):
        if reply.status == 500:
            return self.judge_failed_write(session, key, write, reply)
        if reply.status != 200:
            return None
        self.counts["echoes_checked"] += 1
        data = reply.json()
        shown = data.get("watch_timestamp") if isinstance(data, dict) else None
        if isinstance(data, dict):
            self.ledger.note_row(key, data.get("id"))
        if self.ledger.explains(key, write, shown):
            # another device's overlapping write shows instead of ours: no blame (zero false positives), but
            # ours may have been lost all the same, so the report counts these echoes it could not judge
            self.counts["echoes_explained_by_other_device"] += not same(shown, write.value)
            return None
        return "lost_update", tagged(
            VERIFIED, f"sent watch_timestamp {write.value:g}, the 200 answer echoed {shown}"
        )

    def judge_failed_write(self, session: Session, key: tuple, write, reply: Reply):
        """A 500 whose body names no cause (debug off): read the title back at once. Missing: the write was
        lost (verified). Stored: not a loss. The read failing too: no verdict here (timing decides)."""
        probe = self.read_back(session, key, check=None)
        data = probe.json() if probe.status == 200 else None
        shown = data.get("watch_timestamp") if isinstance(data, dict) else None
        if probe.status not in (200, 404) or (
            probe.status == 200 and self.ledger.explains(key, write, shown)
        ):
            return None
        kind = missing_write_class(reply, self.detect["lock_wait_s"], first_write=probe.status == 404)
        seen = "no row" if probe.status == 404 else f"watch_timestamp {shown}"
        return kind, tagged(VERIFIED, f"500 to a write, and a read-back right after finds {seen}")

    def read_back(self, session: Session, key: tuple, check="stored") -> Reply:
        """GET the title's record; judged against what may be stored unless `check` is None."""
        self.counts["readbacks"] += 1
        kind, content_id, season, episode = key  # a watch key: (kind, content_id, season, episode)
        judge = (lambda r: self.judge_stored(key, r)) if check else None
        return session.api.get_history(kind, content_id, season, episode, check=judge)

    def judge_stored(self, key: tuple, reply: Reply):
        valid = self.ledger.valid_final(key)
        if valid is None or reply.status not in (200, 404):
            return None
        data = reply.json() if reply.status == 200 else None
        shown = data.get("watch_timestamp") if isinstance(data, dict) else None
        if any(same(shown, v) for v in valid):
            return None
        return "lost_write", tagged(
            VERIFIED, f"acknowledged watch_timestamp {valid[-1]:g}, the server holds {shown}"
        )

    def join_burst(self, session: Session) -> bool:
        """At scheduled instants many users write the same title at once: the collision that locks."""
        elapsed_s = time.time() - self.ctx.start_s
        horizon_s = self.cfg["think_time_s"][1] + 0.5
        for number, (offset_s, item) in enumerate(self.ctx.shared.get("bursts", ())):
            if number in session.bursts_done or not elapsed_s - 0.5 <= offset_s <= elapsed_s + horizon_s:
                continue
            session.bursts_done.add(number)
            if not self.joins_burst(number):
                return False
            if not self.ctx.sleep(self.ctx.start_s + offset_s - time.time()):
                return True
            self.write_position(session, list(item))
            self.counts["burst_writes"] += 1
            return True
        return False

    def joins_burst(self, number: int) -> bool:
        seed = self.ctx.shared.get("seed", 0)
        return random.Random(f"{seed}:{self.ctx.index}:burst{number}").random() < self.wh["burst_share"]

    # my list and profile
    def toggle_mylist(self, session: Session) -> Reply:
        movie = self.catalog["movies"][:10] or [[e[0]] for e in self.catalog["episodes"][:10]]
        content_id = self.ctx.rng.choice(movie)[0]
        kind = "movie" if self.catalog["movies"] else "tv"
        key = (kind, content_id)
        action = "delete" if self.mylist.get(key) else "add"
        reply = session.api.mylist(
            action, kind, content_id, check=lambda r: self.judge_toggle(key, action, r)
        )
        if reply.status == 200 and self.ctx.rng.random() < self.detect["readback_share"]:
            self.counts["readbacks"] += 1
            session.api.mylist("check", kind, content_id, check=lambda r: self.judge_check(key, r))
        return reply

    def judge_toggle(self, key: tuple, action: str, reply: Reply):
        wanted = action == "add"
        if reply.status == 200:
            self.mylist[key] = wanted
            return None
        if reply.status == 400 and self.mylist.get(key, False) != wanted:
            # the server is already in the wanted state, which an earlier acknowledged toggle had undone: that
            # toggle was lost. From now on the local state is the server's, so it is counted once.
            self.mylist[key] = wanted
            lost = "remove" if wanted else "add"
            return "lost_write", tagged(
                VERIFIED,
                f"my-list {lost} was answered 200 earlier, but the server says the item is "
                + ("still there" if wanted else "missing"),
            )
        return None

    def judge_check(self, key: tuple, reply: Reply):
        data = reply.json()
        exists = data.get("exists") if isinstance(data, dict) else None
        if reply.status != 200 or exists is None or exists == self.mylist.get(key, False):
            return None
        self.mylist[key] = bool(exists)
        return "lost_write", tagged(
            VERIFIED,
            f"my-list check says exists={exists} after an acknowledged {'remove' if exists else 'add'}",
        )

    def update_profile(self, session: Session) -> Reply:
        self.counts["profile_updates"] += 1
        email = f"{self.username}+{self.counts['profile_updates']}@amanflix-stress.test"
        return session.api.update_profile(self.username, email, check=lambda r: judge_profile_echo(email, r))

    # the end: verify, end sessions (the coordinator deletes the account)
    def teardown(self) -> None:
        if self.companion is not None:
            self.companion.join(COMPANION_JOIN_S)
        if not self.username:
            return
        api = self.sessions[0].api
        if self.detect["verify_at_end"]:
            self.verify_final_state(api)
        for session in self.sessions:  # the account itself is removed by the coordinator (run_hooks)
            if session.analytics_id:
                session.api.end_session(session.analytics_id)

    def verify_final_state(self, api: AmanflixApi) -> None:
        for key in self.ledger.keys()[-VERIFY_KEYS_MAX:]:
            if self.ledger.valid_final(key) is not None:
                self.counts["final_keys_verified"] += 1
                kind, content_id, season, episode = key
                api.get_history(
                    kind, content_id, season, episode, check=lambda r, k=key: self.judge_stored(k, r)
                )
        self.count_duplicates(api)
        self.verify_mylist(api)

    def count_duplicates(self, api: AmanflixApi) -> None:
        seen: Counter = Counter()
        for page in range(1, 21):
            reply = api.history(page=page, per_page=50)
            data = reply.json()
            if reply.status != 200 or not isinstance(data, dict):
                return
            seen.update(item.get("watch_id") for item in data.get("items", []) if isinstance(item, dict))
            if not data.get("has_more"):
                break
        listed = sum(n - 1 for n in seen.values() if n > 1)
        self.counts["history_rows_seen"] += sum(seen.values())
        # the echoes' record ids see duplicates a listing that groups by title hides
        self.counts["duplicate_rows"] += max(listed, self.ledger.duplicate_rows())
        self.counts["history_listings_checked"] += 1

    def verify_mylist(self, api: AmanflixApi) -> None:
        """List the server's my-list; each item that differs from the acknowledged state is checked on its
        own, so each lost write is one lost_write (and the check makes the local state the server's)."""
        if not self.mylist:
            return
        held = listed_items(api.mylist_all(per_page=50))
        if held is None:
            return
        self.counts["mylist_items_verified"] += len(self.mylist)
        for key in [key for key, wanted in self.mylist.items() if (key in held) != wanted]:
            kind, content_id = key
            api.mylist("check", kind, content_id, check=lambda r, k=key: self.judge_check(k, r))

    def counters(self) -> dict[str, int]:
        return dict(self.counts)


def listed_items(reply: Reply) -> set[tuple] | None:
    """(content type, id) of each my-list item in a GET /api/mylist/all answer; None if it is not one."""
    data = reply.json()
    if reply.status != 200 or not isinstance(data, list):
        return None
    return {
        (item.get("content_type"), item.get("id") or item.get("show_id"))
        for item in data
        if isinstance(item, dict)
    }


def phantom_check(reply: Reply):
    """A 200 register whose token names no user: the real server's lost insert on a lock."""
    data = reply.json()
    if (
        reply.status == 200
        and isinstance(data, dict)
        and token_subject(str(data.get("api_key", ""))) in (None, "None")
    ):
        return "phantom_registration", tagged(
            VERIFIED, "register answered 200 with a token for user 'None': no account was stored"
        )
    return None


def judge_profile_echo(email: str, reply: Reply):
    """A profile update's 200 echoes the email: an echo of another one shows the update was not stored. The
    echo of the one sent proves nothing (a server may echo the form), so the write stays unverifiable."""
    data = reply.json()
    shown = data.get("email") if reply.status == 200 and isinstance(data, dict) else email
    if shown == email:
        return None
    return "lost_write", tagged(VERIFIED, f"profile update answered 200 echoing another email: {shown}")


def write_outcome(reply: Reply) -> str:
    if reply.status == 200 and not reply.error:
        return "acked"
    if reply.error in ("lost_update", "lost_insert") or 400 <= reply.status < 500:
        return "lost"
    return "unknown"  # no answer or another 5xx: it may or may not have been stored
