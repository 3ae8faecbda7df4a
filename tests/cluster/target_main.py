"""The `target` host: the sandbox Amanflix, bound to this namespace's address, counting every request it
serves by method and path (GET /__counts answers them and is not counted). Test scaffolding only: the
sandbox binds 127.0.0.1, which other hosts cannot reach.

    python target_main.py HOST [sandbox arguments ...]"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter

from amanflix_stress.sandbox import server
from amanflix_stress.sandbox.cli import run_foreground

COUNTS_PATH = "/__counts"


class Counting:
    """WSGI middleware: one count per request that reached the application."""

    def __init__(self, app) -> None:
        self.app, self.counts, self.lock = app, Counter(), threading.Lock()

    def __call__(self, environ, start_response):
        key = f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}"
        if key == f"GET {COUNTS_PATH}":
            with self.lock:
                body = json.dumps(dict(self.counts)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        with self.lock:
            self.counts[key] += 1
        return self.app(environ, start_response)


def main(argv: list[str]) -> int:
    server.HOST = argv[0]  # the namespace's own address: the other hosts' only way in
    make_app = server.create_app
    server.create_app = lambda state: Counting(make_app(state))
    return run_foreground(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
