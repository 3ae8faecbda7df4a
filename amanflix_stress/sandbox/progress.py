"""Watch-history rows as the API shows them: record JSON, per-title latest rows, show progress."""

from __future__ import annotations

from sqlalchemy import select

from . import schema
from .catalog import iso
from .storage import db, sandbox

W = schema.watch_history


def record_json(row) -> dict:
    """The /update record. A lost insert has watched_at None: .isoformat() then fails just like upstream."""
    return {
        "id": row["id"],
        "content_type": row["content_type"],
        "content_id": row["content_id"],
        "watch_timestamp": row["watch_timestamp"],
        "total_duration": row["total_duration"],
        "progress_percentage": row["progress_percentage"],
        "season_number": row["season_number"],
        "episode_number": row["episode_number"],
        "watched_at": row["watched_at"].isoformat(),
        "last_watched": row["last_watched"].isoformat(),
        "is_completed": bool(row["is_completed"]),
    }


def user_rows(user_id: int, conn=None) -> list:
    """All of a user's rows, lowest id first (the order upstream's lookups see them in)."""
    query = select(W).where(W.c.user_id == user_id).order_by(W.c.id)
    return (conn or db()).execute(query).mappings().all()


def latest_by_title(rows) -> dict:
    """(content_type, content_id) -> the most recently watched row; ties go to the higher id."""
    latest: dict = {}
    for row in rows:
        key = (row["content_type"], row["content_id"])
        best = latest.get(key)
        if best is None or (row["last_watched"], row["id"]) >= (best["last_watched"], best["id"]):
            latest[key] = row
    return latest


def episode_id(row) -> str | None:
    ep = sandbox().catalog.episode(row["content_id"], row["season_number"], row["episode_number"])
    return ep["video_id"] if ep else None


def summary(row) -> dict:
    """The `watch_history` object attached to content items."""
    return {
        "content_type": row["content_type"],
        "content_id": row["content_id"],
        "watch_timestamp": row["watch_timestamp"],
        "total_duration": row["total_duration"],
        "progress_percentage": row["progress_percentage"],
        "is_completed": bool(row["is_completed"]),
        "last_watched": iso(row["last_watched"]),
        "episode_id": episode_id(row) if row["content_type"] == "tv" else None,
    }


def show_progress(row) -> dict:
    """Where a viewer is in a show, from its latest episode row."""
    catalog, show_id = sandbox().catalog, row["content_id"]
    season, number = row["season_number"], row["episode_number"]
    current, following = (
        catalog.episode(show_id, season, number),
        catalog.next_episode(show_id, season, number),
    )
    last = current is not None and following is None
    return {
        "season_number": season,
        "episode_number": number,
        "episode_details": current,
        "last_episode": last,
        "finished_show": last and bool(row["is_completed"]),
        "next_episode": following,
    }


def attach(items: list, user_id: int) -> list:
    """Copies of `items`, each with `watch_history` when the user has watched it."""
    latest = latest_by_title(user_rows(user_id))
    return [_with_history(item, latest) for item in items]


def _with_history(item: dict, latest: dict) -> dict:
    is_tv = item.get("media_type") == "tv"
    row = latest.get(("tv", item["show_id"]) if is_tv else ("movie", item["id"]))
    if row is None:
        return item
    history = summary(row)
    if is_tv:
        history.update(show_progress(row))
    return dict(item, watch_history=history)
