"""Units a person types: durations such as 90s, 10m or 1h, turned into seconds."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_BARE_NUMBER = re.compile(r"\d+(\.\d+)?")


def parse_duration_s(text) -> float:
    """'90s', '10m', '1h' or '1h30m' -> seconds. A bare number is refused: is 60 a minute or an hour?"""
    if isinstance(text, bool):
        raise ValueError("expected a duration like 90s, 10m or 1h")
    value = str(text).strip().lower()
    if isinstance(text, (int, float)) or _BARE_NUMBER.fullmatch(value):
        raise ValueError(f"{text!r} has no unit: say {_example(text)}")
    if not value or _DURATION.sub("", value) != "":
        raise ValueError(f"{text!r} is not a duration like 90s, 10m, 1h")
    seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(value))
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return seconds


def _example(number) -> str:
    """'10m or 600s' for 10: the two readings a bare number could have had, written out."""
    try:
        amount = float(number)
    except (TypeError, ValueError):
        return "10m or 600s"
    if not math.isfinite(amount) or amount <= 0:
        return "10m or 600s"
    return f"{amount:g}m or {amount * 60:g}s"
