"""The Amanflix client: each endpoint the users call, with the contract's encodings, token rules and names."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter

from amanflix_stress.amanflix.detect import (
    UNVERIFIABLE_KEY,
    busy_window_s,
    explicit_lock,
    in_window,
    suspect_counter,
    timing_lock,
)
from amanflix_stress.engine.client import OK_STATUSES, HttpClient, Reply
from amanflix_stress.errors import SetupFailed

TOKEN_RETRY_REASONS = ("token_expired", "user_logged_out", "token_invalid")
RELOGIN_SPACING_S = (
    1.1  # the server's tokens have one-second granularity: same second, same (maybe blacklisted) token
)
OK = range(200, 300)


def token_claim(token: str, claim: str):
    """A claim of a JWT, read without verifying it (the server signs; we only look)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[claim]
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def token_subject(token: str) -> str | None:
    subject = token_claim(token, "sub")
    return None if subject is None else str(subject)


def error_reason(reply: Reply) -> str:
    data = reply.json()
    return str(data.get("error_reason", "")) if isinstance(data, dict) else ""


class AmanflixApi:
    """One session of one account: its token and calls. Every call records one Sample through the client."""

    def __init__(
        self,
        client: HttpClient,
        lock_wait_s: float = 5.0,
        lock_tolerance_s: float = 0.6,
        counts: Counter | None = None,
    ) -> None:
        self.client = client
        self.token: str | None = None
        self.last_login_mono = 0.0
        self.window = busy_window_s(lock_wait_s, lock_tolerance_s)
        self.counts = Counter() if counts is None else counts  # the user's counters: suspected lock waits

    def set_token(self, token: str | None) -> None:
        self.token = token
        if token:
            self.client.headers["Authorization"] = f"Bearer {token}"
        else:
            self.client.headers.pop("Authorization", None)

    def call(
        self, name: str, method: str, path: str, *, expect=OK, check=None, unverifiable=False, **kwargs
    ) -> Reply:
        """One request judged for locks: the body's own words, then the caller's check (an echo or a
        read-back), then the busy-timeout signature of a bare 5xx (timing only). A slow 2xx of a write with
        no read-back (`unverifiable`) is counted as a suspected lock wait, never as a failure."""

        def judge(reply: Reply):
            return (
                explicit_lock(reply)
                or (check(reply) if check else None)
                or timing_lock(reply, self.window, method != "GET")
            )

        reply = self.client.call(name, method, path, expect=expect, check=judge, **kwargs)
        if unverifiable and 200 <= reply.status < 300 and not reply.error:
            self.counts[f"{UNVERIFIABLE_KEY}:{name}"] += 1
            if in_window(reply, self.window):
                self.counts[suspect_counter(name, reply)] += 1
        return reply

    # auth (form bodies)
    def register(self, username: str, password: str, email: str, check=None) -> Reply:
        return self.call(
            "POST /api/auth/register",
            "POST",
            "/api/auth/register",
            form={"username": username, "password": password, "email": email},
            check=check,
        )

    def login(self, username: str, password: str, expect=OK, check=None) -> Reply:
        """Log in, but not in the second the current token was issued in: that would return the same token."""
        issued_s = token_claim(self.token, "iat") if self.token else None
        wait_s = max(
            self.last_login_mono + RELOGIN_SPACING_S - time.monotonic(),
            (issued_s + RELOGIN_SPACING_S - time.time()) if isinstance(issued_s, (int, float)) else 0.0,
        )
        if wait_s > 0:
            time.sleep(wait_s)
        reply = self.call(
            "POST /api/auth/login",
            "POST",
            "/api/auth/login",
            form={"username": username, "password": password},
            expect=expect,
            check=check,
        )
        self.last_login_mono = time.monotonic()
        data = reply.json()
        if reply.status == 200 and isinstance(data, dict) and data.get("api_key"):
            self.set_token(data["api_key"])
        return reply

    def profile(self) -> Reply:
        return self.call("GET /api/auth/profile", "GET", "/api/auth/profile")

    def update_profile(self, username: str, email: str, check=None) -> Reply:
        return self.call(
            "POST /api/auth/update",
            "POST",
            "/api/auth/update",
            form={"username": username, "email": email},
            check=check,
            unverifiable=True,
        )

    def logout(self) -> Reply:
        return self.call("POST /api/auth/logout", "POST", "/api/auth/logout", unverifiable=True)

    def delete_self(self, password: str) -> Reply:
        return self.call("DELETE /api/auth/delete", "DELETE", "/api/auth/delete", form={"password": password})

    # content (reads)
    def movies(self, page: int = 1, per_page: int = 20) -> Reply:
        return self.call("GET /api/movies", "GET", "/api/movies", query={"page": page, "per_page": per_page})

    def shows(self, page: int = 1, per_page: int = 20) -> Reply:
        return self.call("GET /api/shows", "GET", "/api/shows", query={"page": page, "per_page": per_page})

    def movie(self, movie_id: int) -> Reply:
        return self.call("GET /api/movies/{id}", "GET", f"/api/movies/{movie_id}")

    def show(self, show_id: int) -> Reply:
        return self.call("GET /api/shows/{id}", "GET", f"/api/shows/{show_id}")

    def movies_search(self, q: str) -> Reply:
        return self.call(
            "GET /api/movies/search", "GET", "/api/movies/search", query={"q": q, "max_results": 5}
        )

    def discovery(self, kind: str) -> Reply:
        return self.call(
            f"GET /api/discovery/{kind}", "GET", f"/api/discovery/{kind}", query={"per_page": 10}
        )

    def search(self, q: str) -> Reply:
        return self.call("GET /api/search", "GET", "/api/search", query={"q": q, "max_results": 10})

    def autocomplete(self, q: str) -> Reply:
        return self.call("GET /api/autocomplete", "GET", "/api/autocomplete", query={"q": q})

    # watch history (JSON bodies)
    def update_history(self, body: dict, check=None) -> Reply:
        return self.call(
            "POST /api/watch-history/update", "POST", "/api/watch-history/update", json=body, check=check
        )

    def history(self, page: int = 1, per_page: int = 50, check=None) -> Reply:
        return self.call(
            "GET /api/watch-history/history",
            "GET",
            "/api/watch-history/history",
            query={"page": page, "per_page": per_page},
            check=check,
        )

    def continue_watching(self) -> Reply:
        return self.call(
            "GET /api/watch-history/continue-watching", "GET", "/api/watch-history/continue-watching"
        )

    def get_history(self, content_type: str, content_id: int, season=None, episode=None, check=None) -> Reply:
        query = {"season": season, "episode": episode} if content_type == "tv" else None
        return self.call(
            "GET /api/watch-history/get/{type}/{id}",
            "GET",
            f"/api/watch-history/get/{content_type}/{content_id}",
            query=query,
            expect=(200, 404),
            check=check,
        )

    def next_episode(self, show_id: int) -> Reply:
        return self.call(
            "GET /api/watch-history/next-episode/{id}", "GET", f"/api/watch-history/next-episode/{show_id}"
        )

    # my list (form bodies; 400 means "already in that state")
    def mylist(self, action: str, content_type: str, content_id: int, check=None) -> Reply:
        return self.call(
            f"POST /api/mylist/{action}",
            "POST",
            f"/api/mylist/{action}",
            form={"content_type": content_type, "content_id": content_id},
            expect=(200, 400),
            check=check,
        )

    def mylist_all(self, page: int = 1, per_page: int = 50, check=None) -> Reply:
        return self.call(
            "GET /api/mylist/all",
            "GET",
            "/api/mylist/all",
            query={"page": page, "per_page": per_page},
            check=check,
        )

    # notifications
    def notifications(self) -> Reply:
        return self.call("GET /api/notifications", "GET", "/api/notifications")

    def unread_count(self) -> Reply:
        return self.call("GET /api/notifications/unread/count", "GET", "/api/notifications/unread/count")

    # analytics (JSON bodies; token optional)
    def start_session(self) -> Reply:
        return self.call(
            "POST /api/analytics/sessions",
            "POST",
            "/api/analytics/sessions",
            expect=(200, 201),
            unverifiable=True,
        )

    def heartbeat(self, session_id: str) -> Reply:
        return self.call(
            "POST /api/analytics/heartbeat",
            "POST",
            "/api/analytics/heartbeat",
            json={"session_id": session_id},
            unverifiable=True,
        )

    def end_session(self, session_id: str) -> Reply:
        return self.call(
            "POST /api/analytics/end-session",
            "POST",
            "/api/analytics/end-session",
            json={"session_id": session_id},
            unverifiable=True,
        )


class AdminApi:
    """The admin calls used to set up and clean up: login, user list, batch delete."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def login(self, username: str, password: str) -> bool:
        self.sign_in(username, password)
        return self.signed_in

    def sign_in(self, username: str, password: str, expect=OK_STATUSES) -> Reply:
        """Log in: on success the later calls carry the admin token. The reply says how it went."""
        reply = self.client.call(
            "POST /api/admin/login",
            "POST",
            "/api/admin/login",
            form={"username": username, "password": password},
            expect=expect,
        )
        data = reply.json()
        if reply.status == 200 and isinstance(data, dict) and data.get("api_key"):
            self.client.headers["Authorization"] = f"Bearer {data['api_key']}"
        return reply

    @property
    def signed_in(self) -> bool:
        return "Authorization" in self.client.headers

    def users(self) -> list[dict]:
        """Every user; SetupFailed when the list cannot be read (an empty list would claim none are left)."""
        reply = self.client.call("GET /api/admin/user/list", "GET", "/api/admin/user/list")
        data = reply.json()
        if reply.status != 200 or not isinstance(data, list):
            raise SetupFailed(f"GET /api/admin/user/list answered {reply.status or reply.error}")
        return [u for u in data if isinstance(u, dict)]

    def batch_delete(self, user_ids: list[int], password: str) -> Reply:
        return self.client.call(
            "DELETE /api/admin/user/batch-delete",
            "DELETE",
            "/api/admin/user/batch-delete",
            json={"user_ids": user_ids, "password": password},
        )
