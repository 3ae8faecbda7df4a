"""/api/admin: login, user list, single and batch user delete, new notifications; and /api/sandbox/truth."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from sqlalchemy import delete, insert, select

from . import schema, tokens
from .auth import user_json
from .authz import admin_required
from .notifications import N, notification_json
from .storage import db, endpoint_name, sandbox

bp = Blueprint("admin", __name__, url_prefix="/api/admin")
truth_bp = Blueprint("sandbox_truth", __name__, url_prefix="/api/sandbox")
U = schema.user


@bp.post("/login")
def admin_login():
    username, password = request.form.get("username"), request.form.get("password")
    if not username or not password:
        return jsonify(message="Username and password are required"), 400
    admin = db().execute(select(schema.admin).where(schema.admin.c.username == username)).mappings().first()
    if admin is None or not tokens.check_password(admin["password"], password):
        return jsonify(message="Invalid credentials"), 401
    token = tokens.admin_token(admin["id"], admin["role"])
    return jsonify(api_key=token, role=admin["role"], username=admin["username"])


@bp.get("/user/list")
@admin_required("admin")
def user_list():
    return jsonify([user_json(u) for u in db().execute(select(U).order_by(U.c.id)).mappings()])


def delete_user_everywhere(conn, user_id: int) -> None:
    """Admin delete as upstream: watch_history and my_list rows first, then the user."""
    conn.execute(delete(schema.watch_history).where(schema.watch_history.c.user_id == user_id))
    conn.execute(delete(schema.my_list).where(schema.my_list.c.user_id == user_id))
    conn.execute(delete(U).where(U.c.id == user_id))


def remove_user(user_id: int) -> bool:
    """Delete one user for an admin route; True if the delete was persisted."""
    ok, _ = sandbox().store.write(db(), endpoint_name(), lambda c: delete_user_everywhere(c, user_id))
    sandbox().auth_cache.forget_user(user_id)
    if ok:
        sandbox().truth.user_deleted()
    return ok


def _admin_password_ok(password) -> bool:
    return bool(password) and tokens.check_password(g.admin["password"], password)


def _find(user_id):
    return db().execute(select(U).where(U.c.id == user_id)).mappings().first()


@bp.delete("/user/delete")
@admin_required("admin")
def delete_user():
    user_id, password = request.form.get("user_id", type=int), request.form.get("password")
    if user_id is None or not password:
        return jsonify(message="User ID and password are required"), 400
    if not _admin_password_ok(password):
        return jsonify(message="Invalid password"), 401
    user = _find(user_id)
    if user is None:
        return jsonify(message="User not found"), 404
    remove_user(user_id)
    return jsonify(message=f"The account {user['username']} has been deleted successfully.")


def _batch_request() -> tuple[list, str | None]:
    data = request.get_json(silent=True)
    if isinstance(data, dict):
        return list(data.get("user_ids") or []), data.get("password")
    raw = request.form.get("user_ids", "")
    return [part.strip() for part in raw.split(",") if part.strip()], request.form.get("password")


@bp.delete("/user/batch-delete")
@admin_required("admin")
def batch_delete():
    user_ids, password = _batch_request()
    if not user_ids or not password:
        return jsonify(message="User IDs and password are required"), 400
    if not _admin_password_ok(password):
        return jsonify(message="Invalid password"), 401
    deleted, failed = [], []
    for raw_id in user_ids:
        user = _find(int(raw_id)) if str(raw_id).lstrip("-").isdigit() else None
        if user is None:
            failed.append({"id": raw_id, "reason": "User not found"})
        else:
            remove_user(user["id"])  # a delete lost to a lock is still reported as done, like upstream
            deleted.append({"id": user["id"], "username": user["username"]})
    return jsonify(
        message=f"Deleted {len(deleted)} user(s)",
        deleted=deleted,
        failed=failed,
        deleted_count=len(deleted),
        failed_count=len(failed),
    )


def _create_notifications(rows: list) -> list:
    def work(conn):
        return [conn.execute(insert(N).values(**r)).inserted_primary_key[0] for r in rows]

    ids = sandbox().store.write_direct(db(), endpoint_name(), work)
    return [
        notification_json(r)
        for r in db().execute(select(N).where(N.c.id.in_(ids)).order_by(N.c.id)).mappings()
    ]


def _notification_rows(data: dict, targets: list) -> list:
    base = {
        "title": data["title"],
        "message": data["message"],
        "type": data.get("type") or "info",
        "link": data.get("link"),
        "is_read": False,
    }
    return [dict(base, user_id=target) for target in targets]


@bp.post("/notifications")
@admin_required("moderator")
def create_notifications():
    data = request.get_json()  # not JSON -> 415 HTML
    if not isinstance(data, dict) or not data.get("title") or not data.get("message"):
        return jsonify(message="Title and message are required"), 400
    targets = data.get("user_ids") or ([data["user_id"]] if data.get("user_id") is not None else [None])
    created = _create_notifications(_notification_rows(data, targets))
    return jsonify(message=f"Successfully created {len(created)} notification(s)", notifications=created), 201


@bp.post("/notifications/broadcast")
@admin_required("moderator")
def broadcast():
    data = request.get_json()
    if not isinstance(data, dict) or not data.get("title") or not data.get("message"):
        return jsonify(message="Title and message are required"), 400
    created = _create_notifications(_notification_rows(data, [None]))
    return jsonify(message="Broadcast notification created successfully", notification=created[0]), 201


@truth_bp.get("/truth")
@admin_required("moderator")
def truth():
    state = sandbox()
    return jsonify(state.truth.snapshot(state.store.engine))
