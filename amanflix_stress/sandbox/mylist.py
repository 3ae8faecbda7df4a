"""/api/mylist: add, delete, check (form bodies) and the paged list."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from sqlalchemy import delete, insert, select

from . import schema
from .authz import user_required
from .content import maybe_history
from .params import int_arg, page_of
from .storage import db, endpoint_name, sandbox

bp = Blueprint("mylist", __name__, url_prefix="/api/mylist")
L = schema.my_list
TYPE_ALIASES = {
    "movie": "movie",
    "movies": "movie",
    "tv": "tv",
    "tv_series": "tv",
    "show": "tv",
    "shows": "tv",
}


class BadItem(Exception):
    """A form that does not name a list item; `body` is the 400 JSON."""

    def __init__(self, body: dict):
        super().__init__(body["message"])
        self.body = body


def form_item() -> tuple[str, int]:
    """(normalised content_type, content_id) from the form, or BadItem."""
    raw_type, raw_id = request.form.get("content_type"), request.form.get("content_id")
    if not raw_type or not raw_id:
        raise BadItem({"message": "Content type and content ID are required"})
    try:
        content_id = int(raw_id)
    except ValueError:
        raise BadItem({"message": "Content ID must be a valid integer"}) from None
    if raw_type.lower() not in TYPE_ALIASES:
        raise BadItem({"message": "Invalid content type"})
    return TYPE_ALIASES[raw_type.lower()], content_id


def _where(content_type: str, content_id: int) -> list:
    return [L.c.user_id == g.user["id"], L.c.content_type == content_type, L.c.content_id == content_id]


def in_list(content_type: str, content_id: int) -> bool:
    return db().execute(select(L.c.id).where(*_where(content_type, content_id)).limit(1)).first() is not None


def item_route(view):
    """Parse the form item first; a BadItem becomes a 400."""

    def wrapper():
        try:
            item = form_item()
        except BadItem as exc:
            return jsonify(exc.body), 400
        return view(*item)

    wrapper.__name__ = view.__name__
    return wrapper


@bp.post("/add")
@user_required
@item_route
def add(content_type: str, content_id: int):
    if in_list(content_type, content_id):
        return jsonify(message="This item is already in your watchlist", exist=True), 400
    stmt = insert(L).values(user_id=g.user["id"], content_type=content_type, content_id=content_id)
    sandbox().store.write(db(), endpoint_name(), lambda c: c.execute(stmt))
    return jsonify(message="Item added to watchlist successfully.", action="add", exist=True)


@bp.post("/delete")
@user_required
@item_route
def remove(content_type: str, content_id: int):
    if not in_list(content_type, content_id):
        return jsonify(message="This item is not in your watchlist", action="delete", exist=False), 400
    stmt = delete(L).where(*_where(content_type, content_id))
    sandbox().store.write(db(), endpoint_name(), lambda c: c.execute(stmt))
    return jsonify(message="Item removed to watchlist successfully.", action="delete", exist=False)


@bp.post("/check")
@user_required
@item_route
def check(content_type: str, content_id: int):
    return jsonify(exists=in_list(content_type, content_id))


@bp.get("/all")
@user_required
def all_items():
    rows = db().execute(select(L).where(L.c.user_id == g.user["id"]).order_by(L.c.id.desc())).mappings().all()
    catalog, items = sandbox().catalog, []
    for row in rows:  # ids missing from the catalog are silently dropped
        content = catalog.content(row["content_type"], row["content_id"])
        if content is not None:
            extra = {"id": content["show_id"]} if row["content_type"] == "tv" else {}
            items.append(
                dict(content, content_type=row["content_type"], media_type=content["media_type"], **extra)
            )
    return jsonify(maybe_history(page_of(items, int_arg("page", 1), int_arg("per_page", 10))))
