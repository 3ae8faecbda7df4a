"""/api/discovery (random, trending, featured, new-titles) and public /api/search and /api/autocomplete."""

from __future__ import annotations

import difflib
import random
from datetime import timedelta

from flask import Blueprint, jsonify, request

from .authz import user_required
from .catalog import utcnow
from .content import filtered, maybe_history
from .params import flag, float_arg, int_arg, page_of
from .storage import sandbox

bp = Blueprint("discovery", __name__, url_prefix="/api/discovery")
search_bp = Blueprint("search", __name__, url_prefix="/api")


def pool() -> list:
    """Movies and/or shows per `content_type`; every item gets `id` (shows: copied from show_id)."""
    kind, catalog = request.args.get("content_type", ""), sandbox().catalog
    movies = catalog.movies if kind in ("", "movie") else []
    shows = [dict(s, id=s["show_id"]) for s in catalog.shows] if kind in ("", "tv") else []
    return movies + shows


def _page(items: list, per_page_default: int = 20) -> list:
    return maybe_history(page_of(items, int_arg("page", 1), int_arg("per_page", per_page_default)))


@bp.get("/random")
@user_required
def random_titles():
    items = filtered(pool())
    random.shuffle(items)
    return jsonify(_page(items, per_page_default=1))


@bp.get("/trending")
@user_required
def trending():
    items = [
        dict(i, popularity_score=i["vote_average"] * 10) for i in filtered(pool()) if i.get("vote_average")
    ]
    return jsonify(_page(sorted(items, key=lambda i: -i["popularity_score"])))


@bp.get("/featured")
@user_required
def featured():
    ranked = sorted(filtered(pool(), min_rating=7.0), key=lambda i: -(i.get("vote_average") or 0))
    page, per_page = int_arg("page", 1), int_arg("per_page", 20)
    if page < 1 or per_page < 1:
        return jsonify([])
    window = ranked[(page - 1) * per_page : (page + 1) * per_page]
    random.shuffle(window)
    return jsonify(maybe_history(window[:per_page]))


@bp.get("/new-titles")
@user_required
def new_titles():
    since = (utcnow() - timedelta(days=float_arg("days", 5))).isoformat()
    items = [i for i in filtered(pool()) if (i.get("added_at") or "") >= since]
    return jsonify(_page(sorted(items, key=lambda i: i["added_at"], reverse=True)))


def _search_pool() -> list:
    media, catalog = request.args.get("media_type", "all"), sandbox().catalog
    movies = [dict(m, type="movie") for m in catalog.movies] if media in ("all", "movies") else []
    shows = [dict(s, type="tv_series") for s in catalog.shows] if media in ("all", "tv") else []
    return filtered(movies + shows)


def _matching(items: list, query: str) -> list:
    if not query:
        return items
    if not flag("fuzzy"):
        return [i for i in items if query in i["title"].lower()]
    threshold = float_arg("fuzzy_threshold", 0.25)
    scored = [(difflib.SequenceMatcher(None, query, i["title"].lower()).ratio(), i) for i in items]
    return [
        i
        for score, i in sorted(scored, key=lambda p: -p[0])
        if score >= threshold or query in i["title"].lower()
    ]


@search_bp.get("/search")
def search():
    items = _matching(_search_pool(), request.args.get("q", "").strip().lower())
    if flag("random"):
        random.shuffle(items)
    return jsonify(items[: max(0, int_arg("max_results", 20))])


@search_bp.get("/autocomplete")
def autocomplete():
    query, catalog = request.args.get("q", "").strip().lower(), sandbox().catalog
    if not query:
        return jsonify([])
    movies = [{"id": m["id"], "title": m["title"]} for m in catalog.movies if query in m["title"].lower()]
    shows = [{"id": s["show_id"], "name": s["title"]} for s in catalog.shows if query in s["title"].lower()]
    hits = sorted(
        movies + shows, key=lambda h: not (h.get("title") or h.get("name")).lower().startswith(query)
    )
    return jsonify(hits[: max(0, int_arg("max_results", 10))])
