"""Contract: movies, shows, discovery, search and autocomplete."""

from datetime import datetime, timedelta

import pytest

from amanflix_stress.sandbox import SandboxConfig, start_sandbox

from .conftest import FAST_HASH, Api


def test_movies_list_is_a_bare_array_of_movie_objects(api, token):
    movies = api.get("/api/movies", token).json()
    assert isinstance(movies, list) and len(movies) == 20
    assert {"id", "title", "genres", "runtime", "vote_average", "release_date", "added_at"} <= set(movies[0])
    assert movies[0]["media_type"] == "movie"
    assert len(api.get("/api/movies?per_page=50", token).json()) == 50


@pytest.mark.parametrize("query", ["page=99", "page=0", "page=-1"])
def test_movies_page_out_of_range_is_empty(api, token, query):
    assert api.get(f"/api/movies?{query}", token).json() == []


def test_movies_filters_and_sort(api, token):
    drama = api.get("/api/movies?genre=drama&per_page=50", token).json()
    assert drama and all("drama" in m["genres"].lower() for m in drama)
    ranked = api.get("/api/movies?sort_by=vote_average&order=desc&per_page=50", token).json()
    assert [m["vote_average"] for m in ranked] == sorted((m["vote_average"] for m in ranked), reverse=True)
    good = api.get("/api/movies?min_rating=8&per_page=50", token).json()
    assert all(m["vote_average"] >= 8 for m in good)


def test_movies_random_and_search(api, token):
    picked = api.get("/api/movies/random?per_page=5", token).json()
    assert len(picked) == 5 and all(m["type"] == "movie" for m in picked)
    title = api.get("/api/movies/550", token).json()["title"]
    found = api.get("/api/movies/search", token, params={"q": title}).json()
    assert 1 <= len(found) <= 3 and found[0]["id"] == 550


def test_movie_details(api, token):
    assert api.get("/api/movies/603", token).json()["id"] == 603
    missing = api.get("/api/movies/1", token)
    assert missing.status_code == 404 and missing.json() == {"message": "The selected Movie not found!"}
    assert api.get("/api/movies/abc", token).json()["error_reason"] == "not_found"


def test_shows_use_show_id_and_nest_seasons(api, token):
    shows = api.get("/api/shows?per_page=50", token).json()
    assert len(shows) == 10 and all("id" not in s and s["media_type"] == "tv" for s in shows)
    show = api.get("/api/shows/1399", token).json()
    episode = show["seasons"][0]["episodes"][0]
    assert show["seasons"][0]["tvshow_id"] == 1399
    assert episode["video_id"] == "139901001" and episode["runtime"] > 0
    missing = api.get("/api/shows/2", token)
    assert missing.status_code == 404 and missing.json() == {"message": "The selected Show not found!"}
    assert api.get("/api/shows/search", token, params={"q": show["title"]}).json()[0]["show_id"] == 1399


def test_include_watch_history_is_true_for_any_value(api, token):
    api.watch(token, 680, 30)
    movie = api.get("/api/movies/680?include_watch_history=false", token).json()
    assert movie["watch_history"]["progress_percentage"] == 30.0
    assert "watch_history" not in api.get("/api/movies/680", token).json()


def test_discovery_random_defaults_to_one_item_with_id_and_media_type(api, token):
    items = api.get("/api/discovery/random", token).json()
    assert len(items) == 1 and "id" in items[0] and items[0]["media_type"] in ("movie", "tv")
    shows = api.get("/api/discovery/random?content_type=tv&per_page=5", token).json()
    assert all(s["id"] == s["show_id"] for s in shows)


def test_discovery_trending_featured_new_titles(api, token):
    trending = api.get("/api/discovery/trending", token).json()
    scores = [i["popularity_score"] for i in trending]
    assert len(trending) == 20 and scores == sorted(scores, reverse=True)
    assert all(i["vote_average"] >= 7.0 for i in api.get("/api/discovery/featured", token).json())
    fresh = api.get("/api/discovery/new-titles?per_page=50", token).json()
    cutoff = (datetime.utcnow() - timedelta(days=5)).isoformat()
    assert fresh and all(i["added_at"] >= cutoff for i in fresh)


def test_search_needs_no_token_and_tags_types(api):
    everything = api.get("/api/search?max_results=100").json()
    assert {i["type"] for i in everything} == {"movie", "tv_series"} and len(everything) == 60
    assert len(api.get("/api/search").json()) == 20
    tv = api.get("/api/search?media_type=tv").json()
    assert tv and all(i["type"] == "tv_series" for i in tv)
    hits = api.get("/api/search?q=the&max_results=5").json()
    assert len(hits) == 5 and all("the" in i["title"].lower() for i in hits)


def test_autocomplete_uses_title_for_movies_and_name_for_shows(api):
    hits = api.get("/api/autocomplete?q=the&max_results=100").json()
    assert all(set(h) in ({"id", "title"}, {"id", "name"}) for h in hits)
    assert any("name" in h for h in hits) and any("title" in h for h in hits)
    assert len(api.get("/api/autocomplete?q=the").json()) == 10


def test_empty_catalog(tmp_path):
    cfg = SandboxConfig(db_path=str(tmp_path / "empty.db"), catalog="empty", hash_iterations=FAST_HASH)
    with start_sandbox(cfg) as srv:
        api = Api(srv)
        _, token = api.register()
        assert api.get("/api/movies", token).json() == []
        assert api.get("/api/discovery/random", token).json() == []
        assert api.get("/api/search").json() == []
