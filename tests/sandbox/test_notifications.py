"""Contract: user notifications (created through the admin API)."""

from amanflix_stress.sandbox import tokens


def user_id(token):
    return int(tokens.decode(token)["sub"])


def notify(api, admin, **body):
    resp = api.post("/api/admin/notifications", admin, json={"title": "t", "message": "m", **body})
    assert resp.status_code == 201, resp.text
    return resp.json()["notifications"]


def test_admin_creates_user_notifications(api, admin, token):
    created = notify(api, admin, user_id=user_id(token), link="/x")
    assert len(created) == 1 and created[0]["user_id"] == user_id(token)
    listed = api.get("/api/notifications", token).json()
    assert created[0]["id"] in [n["id"] for n in listed]
    assert set(listed[0]) == {"id", "title", "message", "type", "user_id", "created_at", "is_read", "link"}


def test_read_and_unread_count(api, admin, token):
    mine = notify(api, admin, user_ids=[user_id(token)])[0]
    before = api.get("/api/notifications/unread/count", token).json()["unread_count"]
    resp = api.call("PUT", f"/api/notifications/{mine['id']}/read", token)
    assert resp.json() == {"message": "Notification marked as read"}
    assert api.get("/api/notifications/unread/count", token).json() == {"unread_count": before - 1}
    missing = api.call("PUT", "/api/notifications/999999/read", token)
    assert missing.status_code == 404 and missing.json() == {"message": "Notification not found"}


def test_someone_elses_notification_is_forbidden(api, admin, token):
    _, other = api.register()
    theirs = notify(api, admin, user_id=user_id(other))[0]
    resp = api.call("PUT", f"/api/notifications/{theirs['id']}/read", token)
    assert resp.status_code == 403 and resp.json() == {"message": "Unauthorized"}


def test_read_all_flips_global_notifications_for_everybody(api, admin, token):
    _, other = api.register()
    notify(api, admin)  # global
    assert api.get("/api/notifications/unread/count", other).json()["unread_count"] >= 1
    assert api.call("PUT", "/api/notifications/read-all", token).json() == {
        "message": "All notifications marked as read"
    }
    assert api.get("/api/notifications/unread/count", token).json() == {"unread_count": 0}
    assert api.get("/api/notifications/unread/count", other).json() == {"unread_count": 0}


def test_broadcast(api, admin, token):
    resp = api.post("/api/admin/notifications/broadcast", admin, json={"title": "all", "message": "hi"})
    assert resp.status_code == 201 and resp.json()["notification"]["user_id"] is None
