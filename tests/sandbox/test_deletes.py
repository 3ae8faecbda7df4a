"""What deletes leave behind, per mode, and SQLite's rowid reuse."""

import pytest

from amanflix_stress.sandbox import SandboxConfig, start_sandbox, tokens

from .conftest import FAST_HASH, Api


@pytest.fixture(params=["upstream", "fixed"])
def sandbox(request, tmp_path):
    cfg = SandboxConfig(mode=request.param, db_path=str(tmp_path / "d.db"), hash_iterations=FAST_HASH)
    with start_sandbox(cfg) as srv:
        yield Api(srv)


def _user_with_rows(api):
    name, token = api.register(password="pw")
    api.watch(token, 550, 10)
    api.watch(token, 603, 10)
    api.post("/api/mylist/add", token, data={"content_type": "movie", "content_id": "550"})
    return name, token


def test_self_delete_leaves_rows_in_upstream_and_cascades_in_fixed(sandbox):
    _, token = _user_with_rows(sandbox)
    assert sandbox.call("DELETE", "/api/auth/delete", token, data={"password": "pw"}).status_code == 200
    truth = sandbox.server.truth()
    left = (truth["orphan_watch_history_rows"], truth["orphan_my_list_rows"])
    assert left == ((2, 1) if sandbox.server.mode == "upstream" else (0, 0))
    assert truth["users_deleted"] == 1


def test_next_registration_reuses_the_deleted_id_and_inherits_its_rows(sandbox):
    sandbox.register()
    _, token = _user_with_rows(sandbox)
    sandbox.call("DELETE", "/api/auth/delete", token, data={"password": "pw"})
    _, heir = sandbox.register()
    assert tokens.decode(heir)["sub"] == tokens.decode(token)["sub"]
    inherited = sandbox.get("/api/watch-history/history", heir).json()["total"]
    assert inherited == (2 if sandbox.server.mode == "upstream" else 0)
    assert sandbox.get("/api/auth/profile", token).status_code == 200  # the old token now acts as the heir
