"""Request parameter parsing and date formats shared by the route modules."""

from __future__ import annotations

from datetime import timezone
from email.utils import format_datetime

from flask import request


def flag(name: str) -> bool:
    """Upstream's boolean flags: true for ANY non-empty value, including 'false' and '0'."""
    return bool(request.args.get(name))


def int_arg(name: str, default: int) -> int:
    return request.args.get(name, default, type=int)


def float_arg(name: str, default: float) -> float:
    return request.args.get(name, default, type=float)


def page_of(items: list, page: int, per_page: int) -> list:
    """One page of `items`; page < 1 or past the end gives []."""
    if page < 1 or per_page < 1:
        return []
    start = (page - 1) * per_page
    return items[start : start + per_page]


def http_date(value) -> str | None:
    """User/notification/session dates: RFC 1123 ('Tue, 24 Nov 2026 00:18:47 GMT')."""
    return format_datetime(value.replace(tzinfo=timezone.utc), usegmt=True) if value is not None else None


def form_field(name: str) -> str:
    """request.form[name] that raises a plain KeyError (upstream's 500 page) when the field is absent."""
    value = request.form.get(name)
    if value is None:
        raise KeyError(name)
    return value
