"""Contract: /api/analytics sessions, heartbeat, end-session."""


def test_anonymous_session_then_heartbeat_with_token_takes_it_over(api, token):
    created = api.post("/api/analytics/sessions")
    assert created.status_code == 201
    body = created.json()
    assert (
        body["user_id"] is None and body["message"] == "New session created" and len(body["session_id"]) == 36
    )
    beat = api.post("/api/analytics/heartbeat", token, json={"session_id": body["session_id"]})
    assert (
        beat.status_code == 200
        and beat.json()["status"] == "success"
        and isinstance(beat.json()["user_id"], int)
    )


def test_user_session_is_reused(api, token):
    first = api.post("/api/analytics/sessions", token)
    assert first.status_code == 201 and first.json()["user_id"].isdigit()
    second = api.post("/api/analytics/sessions", token)
    assert second.status_code == 200 and second.json()["message"] == "Using existing session"
    assert second.json()["session_id"] == first.json()["session_id"]


def test_heartbeat_and_end_session_errors(api):
    for path in ("/api/analytics/heartbeat", "/api/analytics/end-session"):
        assert api.post(path, json={}).json() == {"error": "No session_id provided"}
        missing = api.post(path, json={"session_id": "nope"})
        assert missing.status_code == 404 and missing.json() == {"error": "Invalid session_id"}
        assert api.post(path, data={"session_id": "x"}).status_code == 415


def test_end_session_is_idempotent(api):
    session_id = api.post("/api/analytics/sessions").json()["session_id"]
    for _ in range(2):
        resp = api.post("/api/analytics/end-session", json={"session_id": session_id})
        assert resp.status_code == 200 and resp.json() == {"status": "success"}
