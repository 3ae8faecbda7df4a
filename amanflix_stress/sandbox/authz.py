"""Bearer-token checks for user and admin routes, with upstream's in-process caches and error_reason codes."""

from __future__ import annotations

import threading
import time
from functools import wraps

from flask import g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from . import schema, serverlog, tokens
from .catalog import utcnow
from .storage import db, endpoint_name, is_locked, sandbox

USER_CACHE_TTL_S = 300  # upstream: users 5 min
NOT_BLACKLISTED_TTL_S = 120  # "token not blacklisted" 2 min
BLACKLISTED_TTL_S = 600  # blacklisted tokens 10 min
ROLE_LEVEL = {"moderator": 1, "admin": 2, "superadmin": 3}

USER_FAILURES = {
    "token_missing": ("Token is missing!", 403),
    "token_invalid": ("Token is invalid!", 403),
    "token_expired": ("Token has expired!", 403),
    "user_logged_out": ("Token has been blacklisted!", 403),
    "user_not_exist": ("User not found", 404),
    "user_temp_banned": ("Your account is temporarily banned.", 403),
    "user_perm_banned": ("Your account is permanently banned.", 403),
    "auth_error": ("Authentication error", 500),
}
ADMIN_FAILURES = {
    "admin_token_missing": ("Token is missing!", 403),
    "admin_token_invalid": ("Token is invalid!", 403),
    "admin_token_expired": ("Token has expired!", 403),
    "admin_not_exist": ("Admin not found", 404),
    "admin_access_denied": ("Access denied: insufficient privileges", 403),
    "admin_auth_error": ("Authentication error", 500),
}


class AuthFailure(Exception):
    """A rejected token; `reason` is the contract's error_reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class AuthCache:
    """Thread-safe TTL caches: users by id, tokens known good, tokens blacklisted."""

    def __init__(self):
        self._lock = threading.Lock()
        self._users: dict = {}
        self._good: dict = {}
        self._bad: dict = {}

    def _get(self, table: dict, key):
        with self._lock:
            hit = table.get(key)
            return hit[1] if hit and hit[0] > time.monotonic() else None

    def _put(self, table: dict, key, value, ttl_s: float) -> None:
        with self._lock:
            table[key] = (time.monotonic() + ttl_s, value)

    def user(self, user_id: int):
        return self._get(self._users, user_id)

    def remember_user(self, user) -> None:
        self._put(self._users, user["id"], user, USER_CACHE_TTL_S)

    def forget_user(self, user_id: int) -> None:
        with self._lock:
            self._users.pop(user_id, None)

    def token_state(self, token: str) -> str | None:
        """'blacklisted', 'ok' or None when unknown."""
        if self._get(self._bad, token):
            return "blacklisted"
        return "ok" if self._get(self._good, token) else None

    def remember_token(self, token: str, blacklisted: bool) -> None:
        if blacklisted:
            self._put(self._bad, token, True, BLACKLISTED_TTL_S)
            with self._lock:
                self._good.pop(token, None)
        else:
            self._put(self._good, token, True, NOT_BLACKLISTED_TTL_S)


def bearer_token(prefix: str = "") -> str:
    """The second space-separated word of Authorization (upstream's parsing)."""
    header = request.headers.get("Authorization")
    if not header:
        raise AuthFailure(prefix + "token_missing")
    try:
        return header.split(" ")[1]
    except IndexError:
        raise AuthFailure(prefix + "auth_error") from None


def _subject(claims: dict, prefix: str = "") -> int:
    try:
        return int(claims["sub"])
    except (KeyError, TypeError, ValueError):
        raise AuthFailure(prefix + "auth_error") from None


def _decode(token: str, prefix: str = "") -> dict:
    try:
        return tokens.decode(token)
    except tokens.TokenError as exc:
        raise AuthFailure(f"{prefix}token_{exc.reason}") from None


def _guard_db(fn, prefix: str = ""):
    """Run a DB read of the token check; a DB error (e.g. a lock) becomes auth_error."""
    try:
        return fn()
    except SQLAlchemyError as exc:
        if is_locked(exc):
            sandbox().store.count_lock(exc, endpoint_name() + " (token check)")
        source, check = (
            (serverlog.ADMIN_TOKEN_REQUIRED_SOURCE, "admin_token_required")
            if prefix
            else (serverlog.TOKEN_REQUIRED_SOURCE, "token_required")
        )
        sandbox().store.log.record("ERROR", source, f"Unexpected error in {check}: {exc}")
        raise AuthFailure(prefix + "auth_error") from None


def _is_blacklisted(token: str) -> bool:
    cache = sandbox().auth_cache
    state = cache.token_state(token)
    if state is None:
        query = select(schema.blacklist_token.c.id).where(schema.blacklist_token.c.token == token).limit(1)
        state = "blacklisted" if _guard_db(lambda: db().execute(query).first()) else "ok"
        cache.remember_token(token, state == "blacklisted")
    return state == "blacklisted"


def load_user(user_id: int):
    """The user row (cached for USER_CACHE_TTL_S) or None."""
    cache = sandbox().auth_cache
    user = cache.user(user_id)
    if user is None:
        query = select(schema.user).where(schema.user.c.id == user_id)
        user = _guard_db(lambda: db().execute(query).mappings().first())
        if user is not None:
            cache.remember_user(user)
    return user


def _check_ban(user) -> None:
    if not user["is_banned"]:
        return
    if user["ban_until"] is None:
        raise AuthFailure("user_perm_banned")
    if user["ban_until"] > utcnow():
        raise AuthFailure("user_temp_banned")


def authenticate():
    """The user named by the request's token, or AuthFailure."""
    token = bearer_token()
    if _is_blacklisted(token):
        raise AuthFailure("user_logged_out")
    user = load_user(_subject(_decode(token)))
    if user is None:
        raise AuthFailure("user_not_exist")
    _check_ban(user)
    g.token = token
    return user


def authenticate_admin(min_role: str):
    """The admin named by the token (nothing checks the `role` claim, as upstream), or AuthFailure."""
    admin_id = _subject(_decode(bearer_token("admin_"), "admin_"), "admin_")
    query = select(schema.admin).where(schema.admin.c.id == admin_id)
    admin = _guard_db(lambda: db().execute(query).mappings().first(), "admin_")
    if admin is None:
        raise AuthFailure("admin_not_exist")
    if ROLE_LEVEL.get(admin["role"], 0) < ROLE_LEVEL[min_role]:
        raise AuthFailure("admin_access_denied")
    return admin


def failure_response(reason: str):
    message, status = {**USER_FAILURES, **ADMIN_FAILURES}[reason]
    return jsonify(message=message, error_reason=reason), status


def user_required(view):
    """Route decorator: sets g.user or answers the contract's auth error."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        try:
            g.user = authenticate()
        except AuthFailure as exc:
            return failure_response(exc.reason)
        return view(*args, **kwargs)

    return wrapper


def admin_required(min_role: str = "admin"):
    """Route decorator for admin routes: sets g.admin."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            try:
                g.admin = authenticate_admin(min_role)
            except AuthFailure as exc:
                return failure_response(exc.reason)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def optional_user():
    """The token's user if a valid token was sent, else None (analytics routes)."""
    if not request.headers.get("Authorization"):
        return None
    try:
        return authenticate()
    except AuthFailure:
        return None
