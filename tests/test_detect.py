"""Lock signatures: what each failure looks like on the wire, and what must not be mistaken for one."""

import pytest

from amanflix_stress.amanflix.detect import explicit_lock, lock_wait
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


def reply_after(seconds: float, status: int = 200) -> Reply:
    return Reply(status, b"{}", "application/json", "", int(seconds * 1e6))


@pytest.mark.parametrize(
    "seconds, waited",
    [(0.2, False), (4.6, False), (4.8, True), (5.1, True), (5.5, True), (5.8, False), (6.1, False)],
)
def test_a_write_answered_at_the_busy_timeout_waited_on_a_lock(seconds, waited):
    assert (lock_wait(reply_after(seconds), 5.0, 0.6) is not None) == waited


def test_the_lock_wait_signature_can_be_switched_off_and_needs_a_success():
    assert lock_wait(reply_after(5.0), 0.0, 0.6) is None
    assert lock_wait(reply_after(5.0, status=500), 5.0, 0.6) is None


def test_the_error_table_shows_the_reason_not_the_module_path():
    from amanflix_stress.output.report import _short_example

    shown = _short_example(
        "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked [SQL: "
        "UPDATE notification SET is_read=? WHERE notification.id = ?]"
    )
    assert shown.startswith("OperationalError: (OperationalError) database is locked")
    assert (
        _short_example("sent watch_timestamp 50.7, the 200 answer echoed 41.2")
        == "sent watch_timestamp 50.7, the 200 answer echoed 41.2"
    )
