"""Contract: admin login, user list, single and batch delete, and the sandbox-only truth endpoint."""

from amanflix_stress.sandbox import tokens


def test_admin_login(api, server):
    resp = api.post(
        "/api/admin/login", data={"username": server.admin_username, "password": server.admin_password}
    )
    assert resp.status_code == 200 and set(resp.json()) == {"api_key", "role", "username"}
    assert resp.json()["role"] == "superadmin"
    assert api.post("/api/admin/login", data={"username": "superadmin", "password": "x"}).status_code == 401
    assert api.post("/api/admin/login", data={}).status_code == 400


def test_admin_routes_need_an_admin_token(api):
    assert api.get("/api/admin/user/list").json()["error_reason"] == "admin_token_missing"
    assert api.get("/api/admin/user/list", "junk").json()["error_reason"] == "admin_token_invalid"
    missing = api.get("/api/admin/user/list", tokens.admin_token(4242, "superadmin"))
    assert missing.status_code == 404 and missing.json()["error_reason"] == "admin_not_exist"
    assert api.get("/api/sandbox/truth").status_code == 403


def test_user_list(api, admin, token):
    users = api.get("/api/admin/user/list", admin).json()
    assert isinstance(users, list) and int(tokens.decode(token)["sub"]) in {u["id"] for u in users}


def test_single_delete_removes_the_users_rows(api, admin, server):
    name, token = api.register()
    api.watch(token, 550, 10)
    api.post("/api/mylist/add", token, data={"content_type": "movie", "content_id": "550"})
    uid = tokens.decode(token)["sub"]
    wrong = api.call("DELETE", "/api/admin/user/delete", admin, data={"user_id": uid, "password": "bad"})
    assert wrong.status_code == 401
    resp = api.call(
        "DELETE", "/api/admin/user/delete", admin, data={"user_id": uid, "password": server.admin_password}
    )
    assert resp.json() == {"message": f"The account {name} has been deleted successfully."}
    missing = api.call(
        "DELETE", "/api/admin/user/delete", admin, data={"user_id": uid, "password": server.admin_password}
    )
    assert missing.status_code == 404 and missing.json() == {"message": "User not found"}
    assert api.get("/api/auth/profile", token).status_code == 404


def test_batch_delete(api, admin, server):
    ids = [int(tokens.decode(api.register()[1])["sub"]) for _ in range(3)]
    body = {"user_ids": [*ids, 987654], "password": server.admin_password}
    resp = api.call("DELETE", "/api/admin/user/batch-delete", admin, json=body).json()
    assert resp["deleted_count"] == 3 and resp["failed_count"] == 1
    assert {d["id"] for d in resp["deleted"]} == set(ids) and resp["failed"][0]["id"] == 987654
    assert set(resp) == {"message", "deleted", "failed", "deleted_count", "failed_count"}
    as_form = api.call(
        "DELETE",
        "/api/admin/user/batch-delete",
        admin,
        data={"user_ids": "987655", "password": server.admin_password},
    ).json()
    assert as_form["failed_count"] == 1


def test_truth_endpoint(api, admin):
    truth = api.get("/api/sandbox/truth", admin).json()
    assert truth["mode"] == "upstream"
    for key in (
        "lock_events",
        "lost_writes",
        "duplicate_watch_history_rows",
        "orphan_watch_history_rows",
        "orphan_my_list_rows",
        "users_registered",
        "users_deleted",
    ):
        assert isinstance(truth[key], int)
