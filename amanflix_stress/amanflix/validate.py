"""`validate`: checks that a target is an Amanflix API this tool can load, each a line with its reason."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

from amanflix_stress.amanflix.api import AdminApi, AmanflixApi, token_subject
from amanflix_stress.amanflix.catalog import CatalogUnreadable, fetch_catalog
from amanflix_stress.engine.classify import body_message
from amanflix_stress.engine.client import REACHABLE_TIMEOUT_S, HttpClient, Reply, check_reachable
from amanflix_stress.engine.plan import AdminCredentials
from amanflix_stress.errors import SetupFailed, StressError

# "admin" runs only with admin credentials; a check runs only if the one it needs passed; cleanup always runs
CHECKS = ("connectivity", "admin", "registration", "authentication", "content", "watch history", "cleanup")
NEEDS = {
    "admin": "connectivity",
    "registration": "connectivity",
    "authentication": "registration",
    "content": "authentication",
    "watch history": "content",
}
PROBE_POSITION_S = 42.5
ADMIN_USER_ENV, ADMIN_PASSWORD_ENV = "AMANFLIX_ADMIN_USER", "AMANFLIX_ADMIN_PASSWORD"
CLEANUP_TIMEOUT_S = 30.0  # cleanup's floor whatever --timeout says: it must finish what the checks started
LOOKUP_FOR_S = 10.0  # a registration that got no answer may still commit: look for its account this long
LOOKUP_EVERY_S = 1.0
ANY_STATUS = range(100, 600)


class Validation:
    """Runs the checks in order; a failed check skips those that need it; cleanup states what is left."""

    def __init__(self, base_url: str, timeout_s: float = 10.0, admin: tuple[str, str] | None = None) -> None:
        self.base_url, self.admin, self.timeout_s = base_url, admin, timeout_s
        self.samples: list = []
        self.client = self._client(timeout_s)
        self.api = AmanflixApi(self.client)
        self.admin_api: AdminApi | None = None  # set once the admin check logged in
        self.name = f"amfxval{secrets.token_hex(4)}"
        self.password = secrets.token_urlsafe(12)
        self.catalog: dict | None = None
        self.registration: Reply | None = None  # what the registration answered, once it was sent

    def _client(self, timeout_s: float) -> HttpClient:
        return HttpClient(self.base_url, -1, self.samples.append, timeout_s=timeout_s, connect_timeout_s=3.0)

    def run(self) -> list[tuple[str, bool, str]]:
        results: list[tuple[str, bool, str]] = []
        passed: dict[str, bool] = {}
        for name in CHECKS:
            if name == "admin" and not self.admin:
                continue
            need = NEEDS.get(name)
            if need and not passed.get(need):
                ok, reason = False, f"skipped: the {need} check failed"
            else:
                ok, reason = getattr(self, "check_" + name.replace(" ", "_"))()
            passed[name] = ok
            results.append((name, ok, reason))
        return results

    def check_connectivity(self) -> tuple[bool, str]:
        started = time.perf_counter()
        try:
            check_reachable(self.base_url)
        except StressError as exc:
            return False, str(exc)
        answered_ms = (time.perf_counter() - started) * 1000
        status = self._client(max(self.timeout_s, REACHABLE_TIMEOUT_S)).call(
            "GET /api/service/status", "GET", "/api/service/status", expect=ANY_STATUS
        )
        data = status.json()
        if isinstance(data, dict) and data.get("is_available") is False:  # the contract's maintenance switch
            return False, f"{self.base_url} answered, but {unavailable(data)}"
        return True, f"{self.base_url} answered in {answered_ms:.0f} ms"

    def check_admin(self) -> tuple[bool, str]:
        """The admin credentials log in (run refuses wrong ones with exit 2; here it is a failed check)."""
        user, password = self.admin or ("", "")
        admin = AdminApi(self.cleanup_client())  # kept for cleanup's batch delete: the long timeout
        reply = admin.sign_in(user, password, expect=ANY_STATUS)
        if admin.signed_in:
            self.admin_api = admin
            role = reply.json().get("role", "?")
            return True, f"{user} logged in as admin (role {role}): cleanup removes rows too"
        return False, (
            f"POST /api/admin/login as {user} answered {server_message(reply)}: run refuses these admin "
            "credentials (exit 2); cleanup falls back to self-delete"
        )

    def check_registration(self) -> tuple[bool, str]:
        reply = self.registration = self.api.register(
            self.name, self.password, f"{self.name}@amanflix-stress.test"
        )
        data = reply.json()
        if reply.status != 200 or not isinstance(data, dict) or not data.get("api_key"):
            return False, f"POST /api/auth/register answered {server_message(reply)}"
        subject = token_subject(data["api_key"])
        if subject in (None, "None"):
            return (
                False,
                "register answered 200 with a token for user 'None' (a lost insert: the database is locked)",
            )
        self.api.set_token(data["api_key"])
        return True, f"test account {self.name} registered (user id {subject})"

    def check_authentication(self) -> tuple[bool, str]:
        reply = self.api.profile()
        data = reply.json()
        if reply.status != 200 or not isinstance(data, dict):
            return False, f"GET /api/auth/profile with the new token answered {server_message(reply)}"
        if data.get("username") != self.name:
            return False, f"GET /api/auth/profile with the new token named {data.get('username')!r}"
        return True, "the token works on GET /api/auth/profile"

    def check_content(self) -> tuple[bool, str]:
        try:
            self.catalog = fetch_catalog(self.api)
        except CatalogUnreadable as exc:
            return False, f"{exc}; GET /api/movies answered {server_message(self.api.movies(1, 1))}"
        except SetupFailed as exc:
            return False, str(exc)
        return (
            True,
            f"{len(self.catalog['movies'])} movies and {len(self.catalog['episodes'])} episodes with a token",
        )

    def check_watch_history(self) -> tuple[bool, str]:
        kind, body, key = self._probe_write()
        reply = self.api.update_history(body)
        if reply.status != 200:
            return False, f"POST /api/watch-history/update answered {server_message(reply)}"
        echoed = field(reply, "watch_timestamp")
        if echoed != PROBE_POSITION_S:
            return (
                False,
                f"POST /api/watch-history/update answered 200 echoing {echoed}, sent {PROBE_POSITION_S}",
            )
        back = self.api.get_history(*key)
        if back.status != 200:
            return False, f"read-back of the write answered {server_message(back)}"
        stored = field(back, "watch_timestamp")
        if stored != PROBE_POSITION_S:
            return False, f"read-back of the write answered 200 with {stored}: the write was lost"
        return True, f"wrote {kind} position {PROBE_POSITION_S} s and read it back"

    def _probe_write(self):
        if self.catalog["movies"]:
            movie_id, runtime_s = self.catalog["movies"][0]
            return (
                "movie",
                {
                    "content_id": movie_id,
                    "content_type": "movie",
                    "watch_timestamp": PROBE_POSITION_S,
                    "total_duration": runtime_s,
                },
                ("movie", movie_id, None, None),
            )
        show, season, episode, runtime_s = self.catalog["episodes"][0]
        return (
            "episode",
            {
                "content_id": show,
                "content_type": "tv",
                "watch_timestamp": PROBE_POSITION_S,
                "total_duration": runtime_s,
                "season_number": season,
                "episode_number": episode,
            },
            ("tv", show, season, episode),
        )

    def check_cleanup(self) -> tuple[bool, str]:
        """What the checks created is removed, and the outcome is verified by logging in: an account whose
        registration got no answer is looked for, never assumed absent."""
        if self.registration is None:
            return True, "nothing was created"
        if in_maintenance(self.registration):
            return True, "nothing was created: the maintenance gate refused the registration"
        api = AmanflixApi(self.cleanup_client())
        nothing_to_remove = self._find_account(api)
        return nothing_to_remove or self._verify_removed(self._remove(api))

    def _find_account(self, api: AmanflixApi) -> tuple[bool, str] | None:
        """Give `api` the account's token; or, when there is no account to remove, the outcome."""
        if self.api.token:
            api.set_token(self.api.token)
            return None
        found = self._look_up(api)
        if found.status == 401:
            return True, f"nothing was created: {self._registration_outcome()}, and {self.name} cannot log in"
        if api.token is None:
            return (
                False,
                f"test account {self.name} may be left behind: logging in answered " + server_message(found),
            )
        return None

    def _verify_removed(self, how: str) -> tuple[bool, str]:
        gone = AmanflixApi(self.cleanup_client()).login(self.name, self.password, expect=ANY_STATUS)
        account = f"test account {self.name}"
        if not self.api.token:  # found by logging in: say so, it is the case a short --timeout hides
            account += f" (created although {self._registration_outcome()})"
        if gone.status == 401:
            return True, f"{account} {how}; it no longer logs in"
        if gone.status == 200:
            return False, f"{account} is left behind ({how}): it still logs in"
        return False, f"{account} may be left behind ({how}): logging in answered {server_message(gone)}"

    def cleanup_client(self) -> HttpClient:
        return self._client(max(self.timeout_s, CLEANUP_TIMEOUT_S))

    def _registration_outcome(self) -> str:
        reply = self.registration
        return (
            "the registration got no answer"
            if reply is None or reply.status == 0
            else "the registration failed"
        )

    def _look_up(self, api: AmanflixApi) -> Reply:
        """Log in as the probe account. A registration that got no answer may still be committing (a bcrypt
        hash, a lock wait), so a refusal is asked again for LOOKUP_FOR_S; one the server answered is final."""
        patient = self.registration is not None and self.registration.status == 0
        deadline = time.monotonic() + (LOOKUP_FOR_S if patient else 0.0)
        for _attempt in range(int(LOOKUP_FOR_S / LOOKUP_EVERY_S) + 1):
            reply = api.login(self.name, self.password, expect=ANY_STATUS)
            if reply.status != 401 or time.monotonic() >= deadline:
                break
            time.sleep(LOOKUP_EVERY_S)
        return reply

    def _remove(self, api: AmanflixApi) -> str:
        """Delete the account (admin batch delete with its rows, else self-delete); how it went, in words."""
        subject = token_subject(api.token or "") or ""
        note = ""
        if self.admin_api is not None and self.admin and subject.isdigit():
            reply = self.admin_api.batch_delete([int(subject)], self.admin[1])
            if reply.status == 200 and (reply.json() or {}).get("deleted_count") == 1:
                return "removed with its rows (admin batch delete)"
            note = f"admin batch delete answered {server_message(reply)}; "
        reply = api.delete_self(self.password)
        if reply.status != 200:
            return note + f"DELETE /api/auth/delete answered {server_message(reply)}"
        return note + (
            "deleted by itself (the server keeps its watch-history row: self-delete does not cascade; "
            "give admin credentials to remove it too)"
        )


def field(reply: Reply, name: str):
    data = reply.json()
    return data.get(name) if isinstance(data, dict) else None


def server_message(reply: Reply) -> str:
    """What the server said, as a person reads it: the status and its JSON message, an HTML page's title or
    the text; the maintenance answer (contract §1) says so with the server's title and message."""
    if reply.status == 0:
        return f"nothing ({reply.error}: {reply.body.decode('utf-8', 'replace')})"
    data = reply.json()
    if isinstance(data, dict) and data.get("error") == "service_unavailable":
        return f"{reply.status}: {unavailable(data)}"
    said = body_message(reply.body, reply.content_type)
    if said.startswith(str(reply.status)):  # an HTML page titled "500 Internal Server Error"
        return said
    return f"{reply.status} {said}" if said else str(reply.status)


def in_maintenance(reply: Reply) -> bool:
    """The maintenance gate's 503 (contract §1): it answers before any handler runs, so nothing was done."""
    data = reply.json()
    return reply.status == 503 and isinstance(data, dict) and data.get("error") == "service_unavailable"


def unavailable(data: dict) -> str:
    """The maintenance switch in words, from a 503 body or GET /api/service/status."""
    state = "in maintenance mode" if data.get("maintenance_mode") else "switched off (service disabled)"
    title = data.get("title") or data.get("maintenance_title")
    message = data.get("message") or data.get("maintenance_message")
    said = ": ".join(str(part) for part in (f'"{title}"' if title else None, message) if part)
    downtime = data.get("estimated_downtime")
    return (
        f"the service is {state}"
        + (f": {said}" if said else "")
        + (f" (estimated downtime {downtime})" if downtime else "")
    )


def admin_from_env(
    environ: Mapping[str, str],
    user_var: str = ADMIN_USER_ENV,
    password_var: str = ADMIN_PASSWORD_ENV,
    user: str | None = None,
    password: str | None = None,
) -> AdminCredentials | None:
    """Admin credentials from the flags (`user`, `password`), each falling back to its environment variable.
    The CLI passes os.environ in: the only place the environment is read, and nothing writes it."""
    user, password = user or environ.get(user_var), password or environ.get(password_var)
    return AdminCredentials(user, password) if user and password else None


def render(results: list[tuple[str, bool, str]]) -> str:
    return "\n".join(f"{'✓' if ok else '✗'} {name}: {reason}" for name, ok, reason in results)
