"""/api/analytics: sessions, heartbeat, end-session (token optional)."""

from __future__ import annotations

import uuid

from flask import Blueprint, jsonify, request
from sqlalchemy import insert, select, update

from . import schema
from .authz import optional_user
from .catalog import utcnow
from .storage import db, endpoint_name, sandbox

bp = Blueprint("analytics", __name__, url_prefix="/api/analytics")
S = schema.user_session


@bp.post("/sessions")
def create_session():
    user = optional_user()
    if user is not None:
        query = (
            select(S.c.session_id).where(S.c.user_id == user["id"], S.c.ended_at.is_(None)).order_by(S.c.id)
        )
        open_session = db().execute(query.limit(1)).first()
        if open_session is not None:
            return jsonify(
                session_id=open_session[0], user_id=str(user["id"]), message="Using existing session"
            )
    session_id = str(uuid.uuid4())
    stmt = insert(S).values(session_id=session_id, user_id=user["id"] if user else None)
    sandbox().store.write(db(), endpoint_name(), lambda c: c.execute(stmt))
    return jsonify(
        session_id=session_id, user_id=str(user["id"]) if user else None, message="New session created"
    ), 201


def _session():
    """(session row, None) or (None, error response) from the JSON body."""
    data = request.get_json()  # not JSON -> 415 HTML
    session_id = data.get("session_id") if isinstance(data, dict) else None
    if not session_id:
        return None, (jsonify(error="No session_id provided"), 400)
    row = db().execute(select(S).where(S.c.session_id == session_id)).mappings().first()
    if row is None:
        return None, (jsonify(error="Invalid session_id"), 404)
    return row, None


@bp.post("/heartbeat")
def heartbeat():
    row, error = _session()
    if error:
        return error
    user = optional_user()
    user_id = user["id"] if user else row["user_id"]  # a token takes the session over
    stmt = update(S).where(S.c.id == row["id"]).values(last_heartbeat=utcnow(), user_id=user_id)
    sandbox().store.write(db(), endpoint_name(), lambda c: c.execute(stmt))
    return jsonify(status="success", user_id=user_id)


@bp.post("/end-session")
def end_session():
    row, error = _session()
    if error:
        return error
    if row["ended_at"] is None:
        stmt = update(S).where(S.c.id == row["id"]).values(ended_at=utcnow())
        sandbox().store.write(db(), endpoint_name(), lambda c: c.execute(stmt))
    return jsonify(status="success")
