"""Run inside a host: ask the target for its request counts or (as admin) its ground truth and user list.

AMFX_ADMIN_PASSWORD=... python ask.py BASE_URL counts|truth|users"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request


def get(url: str, token: str | None = None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def main(base: str, what: str) -> None:
    if what == "counts":
        print(json.dumps(get(f"{base}/__counts")))
        return
    form = urllib.parse.urlencode({"username": "superadmin", "password": os.environ["AMFX_ADMIN_PASSWORD"]})
    with urllib.request.urlopen(f"{base}/api/admin/login", form.encode(), timeout=10) as answer:
        token = json.load(answer)["api_key"]
    path = "/api/sandbox/truth" if what == "truth" else "/api/admin/user/list?per_page=1000"
    print(json.dumps(get(base + path, token)))


if __name__ == "__main__":
    main(*sys.argv[1:])
