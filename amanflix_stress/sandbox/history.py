"""/api/watch-history: update (check-then-insert or real upsert per mode) and the read endpoints."""

from __future__ import annotations

import re

from flask import Blueprint, g, jsonify, request
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError

from . import progress, schema
from .authz import user_required
from .catalog import utcnow
from .params import int_arg, page_of
from .progress import W, latest_by_title, record_json, show_progress, summary, user_rows
from .storage import db, endpoint_name, sandbox

bp = Blueprint("history", __name__, url_prefix="/api/watch-history")
INVALID_WATCH_ID = {"message": "Invalid watch ID format"}
WATCH_ID = re.compile(r"^(?:m-(\d+)|t-(\d+)-(\d+)-(\d+))$")
FIXED_UPSERT = text(f"""
INSERT INTO watch_history (user_id, content_type, content_id, watch_timestamp, total_duration,
    progress_percentage, season_number, episode_number, is_completed)
VALUES (:user_id, :content_type, :content_id, :watch_timestamp, :total_duration,
    :progress_percentage, :season_number, :episode_number, :is_completed)
ON CONFLICT ({schema.WATCH_HISTORY_KEY}) DO UPDATE SET watch_timestamp = excluded.watch_timestamp,
    total_duration = excluded.total_duration, progress_percentage = excluded.progress_percentage,
    is_completed = excluded.is_completed, last_watched = :now
RETURNING id""")


def _eq(column, value):
    return column.is_(None) if value is None else column == value


def identity(user_id, content_type, content_id, season=None, episode=None) -> list:
    """Row identity: movie = (user, id, type); tv adds season and episode."""
    conds = [W.c.user_id == user_id, _eq(W.c.content_id, content_id), _eq(W.c.content_type, content_type)]
    if content_type == "tv":
        conds += [_eq(W.c.season_number, season), _eq(W.c.episode_number, episode)]
    return conds


def _reload(conn, row_id):
    return conn.execute(select(W).where(W.c.id == row_id)).mappings().first()


def upsert_legacy(conn, values: dict) -> dict:
    """Upstream: select the first matching row, else insert (no unique key: races make duplicates).
    A lost write answers with the old row, or with a pending row whose watched_at is None."""
    store, endpoint = sandbox().store, endpoint_name()
    where = identity(
        values["user_id"],
        values["content_type"],
        values["content_id"],
        values["season_number"],
        values["episode_number"],
    )
    existing = conn.execute(select(W).where(*where).order_by(W.c.id).limit(1)).mappings().first()
    if existing is not None:
        changes = {
            k: values[k] for k in ("watch_timestamp", "total_duration", "progress_percentage", "is_completed")
        }
        stmt = update(W).where(W.c.id == existing["id"]).values(last_watched=utcnow(), **changes)
        store.write(conn, endpoint, lambda c: c.execute(stmt))
        return _reload(conn, existing["id"])
    ok, new_id = store.write(
        conn, endpoint, lambda c: c.execute(insert(W).values(**values)).inserted_primary_key[0]
    )
    if not ok:
        return dict(values, id=None, watched_at=None, last_watched=None)
    first_id = conn.execute(select(W.c.id).where(*where).order_by(W.c.id).limit(1)).scalar()
    if (
        first_id != new_id
    ):  # writes are serialised, so the lower id committed first: this row is the extra one
        sandbox().truth.duplicate_created()
    return _reload(conn, new_id)


def upsert_fixed(conn, values: dict) -> dict:
    """`fixed`: INSERT ... ON CONFLICT DO UPDATE on the unique key."""
    params = dict(values, now=utcnow())
    _, row_id = sandbox().store.write(
        conn, endpoint_name(), lambda c: c.execute(FIXED_UPSERT, params).scalar_one()
    )
    return _reload(conn, row_id)


def upstream_percent(timestamp: object, duration: object) -> float:
    """Upstream's `(timestamp / duration) * 100 if duration > 0 else 0` on the raw JSON values, raising the
    TypeError (same message) Python raises there when a value it reaches is not a number (missing: None)."""
    if not isinstance(duration, (int, float)):
        raise TypeError(f"'>' not supported between instances of '{type(duration).__name__}' and 'int'")
    if not duration > 0:
        return 0
    if not isinstance(timestamp, (int, float)):
        names = f"'{type(timestamp).__name__}' and '{type(duration).__name__}'"
        raise TypeError(f"unsupported operand type(s) for /: {names}")
    return (timestamp / duration) * 100


def update_values(data: dict, user_id: int) -> dict:
    """Columns for /update; total_duration that is not a number raises TypeError (upstream's 500 page)."""
    timestamp, duration = data.get("watch_timestamp"), data.get("total_duration")
    percent = upstream_percent(timestamp, duration)
    return {
        "user_id": user_id,
        "content_type": data.get("content_type"),
        "content_id": data.get("content_id"),
        "watch_timestamp": timestamp,
        "total_duration": duration,
        "progress_percentage": percent,
        "season_number": data.get("season_number"),
        "episode_number": data.get("episode_number"),
        "is_completed": percent > 90,
    }


@bp.post("/update")
@user_required
def update_history():
    data = request.get_json()  # not JSON -> 415 HTML, like upstream
    if not data:
        return jsonify(message="No data provided"), 400
    values = update_values(data, g.user["id"])
    upsert = upsert_fixed if sandbox().store.mode == "fixed" else upsert_legacy
    try:
        row = upsert(db(), values)
    except IntegrityError:
        return jsonify(message="Failed to update watch history due to database error"), 500
    return jsonify(record_json(row))


def _continue_item(row):
    content = sandbox().catalog.content(row["content_type"], row["content_id"])
    if content is None:
        return None
    item = dict(content, source="database", watch_history=record_json(row))
    if row["content_type"] == "movie":
        return item if 1 < (row["progress_percentage"] or 0) < 90 else None
    following = show_progress(row)["next_episode"]
    if row["is_completed"] and following is None:
        return None
    item["watch_history"]["next_episode"] = following
    return item


@bp.get("/continue-watching")
@user_required
def continue_watching():
    rows = _newest_first(latest_by_title(user_rows(g.user["id"])).values(), ("movie", "tv"))
    items = [i for i in (_continue_item(r) for r in rows) if i]
    return jsonify(page_of(items, int_arg("page", 1), int_arg("per_page", 10)))


def _history_item(row, rows):
    content = sandbox().catalog.content(row["content_type"], row["content_id"])
    if content is None:
        return None
    if row["content_type"] == "movie":
        return dict(
            content, source="database", watch_id=f"m-{row['content_id']}", watch_history=record_json(row)
        )
    episodes = {
        (r["season_number"], r["episode_number"])
        for r in rows
        if r["content_type"] == "tv" and r["content_id"] == row["content_id"]
    }
    return dict(
        content,
        source="database",
        watch_history=record_json(row),
        watch_id=f"t-{row['content_id']}-{row['season_number']}-{row['episode_number']}",
        episode_details=show_progress(row)["episode_details"],
        watched_episodes=len(episodes),
    )


@bp.get("/history")
@user_required
def history():
    kind = request.args.get("content_type")
    if kind and kind not in ("movie", "tv"):
        return jsonify(message='Invalid content_type. Must be "movie" or "tv"'), 400
    page, per_page = int_arg("page", 1), min(int_arg("per_page", 24), 50)
    rows = user_rows(g.user["id"])
    entries = _newest_first(latest_by_title(rows).values(), (kind,) if kind else ("movie", "tv"))
    items = [i for i in (_history_item(r, rows) for r in page_of(entries, page, per_page)) if i]
    total = len(entries)  # counts titles missing from the catalog although items drops them, like upstream
    return jsonify(items=items, page=page, per_page=per_page, total=total, has_more=page * per_page < total)


def _newest_first(rows, kinds: tuple) -> list:
    chosen = [r for r in rows if r["content_type"] in kinds]
    return sorted(chosen, key=lambda r: (r["last_watched"], r["id"]), reverse=True)


def _first_row(content_type, content_id, season=None, episode=None):
    where = [W.c.user_id == g.user["id"], W.c.content_type == content_type, W.c.content_id == content_id]
    where += [W.c.season_number == season] if season is not None else []
    where += [W.c.episode_number == episode] if episode is not None else []
    return db().execute(select(W).where(*where).order_by(W.c.id).limit(1)).mappings().first()


def _record_or_404(row):
    return (
        (jsonify(record_json(row)), 200)
        if row is not None
        else (jsonify(message="No watch history found"), 404)
    )


@bp.get("/get/<content_type>/<int:content_id>")
@user_required
def get_record(content_type: str, content_id: int):
    season, episode = request.args.get("season", type=int), request.args.get("episode", type=int)
    return _record_or_404(_first_row(content_type, content_id, season, episode))


@bp.get("/get-by-id/<watch_id>")
@user_required
def get_by_id(watch_id: str):
    match = WATCH_ID.match(watch_id)
    if match is None:
        return jsonify(INVALID_WATCH_ID), 400
    movie_id, show_id, season, episode = (int(x) if x else None for x in match.groups())
    row = (
        _first_row("movie", movie_id) if movie_id is not None else _first_row("tv", show_id, season, episode)
    )
    return _record_or_404(row)


def _latest_for(content_type: str, content_id: int):
    rows = [
        r
        for r in user_rows(g.user["id"])
        if r["content_type"] == content_type and r["content_id"] == content_id
    ]
    return latest_by_title(rows).get((content_type, content_id))


@bp.get("/current/<content_type>/<int:content_id>")
@user_required
def current(content_type: str, content_id: int):
    if content_type not in ("movie", "tv"):
        return jsonify(message='Invalid content type. Must be "movie" or "tv"'), 400
    row = _latest_for(content_type, content_id)
    if row is None:
        what = "movie" if content_type == "movie" else "TV show"
        return jsonify(message=f"No watch history found for this {what}"), 404
    data = {k: v for k, v in summary(row).items() if k not in ("last_watched", "episode_id")}
    if content_type == "tv":
        where = show_progress(row)
        data.update(
            season_number=row["season_number"],
            episode_number=row["episode_number"],
            episode_id=progress.episode_id(row),
            episode_details=where["episode_details"],
            next_episode=where["next_episode"],
        )
    return jsonify(data)


@bp.get("/show/<int:show_id>")
@user_required
def show_episodes(show_id: int):
    rows = [r for r in user_rows(g.user["id"]) if r["content_type"] == "tv" and r["content_id"] == show_id]
    first: dict[tuple[int | None, int | None], dict] = {}
    for r in rows:  # lowest id per episode, as upstream's lookups see it
        first.setdefault((r["season_number"], r["episode_number"]), r)
    return jsonify(
        [
            {
                "episodeId": f"{show_id}{s}{e}",
                "seasonNumber": s,
                "episodeNumber": e,
                "progress": r["progress_percentage"],
                "is_completed": bool(r["is_completed"]),
                "last_watched": r["last_watched"].isoformat() if r["last_watched"] else None,
            }
            for (s, e), r in sorted(first.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or 0))
        ]
    )


def _episode_json(ep: dict, is_next_season: bool, restarted: bool) -> dict:
    keys = ("season_number", "episode_number", "title", "overview", "runtime", "video_id")
    return dict({k: ep[k] for k in keys}, is_next_season=is_next_season, restarted=restarted)


@bp.get("/next-episode/<int:show_id>")
@user_required
def next_episode(show_id: int):
    catalog = sandbox().catalog
    episodes = catalog.episodes(show_id)
    if show_id not in catalog.show_by_id or not episodes:
        return jsonify(message="Show not found"), 404
    row = _latest_for("tv", show_id)
    current_ep = row and catalog.episode(show_id, row["season_number"], row["episode_number"])
    if not current_ep:
        return jsonify(_episode_json(episodes[0], False, False))
    if not row["is_completed"]:
        return jsonify(
            dict(
                _episode_json(current_ep, False, False),
                watch_timestamp=row["watch_timestamp"],
                progress_percentage=row["progress_percentage"],
            )
        )
    following = catalog.next_episode(show_id, row["season_number"], row["episode_number"])
    if following is None:
        return jsonify(_episode_json(episodes[0], False, True))
    return jsonify(_episode_json(following, following["season_number"] != row["season_number"], False))


@bp.get("/parse/<watch_id>")
def parse(watch_id: str):
    """No auth. Non-numeric parts raise ValueError (upstream's 500 page), a wrong shape is a 400."""
    parts = watch_id.split("-")
    if parts[0] == "m" and len(parts) == 2:
        return jsonify(content_type="movie", content_id=int(parts[1]))
    if parts[0] == "t" and len(parts) == 4:
        show_id, season, number = (int(p) for p in parts[1:])
        return jsonify(content_type="tv", content_id=show_id, season_number=season, episode_number=number)
    return jsonify(INVALID_WATCH_ID), 400
