"""Units a person types: durations such as 90s, 10m or 1h, turned into seconds."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(text) -> float:
    """'90s', '10m', '1h', '1h30m' or a bare number of minutes (the seed's convention) -> seconds."""
    if isinstance(text, bool):
        raise ValueError("expected a duration like 90s, 10m or 1h")
    if isinstance(text, (int, float)):
        seconds = float(text) * 60.0
    else:
        value = str(text).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", value):
            seconds = float(value) * 60.0
        elif value and _DURATION.sub("", value) == "":
            seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(value))
        else:
            raise ValueError(f"{text!r} is not a duration like 90s, 10m, 1h or a number of minutes")
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return seconds
