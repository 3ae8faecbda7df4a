"""HS256 JWTs and PBKDF2 password hashes, by hand (no PyJWT / bcrypt dependency)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

JWT_SECRET = b"test"  # upstream hard-codes the secret "test"
USER_TOKEN_TTL_S = 10 * 24 * 3600
ADMIN_TOKEN_TTL_S = 24 * 3600


class TokenError(Exception):
    """A token that cannot be trusted; `reason` is 'invalid' or 'expired'."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(signing_input: str) -> str:
    return _b64(hmac.new(JWT_SECRET, signing_input.encode("ascii"), hashlib.sha256).digest())


def encode(claims: dict) -> str:
    """Sign `claims` as a compact HS256 JWT."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{payload}.{_sign(header + '.' + payload)}"


def decode(token: str, now: float | None = None) -> dict:
    """Verify signature and expiry; raise TokenError otherwise."""
    try:
        header, payload, signature = token.split(".")
        claims = json.loads(_unb64(payload))
    except (ValueError, UnicodeDecodeError):
        raise TokenError("invalid") from None
    if not isinstance(claims, dict) or not hmac.compare_digest(signature, _sign(header + "." + payload)):
        raise TokenError("invalid")
    if "exp" in claims and float(claims["exp"]) < (time.time() if now is None else now):
        raise TokenError("expired")
    return claims


def user_token(user_id, now: int | None = None, ttl_s: int = USER_TOKEN_TTL_S) -> str:
    """A user token: sub is str(user id) (so a lost insert gives sub 'None', like upstream)."""
    iat = int(time.time()) if now is None else now
    return encode({"sub": str(user_id), "iat": iat, "exp": iat + ttl_s})


def admin_token(admin_id, role: str, now: int | None = None) -> str:
    """An admin token: a user token plus `role`, valid one day."""
    iat = int(time.time()) if now is None else now
    return encode({"sub": str(admin_id), "role": role, "iat": iat, "exp": iat + ADMIN_TOKEN_TTL_S})


def hash_password(password: str, iterations: int) -> str:
    """PBKDF2-SHA256 with a random salt; the cost travels with the hash."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def check_password(stored: str, password: str) -> bool:
    """True if `password` matches a hash made by hash_password."""
    try:
        _, iterations, salt, digest = stored.split("$")
        fresh = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except (ValueError, AttributeError):
        return False
    return hmac.compare_digest(fresh.hex(), digest)
