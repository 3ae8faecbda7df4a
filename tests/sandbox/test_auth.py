"""Contract: /api/auth and the token rules shared by every user route."""

import time

from amanflix_stress.sandbox import tokens

from .conftest import is_debug_page


def test_register_returns_a_token_for_the_new_user(api):
    resp = api.post("/api/auth/register", data={"username": "reg-a", "password": "pw", "email": "a@x"})
    assert resp.status_code == 200
    assert resp.json()["message"] == "User registered successfully!"
    assert tokens.decode(resp.json()["api_key"])["sub"].isdigit()


def test_register_errors(api):
    assert api.post("/api/auth/register", data={"username": "x"}).json() == {
        "message": "Username and password are required"
    }
    as_json = api.post("/api/auth/register", json={"username": "x", "password": "y"})
    assert as_json.status_code == 400 and as_json.json()["message"] == "Username and password are required"
    name, _ = api.register()
    dup = api.post("/api/auth/register", data={"username": name, "password": "pw"})
    assert dup.status_code == 400 and dup.json() == {"message": "User already exists"}


def test_login(api):
    name, _ = api.register(password="secret")
    resp = api.post("/api/auth/login", data={"username": name, "password": "secret"})
    assert resp.status_code == 200 and list(resp.json()) == ["api_key"]
    bad = api.post("/api/auth/login", data={"username": name, "password": "nope"})
    assert bad.status_code == 401 and bad.json() == {"message": "Login failed! Check your credentials."}
    blank = api.post("/api/auth/login", data={"username": name, "password": ""})
    assert blank.status_code == 400 and blank.json() == {"message": "password or username are blank"}


def test_login_with_json_body_or_missing_field_is_a_500_keyerror_page(api):
    assert is_debug_page(api.post("/api/auth/login", json={"username": "a", "password": "b"}), "KeyError")
    assert is_debug_page(
        api.post("/api/auth/login", data={"username": "a"}), "KeyError: &#x27;password&#x27;"
    )


def test_verify_and_profile(api, token):
    assert api.post("/api/auth/verify", token).json() == {"message": "valid", "ip": "127.0.0.1"}
    profile = api.get("/api/auth/profile", token).json()
    assert set(profile) == {
        "id",
        "username",
        "email",
        "is_banned",
        "ban_reason",
        "ban_until",
        "created_at",
        "updated_at",
    }
    assert profile["created_at"].endswith(" GMT")


def test_update_profile(api):
    name, token = api.register(password="old")
    other, _ = api.register()
    taken = api.post("/api/auth/update", token, data={"username": other})
    assert taken.status_code == 400 and taken.json()["message"] == "Username already exists"
    wrong = api.post(
        "/api/auth/update", token, data={"username": name, "password": "bad", "newPassword": "new"}
    )
    assert wrong.status_code == 401
    ok = api.post(
        "/api/auth/update",
        token,
        data={"username": name + "x", "email": "n@x", "password": "old", "newPassword": "new"},
    )
    assert ok.status_code == 200 and ok.json()["username"] == name + "x" and ok.json()["email"] == "n@x"
    assert api.post("/api/auth/login", data={"username": name + "x", "password": "new"}).status_code == 200


def test_logout_blacklists_the_token(api, token):
    assert api.post("/api/auth/logout", token).json() == {"message": "Successfully logged out."}
    again = api.post("/api/auth/logout", token)
    assert again.status_code == 403
    assert again.json() == {"message": "Token has been blacklisted!", "error_reason": "user_logged_out"}


def test_self_delete(api):
    _, token = api.register(password="pw")
    assert api.call("DELETE", "/api/auth/delete", token, json={"password": "pw"}).status_code == 400
    assert api.call("DELETE", "/api/auth/delete", token, data={}).json() == {
        "message": "Please provide a password"
    }
    assert api.call("DELETE", "/api/auth/delete", token, data={"password": "x"}).status_code == 401
    resp = api.call("DELETE", "/api/auth/delete", token, data={"password": "pw"})
    assert resp.status_code == 200 and resp.json() == {
        "message": "Your account has been deleted successfully."
    }
    gone = api.get("/api/auth/profile", token)
    assert gone.status_code == 404 and gone.json() == {
        "message": "User not found",
        "error_reason": "user_not_exist",
    }


def _reason(resp):
    return resp.status_code, resp.json()["error_reason"]


def test_token_failures(api, token):
    now = int(time.time())
    assert _reason(api.get("/api/auth/profile")) == (403, "token_missing")
    assert _reason(api.get("/api/auth/profile", "garbage")) == (403, "token_invalid")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert _reason(api.get("/api/auth/profile", forged)) == (403, "token_invalid")
    expired = tokens.encode({"sub": "1", "iat": now - 100, "exp": now - 10})
    assert _reason(api.get("/api/auth/profile", expired)) == (403, "token_expired")
    assert _reason(api.get("/api/auth/profile", tokens.user_token(999_999))) == (404, "user_not_exist")
    assert _reason(api.get("/api/auth/profile", tokens.encode({"iat": now}))) == (500, "auth_error")
    assert _reason(api.get("/api/auth/profile", tokens.user_token("abc"))) == (500, "auth_error")
    no_space = api.get("/api/auth/profile", headers={"Authorization": "Bearer" + token})
    assert _reason(no_space) == (500, "auth_error")
    assert no_space.json()["message"] == "Authentication error"


def test_any_scheme_word_is_accepted(api, token):
    resp = api.get("/api/auth/profile", headers={"Authorization": f"Token {token}"})
    assert resp.status_code == 200
