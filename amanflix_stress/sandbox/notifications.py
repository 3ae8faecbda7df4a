"""/api/notifications: list, unread count, read, read-all (direct commits: a lock is a 500 page upstream)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify
from sqlalchemy import func, or_, select, update

from . import schema
from .authz import user_required
from .params import http_date
from .storage import db, endpoint_name, sandbox

bp = Blueprint("notifications", __name__, url_prefix="/api/notifications")
N = schema.notification


def notification_json(row) -> dict:
    return {
        "id": row["id"],
        "title": row["title"],
        "message": row["message"],
        "type": row["type"],
        "user_id": row["user_id"],
        "created_at": http_date(row["created_at"]),
        "is_read": bool(row["is_read"]),
        "link": row["link"],
    }


def visible() -> object:
    """The user's own notifications plus global ones (user_id NULL)."""
    return or_(N.c.user_id == g.user["id"], N.c.user_id.is_(None))


@bp.get("")
@user_required
def list_notifications():
    rows = db().execute(select(N).where(visible()).order_by(N.c.created_at.desc(), N.c.id.desc())).mappings()
    return jsonify([notification_json(r) for r in rows])


@bp.get("/unread/count")
@user_required
def unread_count():
    query = (
        select(func.count())
        .select_from(N)
        .where(visible(), or_(N.c.is_read.is_(False), N.c.is_read.is_(None)))
    )
    return jsonify(unread_count=db().execute(query).scalar_one())


@bp.put("/<int:notification_id>/read")
@user_required
def mark_read(notification_id: int):
    row = db().execute(select(N).where(N.c.id == notification_id)).mappings().first()
    if row is None:
        return jsonify(message="Notification not found"), 404
    if row["user_id"] is not None and row["user_id"] != g.user["id"]:
        return jsonify(message="Unauthorized"), 403
    stmt = update(N).where(N.c.id == notification_id).values(is_read=True)
    sandbox().store.write_direct(db(), endpoint_name(), lambda c: c.execute(stmt))
    return jsonify(message="Notification marked as read")


@bp.put("/read-all")
@user_required
def mark_all_read():
    stmt = update(N).where(visible()).values(is_read=True)  # flips global rows for everybody, like upstream
    sandbox().store.write_direct(db(), endpoint_name(), lambda c: c.execute(stmt))
    return jsonify(message="All notifications marked as read")
