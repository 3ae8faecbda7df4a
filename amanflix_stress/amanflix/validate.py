"""`validate`: six checks that a target is an Amanflix API this tool can load, each a line with its reason."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

from amanflix_stress.amanflix.api import AdminApi, AmanflixApi, token_subject
from amanflix_stress.amanflix.catalog import fetch_catalog
from amanflix_stress.engine.client import HttpClient, check_reachable
from amanflix_stress.engine.plan import AdminCredentials
from amanflix_stress.errors import SetupFailed, StressError

CHECKS = ("connectivity", "registration", "authentication", "content", "watch history", "cleanup")
PROBE_POSITION_S = 42.5
ADMIN_USER_ENV, ADMIN_PASSWORD_ENV = "AMANFLIX_ADMIN_USER", "AMANFLIX_ADMIN_PASSWORD"


class Validation:
    """Runs the checks in order; a failed check skips those that need it."""

    def __init__(self, base_url: str, timeout_s: float = 10.0, admin: tuple[str, str] | None = None) -> None:
        self.base_url, self.admin = base_url, admin
        self.samples: list = []
        self.client = HttpClient(
            base_url, -1, self.samples.append, timeout_s=timeout_s, connect_timeout_s=3.0
        )
        self.api = AmanflixApi(self.client)
        self.name = f"amfxval{secrets.token_hex(4)}"
        self.password = secrets.token_urlsafe(12)
        self.catalog: dict | None = None
        self.user_id: int | None = None

    def run(self) -> list[tuple[str, bool, str]]:
        results: list[tuple[str, bool, str]] = []
        for name, check in zip(
            CHECKS,
            (
                self.connectivity,
                self.registration,
                self.authentication,
                self.content,
                self.watch_history,
                self.cleanup,
            ),
        ):
            if results and not results[-1][1] and name != "cleanup":
                results.append((name, False, "skipped: an earlier check failed"))
                continue
            ok, reason = check()
            results.append((name, ok, reason))
        return results

    def connectivity(self) -> tuple[bool, str]:
        started = time.perf_counter()
        try:
            check_reachable(self.base_url)
        except StressError as exc:
            return False, str(exc)
        return True, f"{self.base_url} answered in {(time.perf_counter() - started) * 1000:.0f} ms"

    def registration(self) -> tuple[bool, str]:
        reply = self.api.register(self.name, self.password, f"{self.name}@amanflix-stress.test")
        data = reply.json()
        if reply.status != 200 or not isinstance(data, dict) or not data.get("api_key"):
            return (
                False,
                f"POST /api/auth/register answered {reply.status or reply.error}: {reply.body[:120]!r}",
            )
        subject = token_subject(data["api_key"])
        if subject in (None, "None"):
            return (
                False,
                "register answered 200 with a token for user 'None' (a lost insert: the database is locked)",
            )
        self.api.set_token(data["api_key"])
        self.user_id = int(subject) if subject.isdigit() else None
        return True, f"test account {self.name} registered (user id {subject})"

    def authentication(self) -> tuple[bool, str]:
        reply = self.api.profile()
        data = reply.json()
        if reply.status != 200 or not isinstance(data, dict) or data.get("username") != self.name:
            return (
                False,
                f"GET /api/auth/profile with the new token answered {reply.status}: {reply.body[:120]!r}",
            )
        return True, "the token works on GET /api/auth/profile"

    def content(self) -> tuple[bool, str]:
        try:
            self.catalog = fetch_catalog(self.api)
        except SetupFailed as exc:
            return False, str(exc)
        return (
            True,
            f"{len(self.catalog['movies'])} movies and {len(self.catalog['episodes'])} episodes with a token",
        )

    def watch_history(self) -> tuple[bool, str]:
        kind, body, key = self._probe_write()
        reply = self.api.update_history(body)
        echoed = (reply.json() or {}).get("watch_timestamp") if reply.status == 200 else None
        if reply.status != 200 or echoed != PROBE_POSITION_S:
            return (
                False,
                f"POST /api/watch-history/update answered {reply.status} "
                f"echoing {echoed}, sent {PROBE_POSITION_S}",
            )
        back = self.api.get_history(*key)
        stored = (back.json() or {}).get("watch_timestamp") if back.status == 200 else None
        if stored != PROBE_POSITION_S:
            return False, f"read-back of the write answered {back.status} with {stored}: the write was lost"
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

    def cleanup(self) -> tuple[bool, str]:
        if self.api.token is None:
            return True, "nothing was created"
        if self.admin and self.user_id is not None:
            admin = AdminApi(
                HttpClient(self.base_url, -1, self.samples.append, timeout_s=10.0, connect_timeout_s=3.0)
            )
            if admin.login(*self.admin):
                reply = admin.batch_delete([self.user_id], self.admin[1])
                if reply.status == 200 and (reply.json() or {}).get("deleted_count") == 1:
                    return True, "test account and its rows removed (admin batch delete)"
        reply = self.api.delete_self(self.password)
        if reply.status != 200:
            return (
                False,
                f"DELETE /api/auth/delete answered {reply.status}: test account {self.name} is left behind",
            )
        return True, (
            "test account deleted; the server keeps its watch-history row (self-delete does not "
            "cascade: give admin credentials to remove it too)"
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
