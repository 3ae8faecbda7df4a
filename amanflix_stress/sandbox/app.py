"""The sandbox's Flask app: shared state, database preparation and the app factory."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
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
from .serverlog import ServerLog
from .storage import Store, create_schema, make_engine, release_db
from .truth import Truth

ADMIN_USERNAME = "superadmin"
TEMP_PREFIX = "amanflix-sandbox-"
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

    log: ServerLog
    temp_dir: str | None = None  # the folder resolve() created for a temp DB: removed at stop

    @property
    def truth_path(self) -> str:
        return self.cfg.truth_path or f"{self.cfg.db_path}.truth.json"


def resolve(cfg: SandboxConfig) -> tuple[SandboxConfig, str | None]:
    """Fill in a temp DB path, the log path and a random admin password when not given.
    Returns the config and the temp folder created for it (None when the caller named the DB)."""
    temp_dir = None if cfg.db_path else tempfile.mkdtemp(prefix=TEMP_PREFIX)
    db_path = os.path.abspath(cfg.db_path or os.path.join(str(temp_dir), "amanflix.db"))
    log_path = os.path.abspath(cfg.log_path or os.path.join(os.path.dirname(db_path), "amanflix.log"))
    password = cfg.admin_password or secrets.token_urlsafe(12)
    return dataclasses.replace(cfg, db_path=db_path, log_path=log_path, admin_password=password), temp_dir


def remove_temp_dir(temp_dir: str | None) -> None:
    """Remove the folder resolve() created (never one the caller named)."""
    if temp_dir and os.path.basename(temp_dir).startswith(TEMP_PREFIX):
        shutil.rmtree(temp_dir, ignore_errors=True)


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
    cfg, temp_dir = resolve(cfg)
    try:
        if cfg.db_path is None or cfg.admin_password is None:
            raise ValueError("resolve() left db_path or admin_password unset")
        engine = make_engine(cfg.db_path, cfg.mode, cfg.busy_timeout_s)
        create_schema(engine, cfg.mode)
        if cfg.catalog == "default":
            seed(engine)
        ensure_superadmin(engine, cfg.admin_password, cfg.hash_iterations)
        log = ServerLog(str(cfg.log_path))
    except BaseException:
        remove_temp_dir(temp_dir)
        raise
    truth = Truth(cfg.mode, cfg.busy_timeout_s)
    store = Store(engine, cfg.mode, truth, log)
    return SandboxState(cfg, store, truth, Catalog.load(engine), AuthCache(), log, temp_dir)


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
