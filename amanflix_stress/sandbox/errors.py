"""Error responses shaped like upstream's: 404 JSON, Werkzeug HTML for 405/415, and HTML 500 pages: the
debugger's naming the exception (debug on) or Werkzeug's generic page (debug off)."""

from __future__ import annotations

import html
import traceback

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, NotFound
from werkzeug.wrappers import Response as WerkzeugResponse

from .storage import count_unhandled_lock, endpoint_name, sandbox

NOT_FOUND = {
    "error": "The page you're looking for seems to have vanished into thin air.",
    "error_reason": "not_found",
}

DEBUG_PAGE = """<!doctype html>
<html lang=en>
  <head>
    <title>{title} // Werkzeug Debugger</title>
  </head>
  <body style="background-color: #fff">
    <div class="debugger">
<h1>{exc_type}</h1>
<div class="detail">
  <p class="errormsg">{title}</p>
</div>
<h2 class="traceback">Traceback <em>(most recent call last)</em></h2>
<pre>{traceback}</pre>
<div class="pin-prompt">
  <div class="inner">
    <h3>Console Locked</h3>
    <p>
      The console is locked and needs to be unlocked by entering the PIN.
      You can find the PIN printed out on the standard output of your
      shell that runs the server.
    </p>
  </div>
</div>
<div class="footer">
  Brought to you by <strong class="arthur">DON'T PANIC</strong>, your
  friendly Werkzeug powered traceback interpreter.
</div>
    </div>
  </body>
</html>
"""


def exception_title(exc: BaseException) -> str:
    """'module.Class: message' on one line, as the Werkzeug debugger titles it (builtins unqualified)."""
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    message = " ".join(str(exc).split())
    return f"{name}: {message}" if message else name


def debug_page(exc: BaseException) -> Response:
    """HTTP 500 with a Werkzeug-debugger-like HTML page naming the exception."""
    title = html.escape(exception_title(exc))
    body = DEBUG_PAGE.format(
        title=title,
        exc_type=html.escape(type(exc).__name__),
        traceback=html.escape("".join(traceback.format_exception(exc))),
    )
    return Response(body, status=500, mimetype="text/html")


def not_found(_exc) -> tuple[Response, int]:
    return jsonify(NOT_FOUND), 404


def generic_page(exc: BaseException) -> WerkzeugResponse:
    """Werkzeug's own 500 page, what Flask answers with debug off: it names no exception."""
    return InternalServerError(original_exception=exc).get_response()


def unhandled(exc: Exception):
    """Log an unhandled exception and answer the page the debug setting gives; HTTP errors keep Werkzeug's."""
    if isinstance(exc, HTTPException):
        return exc.get_response()
    count_unhandled_lock(exc, endpoint_name())
    state = sandbox()
    state.store.log.exception(request.path, request.method, exc, state.cfg.debug)
    return debug_page(exc) if state.cfg.debug else generic_page(exc)


def register(app) -> None:
    app.register_error_handler(NotFound, not_found)
    app.register_error_handler(Exception, unhandled)
