"""The sandbox's Flask app: shared state, database preparation and the app factory."""

from __future__ import annotations

import dataclasses
import os
import secrets
import tempfile
from dataclasses import dataclass

from flask import Flask, jsonify, request
from sqlalchemy import insert, select, update

from . import (
    admin,
    analytics,
    auth,
    content,
    discovery,
    errors,
    history,
    mylist,
    notifications,
    schema,
    tokens,
)
from .authz import AuthCache
from .catalog import Catalog, seed
from .config import SandboxConfig
from .storage import Store, create_schema, make_engine, release_db
from .truth import Truth

ADMIN_USERNAME = "superadmin"
BLUEPRINTS = (
    auth.bp,
    content.bp,
    discovery.bp,
    discovery.search_bp,
    history.bp,
    mylist.bp,
    analytics.bp,
    notifications.bp,
    admin.bp,
    admin.truth_bp,
)


@dataclass
class SandboxState:
    """Everything request handlers share; reached through storage.sandbox()."""

    cfg: SandboxConfig
    store: Store
    truth: Truth
    catalog: Catalog
    auth_cache: AuthCache

    @property
    def truth_path(self) -> str:
        return self.cfg.truth_path or f"{self.cfg.db_path}.truth.json"


def resolve(cfg: SandboxConfig) -> SandboxConfig:
    """Fill in a temp DB path and a random admin password when not given."""
    db_path = cfg.db_path or os.path.join(tempfile.mkdtemp(prefix="amanflix-sandbox-"), "amanflix.db")
    password = cfg.admin_password or secrets.token_urlsafe(12)
    return dataclasses.replace(cfg, db_path=os.path.abspath(db_path), admin_password=password)


def ensure_superadmin(engine, password: str, iterations: int) -> None:
    """Create the superadmin, or reset its password so the printed credentials work."""
    hashed = tokens.hash_password(password, iterations)
    A = schema.admin
    with engine.begin() as conn:
        if conn.execute(select(A.c.id).where(A.c.username == ADMIN_USERNAME)).first():
            conn.execute(update(A).where(A.c.username == ADMIN_USERNAME).values(password=hashed))
        else:
            conn.execute(
                insert(A).values(
                    username=ADMIN_USERNAME,
                    email="superadmin@sandbox.local",
                    password=hashed,
                    role="superadmin",
                )
            )


def build_state(cfg: SandboxConfig) -> SandboxState:
    """Open (or create and seed) the database for `cfg` and assemble the shared state."""
    cfg = resolve(cfg)
    engine = make_engine(cfg.db_path, cfg.mode, cfg.busy_timeout_s)
    create_schema(engine, cfg.mode)
    if cfg.catalog == "default":
        seed(engine)
    ensure_superadmin(engine, cfg.admin_password, cfg.hash_iterations)
    truth = Truth(cfg.mode, cfg.busy_timeout_s)
    return SandboxState(cfg, Store(engine, cfg.mode, truth), truth, Catalog.load(engine), AuthCache())


def _cors(response):
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def create_app(state: SandboxState) -> Flask:
    """The Flask app serving the Amanflix contract over `state`."""
    app = Flask("amanflix_sandbox")
    app.extensions["amanflix_sandbox"] = state
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    errors.register(app)
    app.teardown_appcontext(release_db)
    app.after_request(_cors)
    app.add_url_rule("/ip", "ip", lambda: jsonify(ip=request.remote_addr))
    app.add_url_rule("/api/service/status", "service_status", _service_status)
    return app


def _service_status():
    return jsonify(
        service_enabled=True,
        maintenance_mode=False,
        is_available=True,
        maintenance_title=None,
        maintenance_message=None,
        estimated_downtime=None,
    )
