"""Error classification: one place that maps a request's exception or response to an error class."""

from __future__ import annotations

import html
import json
import re
import ssl

# every class the engine gives a failed request; behaviours add their own (amanflix.detect.LOCK_CLASSES)
# fd_exhausted: the generator ran out of file descriptors ("Too many open files"): its fault, not the target
ENGINE_CLASSES = (
    "connect",
    "timeout",
    "tls",
    "read",
    *(f"http_{n}xx" for n in range(1, 6)),
    "http_other",
    "fd_exhausted",
)
_TITLE = re.compile(rb"<title>(.*?)</title>", re.I | re.S)


def classify_exception(exc: BaseException) -> tuple[str, str]:
    """(error class, message) for a request that got no response (the client classes connect failures)."""
    if isinstance(exc, TimeoutError):
        return "timeout", "read timed out"
    if isinstance(exc, ssl.SSLError):  # an untrusted certificate is not a dropped connection
        return "tls", getattr(exc, "reason", None) or _short(exc)
    if isinstance(exc, OSError):  # reset, refused mid-way, broken pipe: ConnectionError and its kin
        return "read", _short(exc)
    raise exc  # a programming error must not be counted as the target's failure


def classify_status(status: int) -> str:
    """Error class of an HTTP status the caller did not expect."""
    return f"http_{status // 100}xx" if 100 <= status < 600 else "http_other"


def body_message(body: bytes, content_type: str) -> str:
    """A short, readable message from an error body: JSON's message, an HTML page's title, or its start."""
    if "html" in content_type:
        match = _TITLE.search(body[:20000])
        if match:
            return _clean(match.group(1).decode("utf-8", "replace"))
    if "json" in content_type:
        message = _json_message(body)
        if message:
            return _clean(message)
    return _clean(body[:300].decode("utf-8", "replace"))


def _json_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    message = str(data.get("message") or data.get("error") or "")
    reason = data.get("error_reason")
    return f"{message} [{reason}]" if reason else message


def _clean(text: str) -> str:
    return " ".join(html.unescape(text).split())[:300]


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]
