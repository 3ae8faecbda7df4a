"""`probe`: small deterministic scenarios, each reproducing one Amanflix failure class once, on demand."""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from amanflix_stress.amanflix.api import AdminApi, AmanflixApi, token_subject
from amanflix_stress.amanflix.catalog import fetch_catalog
from amanflix_stress.amanflix.detect import explicit_lock
from amanflix_stress.amanflix.diagnosis import diagnose
from amanflix_stress.amanflix.holdlock import check_database, database_locked
from amanflix_stress.amanflix.probe_records import (
    SERVER_SAID,
    SKIPPED,
    TIMING,
    Finding,
    Observation,
    ProbeResult,
    Step,
)
from amanflix_stress.amanflix.probe_scenarios import SCENARIOS, field_of
from amanflix_stress.engine.classify import body_message
from amanflix_stress.engine.client import HttpClient, Reply, check_reachable
from amanflix_stress.errors import SetupFailed, UsageError, WrongDatabase

ACCOUNT_PREFIX = "amfxprb"  # then the probe's id and the scenario's tag
HOLD_MARGIN_MIN_S, HOLD_MARGIN_SHARE = 0.5, 0.4  # held this much past the busy timeout: 5 s -> 7 s
NEAR_BUSY_EARLY_S, NEAR_BUSY_LATE_S = 0.2, 1.0  # "at the busy timeout": upstream retries add up to 0.7 s
EXCERPT_CHARS = 320  # a whole watch-history record fits
LOG_WINDOW_BYTES = 64_000  # at most this much of the server's log per scenario
LOG_LINES = 12
COMMIT_RETRY_LOG = "Database locked during commit"
TRACEBACK_PHRASES = ("Traceback (most recent call last)", "The above exception", "During handling of")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_PASSWORD_HASH = re.compile(r"pbkdf2_sha256\$[^'\s,)]+|\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class ProbeConfig:
    """What `probe` was asked: the target, its database and log on this machine, its busy timeout."""

    base_url: str
    db: str | None = None
    server_log: str | None = None
    busy_timeout_s: float = 5.0  # pysqlite's default, which the real server runs with
    timeout_s: float = 30.0
    admin: tuple[str, str] | None = None

    @property
    def hold_s(self) -> float:
        """Longest hold: past the busy timeout, so a server without headroom gives up while it lasts."""
        return self.busy_timeout_s + max(HOLD_MARGIN_MIN_S, HOLD_MARGIN_SHARE * self.busy_timeout_s)


@dataclass(frozen=True)
class Title:
    """A real title of the target's catalog: a movie, or one episode of a show."""

    content_type: str
    content_id: int
    season: int | None = None
    episode: int | None = None
    runtime_s: int = 2700

    def body(self, position_s: float) -> dict:
        body = {
            "content_id": self.content_id,
            "content_type": self.content_type,
            "watch_timestamp": position_s,
            "total_duration": self.runtime_s,
        }
        if self.content_type == "tv":
            body.update(season_number=self.season, episode_number=self.episode)
        return body

    def key(self) -> tuple:
        return self.content_type, self.content_id, self.season, self.episode

    def __str__(self) -> str:
        if self.content_type == "tv":
            return f"show {self.content_id} S{self.season}E{self.episode}"
        return f"movie {self.content_id}"


@dataclass
class Account:
    """One of the probe's accounts; `alive` until it is deleted."""

    name: str
    password: str
    api: AmanflixApi
    user_id: int | None
    alive: bool = True


@dataclass
class Held:
    """What happened under one hold: the answer, how long the lock was held, whether the answer came while
    it still was."""

    kind: str
    answer: Reply | None = None
    held_s: float = 0.0
    answered_in_hold: bool = False

    @property
    def reply(self) -> Reply:
        if self.answer is None:  # the client's own timeouts make this unreachable; say so if it happens
            raise SetupFailed(f"no answer to the request sent under the {self.kind} lock")
        return self.answer


@dataclass
class Masker:
    """Removes what must never be printed or saved: our passwords, and tokens (keeping their subject)."""

    secrets: set[str] = field(default_factory=set)

    def __call__(self, text: str) -> str:
        text = _JWT.sub(lambda m: f"<token sub={token_subject(m.group())}>", text)
        text = _PASSWORD_HASH.sub("<password hash>", text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def check_server_log(path: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise UsageError(
            f"--server-log: {path} is not a file; give the server's log (e.g. api/logs/amanflix.log)"
        )
    return file


class ServerLogWindow:
    """The server's log lines written between `open` and `lines` (masked, bounded)."""

    def __init__(self, path: Path | None, mask: Masker) -> None:
        self.path, self.mask, self.offset = path, mask, 0

    def open(self) -> None:
        if self.path is not None:
            self.offset = self.path.stat().st_size

    def lines(self) -> tuple[str, ...]:
        """The records and each traceback's last lines (the exception), not the frames in between."""
        if self.path is None:
            return ()
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            text = handle.read(LOG_WINDOW_BYTES).decode("utf-8", "replace")
        kept = [self.mask(line.rstrip()) for line in text.splitlines() if is_log_record(line)]
        more = (f"… {len(kept) - LOG_LINES} more lines",) if len(kept) > LOG_LINES else ()
        return tuple(kept[:LOG_LINES]) + more


def is_log_record(line: str) -> bool:
    """A record or an exception line; traceback frames are indented, their headers are fixed phrases."""
    return bool(line.strip()) and not line[0].isspace() and not line.startswith(TRACEBACK_PHRASES)


def near_busy_timeout(seconds: float, busy_timeout_s: float) -> bool:
    return busy_timeout_s - NEAR_BUSY_EARLY_S <= seconds <= busy_timeout_s + NEAR_BUSY_LATE_S


class Probe:
    """Runs the scenarios in order against one target, each on its own account and title, then cleans up."""

    def __init__(self, cfg: ProbeConfig) -> None:
        self.cfg = cfg
        self.run_id = secrets.token_hex(3)
        self.mask = Masker({cfg.admin[1]} if cfg.admin else set())
        self.db = check_database(cfg.db, "--db") if cfg.db else None
        self.log = ServerLogWindow(check_server_log(cfg.server_log) if cfg.server_log else None, self.mask)
        self.accounts: list[Account] = []
        self.titles: list[Title] = []
        self.steps: list[Step] = []

    # the run
    def run(self) -> ProbeResult:
        started = time.monotonic()
        check_reachable(self.cfg.base_url)
        self._check_admin()
        findings: list[Finding] = []
        try:
            self.titles = self._read_titles()
            for name, needs_db, scenario in SCENARIOS:
                findings.append(self._run_one(name, needs_db, scenario))
        finally:
            cleanup = self.cleanup()
        return ProbeResult(
            base_url=self.cfg.base_url,
            db=str(self.db) if self.db else None,
            busy_timeout_s=self.cfg.busy_timeout_s,
            findings=tuple(findings),
            diagnosis=diagnose(tuple(findings)),
            cleanup=cleanup,
            seconds=round(time.monotonic() - started, 1),
        )

    def _run_one(self, name: str, needs_db: bool, scenario: Callable[[Probe], Finding]) -> Finding:
        skip = self._skip_reason() if needs_db else None
        if skip:
            return Finding(scenario=name, outcome=SKIPPED, summary=skip)
        self.steps = []
        self.log.open()
        finding = scenario(self)
        return replace(finding, scenario=name, steps=tuple(self.steps), server_log=self.log.lines())

    def _skip_reason(self) -> str | None:
        host = urlsplit(self.cfg.base_url).hostname or ""
        if self.db is None:
            return "needs --db PATH: the server's SQLite file on this machine, to hold its lock"
        if host not in LOOPBACK:
            return f"the server ({host}) is not on this machine: a local lock cannot reach its database"
        return None

    # set-up
    def client(self) -> HttpClient:
        return HttpClient(
            self.cfg.base_url, -1, lambda sample: None, timeout_s=self.cfg.timeout_s, connect_timeout_s=3.0
        )

    def new_api(self) -> AmanflixApi:
        return AmanflixApi(self.client(), lock_wait_s=0)

    def _check_admin(self) -> None:
        if self.cfg.admin and not AdminApi(self.client()).login(*self.cfg.admin):
            raise UsageError(
                "admin login failed: check --admin-user/--admin-password (or $AMANFLIX_ADMIN_USER …)"
            )

    def credentials(self, tag: str) -> tuple[str, str]:
        """A new account's name and password; the password is masked wherever evidence shows it."""
        password = secrets.token_urlsafe(12)
        self.mask.secrets.add(password)
        return f"{ACCOUNT_PREFIX}{self.run_id}{tag}", password

    def adopt(self, name: str, password: str, api: AmanflixApi) -> None:
        """An account that came into being under a hold after all (a server that waited): ours to remove."""
        subject = token_subject(str(api.token)) or ""
        self.accounts.append(Account(name, password, api, int(subject) if subject.isdigit() else None))

    def check_target_database(self, held: Held, what: str) -> None:
        """A write stored while our lock was still held cannot have gone to the file we hold."""
        if held.answered_in_hold:
            raise WrongDatabase(
                f"--db {self.db} is not the target's database: while a {held.kind} lock on it was held, "
                f"{what} answered at once and was stored; give the database file the server at "
                f"{self.cfg.base_url} uses"
            )

    def register(self, tag: str) -> Account:
        """A fresh account outside any hold; a target that cannot register one is not an Amanflix."""
        name, password = self.credentials(tag)
        api = self.new_api()
        reply = api.register(name, password, f"{name}@amanflix-stress.test")
        token = field_of(reply, "api_key")
        subject = token_subject(str(token)) if token else None
        if not token or subject is None or not subject.isdigit():
            raise SetupFailed(
                f"POST /api/auth/register answered {reply.status or reply.error}: "
                f"{self.excerpt(reply)[:120]!r}; is {self.cfg.base_url} an Amanflix API?"
            )
        api.set_token(str(token))
        account = Account(name, password, api, int(subject))
        self.accounts.append(account)
        return account

    def _read_titles(self) -> list[Title]:
        api = self.register("cat").api
        catalog = fetch_catalog(api)  # SetupFailed on an empty or unreadable catalog
        movies = [Title("movie", m, runtime_s=r) for m, r in catalog["movies"]]
        episodes = [Title("tv", s, season, e, r) for s, season, e, r in catalog["episodes"]]
        return movies + episodes

    def title(self, index: int) -> Title:
        return self.titles[index % len(self.titles)]

    # evidence
    def excerpt(self, reply: Reply) -> str:
        if reply.status == 0:
            return self.mask(f"no answer ({reply.error}): {reply.body.decode('utf-8', 'replace')}")
        if "html" in reply.content_type:
            return self.mask(f"HTML page: {body_message(reply.body, reply.content_type)}")
        text = " ".join(reply.body.decode("utf-8", "replace").split())
        return self.mask(text)[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")

    def step(self, request: str, reply: Reply, hold: str = "") -> Reply:
        self.steps.append(
            Step(self.mask(request), reply.status, self.excerpt(reply), reply.latency_us / 1e6, hold)
        )
        return reply

    def hold(self, kind: str, action: Callable[[], Reply]) -> Held:
        """Take the lock from a second connection, send `action` while it is held, release it as soon as the
        answer came or at `hold_s`, whichever is first. Never longer."""
        assert self.db is not None
        held, done = Held(kind), threading.Event()

        def send() -> None:
            try:
                held.answer = action()
            finally:
                done.set()

        sender = threading.Thread(target=send, name="probe-request", daemon=True)
        try:
            with database_locked(self.db, kind):
                started = time.monotonic()
                sender.start()
                held.answered_in_hold = done.wait(self.cfg.hold_s)
        except sqlite3.Error as exc:
            raise SetupFailed(f"--db: could not take a {kind} lock on {self.db}: {exc}") from None
        held.held_s = round(time.monotonic() - started, 2)
        sender.join(self.cfg.timeout_s + 5.0)
        return held

    def timing(self, reply: Reply, what: str) -> list[Observation]:
        """A lock failure answered at about the busy timeout: the server gave up waiting there."""
        seconds = reply.latency_us / 1e6
        if not near_busy_timeout(seconds, self.cfg.busy_timeout_s):
            return []
        text = f"{what} answered after {seconds:.2f} s, at the busy timeout ({self.cfg.busy_timeout_s:g} s)"
        return [Observation("busy_timeout", TIMING, text + ", while the lock was held: no headroom")]

    def visible(self, reply: Reply, what: str) -> list[Observation]:
        """A 5xx under the hold: the lock surfaced; its body or the log may name it."""
        signature = explicit_lock(reply)
        said = []
        if signature and signature[0] == "db_locked":
            said.append(
                Observation(
                    "busy_timeout", SERVER_SAID, f"{what} answered {reply.status} naming 'database is locked'"
                )
            )
        return said + self.log_said("busy_timeout", what) + self.timing(reply, what)

    def log_said(self, cause: str, what: str) -> list[Observation]:
        """The server's own log, when given: its commit helper's retry lines, or a lock traceback."""
        lines = self.log.lines()
        retries = sum(COMMIT_RETRY_LOG in line for line in lines)
        if retries and cause == "commit_swallowed":
            text = (
                f"the server logged {retries} '{COMMIT_RETRY_LOG}' line(s) for {what}, then answered anyway"
            )
            return [Observation(cause, SERVER_SAID, text)]
        if cause == "busy_timeout" and any(
            "database is locked" in line or COMMIT_RETRY_LOG in line for line in lines
        ):
            return [Observation(cause, SERVER_SAID, f"the server's log names the lock for {what}")]
        return []

    # cleanup
    def cleanup(self) -> dict:
        """Remove every account the probe made: admin batch delete (rows too), else each deletes itself."""
        created = len(self.accounts)
        if self.cfg.admin:
            return self._admin_cleanup(created)
        deleted = sum(1 for a in self.accounts if not a.alive)
        for account in self.accounts:
            if account.alive and account.api.delete_self(account.password).status == 200:
                account.alive, deleted = False, deleted + 1
        return {
            "method": "self-delete (no admin credentials)",
            "created": created,
            "deleted": deleted,
            "left_behind": created - deleted,
            "note": "self-delete removes the user row only: their watch history and my-list rows stay",
        }

    def _admin_cleanup(self, created: int) -> dict:
        assert self.cfg.admin is not None
        admin = AdminApi(self.client())
        prefix = f"{ACCOUNT_PREFIX}{self.run_id}"
        if not admin.login(*self.cfg.admin):
            return {
                "method": "admin batch delete",
                "created": created,
                "deleted": 0,
                "left_behind": created,
                "error": "admin login failed at cleanup",
            }
        deleted_before = sum(1 for a in self.accounts if not a.alive)  # the self-delete scenario's
        method = "admin batch delete (also removes watch history and my-list rows)"
        try:
            ids = [u["id"] for u in admin.users() if str(u.get("username", "")).startswith(prefix)]
            reply = admin.batch_delete(ids, self.cfg.admin[1]) if ids else None
            data = reply.json() if reply is not None else None
            left = sum(1 for u in admin.users() if str(u.get("username", "")).startswith(prefix))
        except SetupFailed as exc:  # no list, no count: every account not seen deleted may be left
            return {
                "method": method,
                "created": created,
                "deleted": deleted_before,
                "left_behind": created - deleted_before,
                "error": f"the user list could not be read at cleanup: {exc}",
            }
        return {
            "method": method,
            "created": created,
            "deleted": deleted_before + (data.get("deleted_count", 0) if isinstance(data, dict) else 0),
            "left_behind": left,
        }
