"""Lock signatures: what each failure looks like on the wire, and what must not be mistaken for one."""

import pytest

from amanflix_stress.amanflix.detect import busy_window_s, evidence_of, explicit_lock, timing_lock
from amanflix_stress.engine.client import Reply

DEBUG_PAGE = (
    """<!doctype html><html><head><title>{title} // Werkzeug Debugger</title></head>
<body><h1>{title}</h1><div class="console">"""
    """<p>The console is locked and needs to be unlocked by entering the PIN.
</p></div><pre>Traceback ...</pre></body></html>"""
)


def html_500(title: str) -> Reply:
    return Reply(500, DEBUG_PAGE.format(title=title).encode(), "text/html; charset=utf-8")


def json_reply(status: int, body: str) -> Reply:
    return Reply(status, body.encode(), "application/json")


@pytest.mark.parametrize(
    "reply, kind",
    [
        (
            html_500(
                "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked [SQL: UPDATE "
                "notification SET is_read=? WHERE notification.id = ?]"
            ),
            "db_locked",
        ),
        (
            html_500(
                "sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, "
                "connection timed out, timeout 30.00"
            ),
            "pool_timeout",
        ),
        (
            html_500("AttributeError: &#x27;NoneType&#x27; object has no attribute &#x27;isoformat&#x27;"),
            "lost_insert",
        ),
        (
            html_500("AttributeError: &#39;NoneType&#39; object has no attribute &#39;isoformat&#39;"),
            "lost_insert",
        ),
        (json_reply(500, '{"message":"Authentication error","error_reason":"auth_error"}'), "auth_locked"),
        (
            json_reply(500, '{"message":"Registration failed due to database error. Please try again."}'),
            "db_error",
        ),
        (json_reply(500, '{"message":"(sqlite3.OperationalError) database is locked"}'), "db_locked"),
        (
            html_500("sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database table is locked"),
            "db_locked",
        ),
        (html_500("sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) disk I/O error"), "db_error"),
    ],
)
def test_each_lock_signature_is_its_own_class(reply, kind):
    assert explicit_lock(reply)[0] == kind


@pytest.mark.parametrize(
    "reply",
    [
        html_500("KeyError: &#x27;username&#x27;"),  # the debugger page says "The console is locked" too
        html_500(
            "TypeError: &#x27;&gt;&#x27; not supported between instances of "
            "&#x27;NoneType&#x27; and &#x27;int&#x27;"
        ),
        json_reply(403, '{"message":"Token has been blacklisted!","error_reason":"user_logged_out"}'),
        json_reply(200, '{"message":"database is locked"}'),
    ],
)
def test_other_failures_are_not_mistaken_for_locks(reply):
    assert explicit_lock(reply) is None


# Werkzeug's generic page with debug off (amanflix-api.md section 7): it names no exception
GENERIC_500 = (
    b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
    b"<h1>Internal Server Error</h1>\n"
    b"<p>The server encountered an internal error and was unable to complete your request. Either the server "
    b"is overloaded or there is an error in the application.</p>\n"
)


def reply_after(seconds: float, status: int = 200, body: bytes = b"{}", kind="application/json") -> Reply:
    return Reply(status, body, kind, "", int(seconds * 1e6))


def generic_500_after(seconds: float) -> Reply:
    return reply_after(seconds, 500, GENERIC_500, "text/html; charset=utf-8")


def test_the_generic_500_page_names_no_cause():
    assert explicit_lock(generic_500_after(5.1)) is None


@pytest.mark.parametrize(
    "seconds, suspected",
    [(0.2, False), (4.6, False), (4.8, True), (5.1, True), (6.9, True), (7.1, True), (7.3, False)],
)
def test_a_bare_500_at_the_busy_timeout_is_a_timing_only_db_locked(seconds, suspected):
    # the window reaches the real server's 7.1 s: its commit helper retries and queueing follow the timeout
    verdict = timing_lock(generic_500_after(seconds), busy_window_s(5.0, 0.6), write=False)
    assert (verdict is not None) == suspected
    if verdict:
        assert verdict[0] == "db_locked" and evidence_of(*verdict) == "timing"
        assert "500 Internal Server Error" in verdict[1]


def test_timing_needs_a_500_and_can_be_switched_off():
    assert timing_lock(reply_after(5.0), busy_window_s(5.0, 0.6), write=True) is None  # a 2xx is no failure
    assert timing_lock(generic_500_after(5.0), busy_window_s(0.0, 0.6), write=True) is None
    assert busy_window_s(0.3, 0.6) == (pytest.approx(0.1), pytest.approx(2.5))


def test_what_the_body_names_is_server_said():
    verdict = explicit_lock(
        html_500("AttributeError: &#39;NoneType&#39; object has no attribute &#39;isoformat&#39;")
    )
    assert evidence_of(*verdict) == "server-said"
    assert evidence_of("lost_update", "sent watch_timestamp N, the 200 answer echoed N") == "verified"


def test_status_digits_are_never_masked():
    from amanflix_stress.engine.stats import normalise_message

    assert normalise_message("500 Internal Server Error") == "500 Internal Server Error"
    assert normalise_message("timing: 500 Internal Server Error after 5.1 s") == (
        "timing: 500 Internal Server Error after N s"
    )
    assert normalise_message("user 12 row 0x1f") == "user N row <hex>"


def test_console_examples_are_shortened_at_a_word():
    from amanflix_stress.output.report import short_example

    text = "verified: 500 to a first write, and a read-back right after finds no row at all, none"
    shown = short_example(text, width=40)
    assert len(shown) <= 40 and shown.endswith("…")
    assert text.startswith(shown[:-1]) and text[len(shown) - 1] == " "  # cut where a word ends


def test_the_error_table_shows_the_reason_not_the_module_path():
    from amanflix_stress.output.report import short_example

    shown = short_example(
        "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked [SQL: "
        "UPDATE notification SET is_read=? WHERE notification.id = ?]"
    )
    assert shown.startswith("OperationalError: (OperationalError) database is locked")
    assert (
        short_example("sent watch_timestamp 50.7, the 200 answer echoed 41.2")
        == "sent watch_timestamp 50.7, the 200 answer echoed 41.2"
    )
