"""Contract: /api/watch-history."""

from .conftest import is_debug_page

RECORD_KEYS = {
    "id",
    "content_type",
    "content_id",
    "watch_timestamp",
    "total_duration",
    "progress_percentage",
    "season_number",
    "episode_number",
    "watched_at",
    "last_watched",
    "is_completed",
}


def episode(api, token, show, season, number, ts, duration=100.0):
    body = {
        "content_id": show,
        "content_type": "tv",
        "season_number": season,
        "episode_number": number,
        "watch_timestamp": ts,
        "total_duration": duration,
    }
    return api.post("/api/watch-history/update", token, json=body)


def test_update_inserts_then_updates_the_same_row(api, token):
    first = api.watch(token, 550, 10)
    assert first.status_code == 200 and set(first.json()) == RECORD_KEYS
    second = api.watch(token, 550, 95.5).json()
    assert second["id"] == first.json()["id"] and second["watch_timestamp"] == 95.5
    assert second["progress_percentage"] == 95.5 and second["is_completed"] is True
    assert "." in second["last_watched"] and "." not in second["watched_at"]


def test_update_accepts_odd_values(api, token):
    assert api.watch(token, 424242, -5).json()["progress_percentage"] == -5.0
    assert api.watch(token, 11, 10, duration=0).json()["progress_percentage"] == 0
    assert (
        api.post(
            "/api/watch-history/update",
            token,
            json={"content_id": 1, "content_type": "anything", "watch_timestamp": 1, "total_duration": 2},
        ).status_code
        == 200
    )


def test_update_errors(api, token):
    empty = api.post("/api/watch-history/update", token, json={})
    assert empty.status_code == 400 and empty.json() == {"message": "No data provided"}
    form = api.post("/api/watch-history/update", token, data={"content_id": "1"})
    assert form.status_code == 415 and form.headers["Content-Type"].startswith("text/html")
    assert api.post("/api/watch-history/update", token).status_code == 415
    no_duration = api.post(
        "/api/watch-history/update",
        token,
        json={"content_id": 1, "content_type": "movie", "watch_timestamp": 1},
    )
    assert is_debug_page(no_duration, "TypeError: &#x27;&gt;&#x27; not supported")
    no_id = api.post(
        "/api/watch-history/update",
        token,
        json={"content_type": "movie", "watch_timestamp": 1, "total_duration": 2},
    )
    assert no_id.status_code == 500
    assert no_id.json() == {"message": "Failed to update watch history due to database error"}


def test_get_and_get_by_id(api, token):
    api.watch(token, 27205, 40)
    episode(api, token, 1399, 1, 2, 10)
    assert api.get("/api/watch-history/get/movie/27205", token).json()["watch_timestamp"] == 40
    assert api.get("/api/watch-history/get/tv/1399?season=1&episode=2", token).json()["episode_number"] == 2
    assert api.get("/api/watch-history/get-by-id/m-27205", token).json()["content_id"] == 27205
    assert api.get("/api/watch-history/get-by-id/t-1399-1-2", token).json()["season_number"] == 1
    assert api.get("/api/watch-history/get-by-id/x-1", token).json() == {"message": "Invalid watch ID format"}
    missing = api.get("/api/watch-history/get/movie/13", token)
    assert missing.status_code == 404 and missing.json() == {"message": "No watch history found"}


def test_continue_watching_and_history(api, token):
    api.watch(token, 155, 50)  # in progress: continue-watching
    api.watch(token, 862, 99)  # finished movie: not in continue-watching
    api.watch(token, 777777, 50)  # not in the catalog: dropped from items, still counted in total
    episode(api, token, 1396, 1, 1, 99)  # finished episode with a next one
    cont = api.get("/api/watch-history/continue-watching", token).json()
    assert {c.get("id", c.get("show_id")) for c in cont} == {155, 1396}
    assert all(c["source"] == "database" and "watch_history" in c for c in cont)
    page = api.get("/api/watch-history/history", token).json()
    assert set(page) == {"items", "page", "per_page", "total", "has_more"}
    assert page["total"] == 4 and len(page["items"]) == 3 and page["per_page"] == 24
    assert {i["watch_id"] for i in page["items"]} == {"m-155", "m-862", "t-1396-1-1"}
    small = api.get("/api/watch-history/history?per_page=1&content_type=movie", token).json()
    assert small["has_more"] is True and small["total"] == 3
    bad = api.get("/api/watch-history/history?content_type=book", token)
    assert bad.status_code == 400 and bad.json() == {
        "message": 'Invalid content_type. Must be "movie" or "tv"'
    }


def test_current(api, token):
    api.watch(token, 13, 25)
    movie = api.get("/api/watch-history/current/movie/13", token).json()
    assert set(movie) == {
        "content_type",
        "content_id",
        "watch_timestamp",
        "total_duration",
        "progress_percentage",
        "is_completed",
    }
    episode(api, token, 1418, 1, 1, 30)
    tv = api.get("/api/watch-history/current/tv/1418", token).json()
    assert tv["episode_id"] == "141801001" and tv["next_episode"]["episode_number"] == 2
    assert api.get("/api/watch-history/current/tv/1399", token).json() == {
        "message": "No watch history found for this TV show"
    }
    assert api.get("/api/watch-history/current/movie/11", token).json() == {
        "message": "No watch history found for this movie"
    }
    assert api.get("/api/watch-history/current/book/1", token).status_code == 400


def test_show_and_next_episode(api, token):
    first = api.get("/api/watch-history/next-episode/66732", token).json()
    assert (first["season_number"], first["episode_number"], first["restarted"]) == (1, 1, False)
    episode(api, token, 66732, 1, 1, 99)
    following = api.get("/api/watch-history/next-episode/66732", token).json()
    assert (following["season_number"], following["episode_number"]) == (1, 2)
    assert {"title", "overview", "runtime", "is_next_season"} <= set(following)
    progress = api.get("/api/watch-history/show/66732", token).json()
    assert progress[0]["episodeId"] == "6673211" and progress[0]["is_completed"] is True
    missing = api.get("/api/watch-history/next-episode/5", token)
    assert missing.status_code == 404 and missing.json() == {"message": "Show not found"}


def test_parse_needs_no_token(api):
    assert api.get("/api/watch-history/parse/m-550").json() == {"content_type": "movie", "content_id": 550}
    tv = api.get("/api/watch-history/parse/t-1399-2-1").json()
    assert (tv["content_id"], tv["season_number"], tv["episode_number"]) == (1399, 2, 1)
    assert api.get("/api/watch-history/parse/x").status_code == 400
    assert is_debug_page(api.get("/api/watch-history/parse/m-abc"), "ValueError")
