"""Contract: /api/mylist (form bodies; `exist` on add/delete, `exists` on check)."""


def form(content_type="movie", content_id="550"):
    return {"content_type": content_type, "content_id": content_id}


def test_add_check_delete_cycle(api, token):
    added = api.post("/api/mylist/add", token, data=form())
    assert added.json() == {
        "message": "Item added to watchlist successfully.",
        "action": "add",
        "exist": True,
    }
    dup = api.post("/api/mylist/add", token, data=form("movies"))
    assert dup.status_code == 400 and dup.json() == {
        "message": "This item is already in your watchlist",
        "exist": True,
    }
    assert api.post("/api/mylist/check", token, data=form()).json() == {"exists": True}
    removed = api.post("/api/mylist/delete", token, data=form())
    assert removed.json() == {
        "message": "Item removed to watchlist successfully.",
        "action": "delete",
        "exist": False,
    }
    again = api.post("/api/mylist/delete", token, data=form())
    assert again.status_code == 400
    assert again.json() == {
        "message": "This item is not in your watchlist",
        "action": "delete",
        "exist": False,
    }
    assert api.post("/api/mylist/check", token, data=form()).json() == {"exists": False}


def test_bad_forms(api, token):
    as_json = api.post("/api/mylist/add", token, json=form())
    assert as_json.status_code == 400 and as_json.json() == {
        "message": "Content type and content ID are required"
    }
    bad_id = api.post("/api/mylist/add", token, data=form(content_id="abc"))
    assert bad_id.status_code == 400 and bad_id.json() == {"message": "Content ID must be a valid integer"}


def test_all_lists_known_content_with_types(api, token):
    for item in (form("movie", "603"), form("tv_series", "1399"), form("movie", "123456789")):
        assert api.post("/api/mylist/add", token, data=item).status_code == 200
    items = api.get("/api/mylist/all", token).json()
    assert [(i["content_type"], i["id"]) for i in items] == [("tv", 1399), ("movie", 603)]
    assert items[0]["media_type"] == "tv" and items[0]["show_id"] == 1399
