"""/api/movies and /api/shows: list, random, search, details, served from the in-process catalog."""

from __future__ import annotations

import difflib
import random

from flask import Blueprint, g, jsonify, request

from . import progress
from .authz import user_required
from .params import flag, float_arg, int_arg, page_of
from .storage import sandbox

bp = Blueprint("content", __name__, url_prefix="/api")


def _year(item: dict) -> str:
    return (item.get("release_date") or item.get("first_air_date") or "")[:4]


def filtered(items: list, min_rating: float = 0.0) -> list:
    """Apply genre / year / min_rating / max_rating query filters."""
    genre, year = (request.args.get("genre") or "").lower(), request.args.get("year", type=int)
    low, high = float_arg("min_rating", min_rating), float_arg("max_rating", 10.0)
    return [
        i
        for i in items
        if genre in (i.get("genres") or "").lower()
        and (year is None or _year(i) == str(year))
        and low <= (i.get("vote_average") or 0) <= high
    ]


def ordered(items: list) -> list:
    """sort_by / order / reverse query parameters."""
    key = request.args.get("sort_by")
    if key and items and key in items[0]:
        items = sorted(
            items, key=lambda i: (i[key] is None, i[key]), reverse=request.args.get("order") == "desc"
        )
    return list(reversed(items)) if flag("reverse") else items


def maybe_history(items: list) -> list:
    return progress.attach(items, g.user["id"]) if flag("include_watch_history") else items


def fuzzy_rank(items: list, query: str, limit: int) -> list:
    """Items ranked by similarity of their title to `query`; substring matches first."""
    query = query.lower().strip()
    if not query:
        return []
    scored = [
        (difflib.SequenceMatcher(None, query, i["title"].lower()).ratio() + (query in i["title"].lower()), i)
        for i in items
    ]
    return [i for score, i in sorted(scored, key=lambda pair: -pair[0]) if score > 0.3][:limit]


def _listing(items: list):
    page = page_of(ordered(filtered(items)), int_arg("page", 1), int_arg("per_page", 20))
    return jsonify(maybe_history(page))


@bp.get("/movies")
@user_required
def movies():
    return _listing(sandbox().catalog.movies)


@bp.get("/shows")
@user_required
def shows():
    return _listing(sandbox().catalog.shows)


@bp.get("/movies/random")
@user_required
def random_movies():
    items = filtered(sandbox().catalog.movies)
    picked = random.sample(items, max(0, min(int_arg("per_page", 20), len(items))))
    return jsonify(maybe_history([dict(i, type="movie") for i in picked]))


@bp.get("/movies/search")
@user_required
def search_movies():
    found = fuzzy_rank(sandbox().catalog.movies, request.args.get("q", ""), int_arg("max_results", 3))
    return jsonify(maybe_history(found))


@bp.get("/shows/search")
@user_required
def search_shows():
    found = fuzzy_rank(sandbox().catalog.shows, request.args.get("q", ""), int_arg("max_results", 3))
    return jsonify(maybe_history(found))


@bp.get("/movies/<int:movie_id>")
@user_required
def movie_details(movie_id: int):
    item = sandbox().catalog.movie_by_id.get(movie_id)
    if item is None:
        return jsonify(message="The selected Movie not found!"), 404
    return jsonify(maybe_history([item])[0])


@bp.get("/shows/<int:show_id>")
@user_required
def show_details(show_id: int):
    item = sandbox().catalog.show_by_id.get(show_id)
    if item is None:
        return jsonify(message="The selected Show not found!"), 404
    return jsonify(maybe_history([item])[0])
