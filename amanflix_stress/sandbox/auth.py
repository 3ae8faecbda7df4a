"""/api/auth: register, login, verify, profile, update, logout, delete (form bodies)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import schema, tokens
from .authz import user_required
from .catalog import utcnow
from .params import form_field, http_date
from .storage import db, endpoint_name, sandbox

bp = Blueprint("auth", __name__, url_prefix="/api/auth")
U = schema.user


def user_json(user) -> dict:
    return {
        "id": user["id"],
        "username": user["username"],
        "email": user["email"],
        "is_banned": bool(user["is_banned"]),
        "ban_reason": user["ban_reason"],
        "ban_until": http_date(user["ban_until"]),
        "created_at": http_date(user["created_at"]),
        "updated_at": http_date(user["updated_at"]),
    }


def find_user(**where):
    query = select(U).where(*[U.c[k] == v for k, v in where.items()])
    return db().execute(query).mappings().first()


def message(text: str, status: int = 200, **extra):
    return jsonify(message=text, **extra), status


@bp.post("/register")
def register():
    username, password = request.form.get("username"), request.form.get("password")
    if not username or not password:
        return message("Username and password are required", 400)
    if find_user(username=username) is not None:
        return message("User already exists", 400)
    hashed = tokens.hash_password(password, sandbox().cfg.hash_iterations)
    stmt = insert(U).values(
        username=username, email=request.form.get("email"), password=hashed, is_banned=False
    )
    try:
        ok, new_id = sandbox().store.write(
            db(), endpoint_name(), lambda c: c.execute(stmt).inserted_primary_key[0]
        )
    except IntegrityError:
        return message("Registration failed due to database error. Please try again.", 500)
    if ok:
        sandbox().truth.user_registered()
    return message("User registered successfully!", api_key=tokens.user_token(new_id if ok else None))


@bp.post("/login")
def login():
    username, password = form_field("username"), form_field("password")
    if not username or not password:
        return message("password or username are blank", 400)
    user = find_user(username=username)
    if user is None or not tokens.check_password(user["password"], password):
        return message("Login failed! Check your credentials.", 401)
    return jsonify(api_key=tokens.user_token(user["id"]))


@bp.post("/verify")
@user_required
def verify():
    return message("valid", ip=request.remote_addr)


@bp.get("/profile")
@user_required
def profile():
    return jsonify(user_json(g.user))


def _taken(column: str, value, user_id: int) -> bool:
    query = select(U.c.id).where(U.c[column] == value, U.c.id != user_id).limit(1)
    return value is not None and db().execute(query).first() is not None


@bp.post("/update")
@user_required
def update_profile():
    user, form = g.user, request.form
    username, email = form.get("username") or user["username"], form.get("email", user["email"])
    if _taken("username", username, user["id"]):
        return message("Username already exists", 400)
    if email and _taken("email", email, user["id"]):
        return message("Email already in use", 400)
    values = {"username": username, "email": email, "updated_at": utcnow()}
    if form.get("newPassword"):
        if not form.get("password"):
            return message("Current password is required to set a new password", 400)
        if not tokens.check_password(user["password"], form["password"]):
            return message("Check your credentials.", 401)
        values["password"] = tokens.hash_password(form["newPassword"], sandbox().cfg.hash_iterations)
    stmt = update(U).where(U.c.id == user["id"]).values(**values)
    sandbox().store.write(db(), endpoint_name(), lambda c: c.execute(stmt))
    sandbox().auth_cache.forget_user(user["id"])
    return message("User updated successfully!", username=username, email=email)


@bp.post("/logout")
@user_required
def logout():
    sandbox().auth_cache.remember_token(g.token, blacklisted=True)
    stmt = insert(schema.blacklist_token).values(token=g.token)
    sandbox().store.write(db(), endpoint_name(), lambda c: c.execute(stmt))
    return message("Successfully logged out.")


def delete_user_only(conn, user_id: int) -> None:
    """Self-delete as upstream does it: the user row goes, sessions are detached, other rows stay
    (unless `fixed` mode's enforced FKs cascade)."""
    conn.execute(
        update(schema.user_session).where(schema.user_session.c.user_id == user_id).values(user_id=None)
    )
    conn.execute(delete(U).where(U.c.id == user_id))


@bp.delete("/delete")
@user_required
def delete_account():
    password = request.form.get("password")
    if not password:
        return message("Please provide a password", 400)
    if not tokens.check_password(g.user["password"], password):
        return message("Password incorrect! Check your credentials.", 401)
    ok, _ = sandbox().store.write(db(), endpoint_name(), lambda c: delete_user_only(c, g.user["id"]))
    sandbox().auth_cache.forget_user(g.user["id"])
    if ok:
        sandbox().truth.user_deleted()
    return message("Your account has been deleted successfully.")
