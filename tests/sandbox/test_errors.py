"""Contract: generic 404 JSON, 405 HTML, headers every response carries, debug pages."""

from amanflix_stress.sandbox.errors import debug_page, exception_title


def test_unknown_url_is_the_json_404(api):
    resp = api.get("/api/definitely/not/here")
    assert resp.status_code == 404
    assert resp.json() == {
        "error": "The page you're looking for seems to have vanished into thin air.",
        "error_reason": "not_found",
    }


def test_wrong_method_is_html_405(api):
    resp = api.get("/api/auth/login")
    assert resp.status_code == 405 and resp.headers["Content-Type"].startswith("text/html")


def test_every_response_closes_the_connection_and_allows_cors(api, token):
    for resp in (api.get("/api/movies", token), api.get("/nope"), api.post("/api/auth/login", json={})):
        assert resp.headers["Connection"] == "close"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_debug_page_titles_like_werkzeug():
    try:
        None > 1
    except TypeError as exc:
        assert (
            exception_title(exc) == "TypeError: '>' not supported between instances of 'NoneType' and 'int'"
        )
        page = debug_page(exc).get_data(as_text=True)
        assert "// Werkzeug Debugger</title>" in page and "The console is locked" in page
