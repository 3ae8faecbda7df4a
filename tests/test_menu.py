"""The interactive menu, driven through a pseudo-terminal like a person at a keyboard."""

import json
import os
import re
import select
import subprocess
import sys
import time

import pytest
from helpers import ROOT, SCRIPT

READ_TIMEOUT_S = 30.0


class Terminal:
    """The real CLI on a pty: `expect` waits (on select, with a timeout) until the screen shows a pattern."""

    def __init__(self, *args: str, env: dict) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            close_fds=True,
        )
        os.close(slave)
        self.screen = ""

    def expect(self, pattern: str) -> re.Match:
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not (match := re.search(pattern, self.screen)):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {pattern!r} on screen:\n{self.screen}"
            if select.select([self.master], [], [], remaining)[0]:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the program exited and closed the terminal
                    chunk = b""
                assert chunk, f"program ended without showing {pattern!r}:\n{self.screen}"
                self.screen += chunk.decode(errors="replace").replace("\r\n", "\n")
        return match

    def type(self, text: str) -> None:
        os.write(self.master, (text + "\n").encode())

    def finish(self) -> int:
        try:
            while select.select([self.master], [], [], READ_TIMEOUT_S)[0]:
                chunk = os.read(self.master, 65536)
                if not chunk:
                    break
                self.screen += chunk.decode(errors="replace").replace("\r\n", "\n")
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=READ_TIMEOUT_S)
        finally:
            os.close(self.master)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def menu_env(tmp_path):
    """A user profile directory with a one-second profile, and a fresh place to remember the base URL."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "tiny.toml").write_text(
        "# Tiny: two users for one second on the counting server\n[load]\n"
        'users = 2\nduration = "1s"\nworkers = 1\n[behaviour]\n'
        'think_time_s = [0.0, 0.02]\n[[requests]]\nname = "GET /ok"\npath = "/ok"\n'
    )
    return {"AMANFLIX_STRESS_PROFILES": str(profiles), "AMANFLIX_STRESS_STATE": str(tmp_path / "state.json")}


def start(env) -> Terminal:
    return Terminal("menu", env=env)


def pick(term: Terminal, name: str) -> None:
    number = term.expect(rf"(\d+)\) {re.escape(name)}\s").group(1)
    term.expect(r"Choose \[1-\d+, c, q\]: ")
    term.type(number)


@pytest.mark.slow
def test_picking_a_profile_asks_the_url_shows_the_plan_runs_it_and_remembers_the_url(
    menu_env, server, tmp_path
):
    term = start(menu_env)
    try:
        for name in ("quick", "standard", "heavy", "db-stress", "stability", "soak", "smoke", "tiny"):
            term.expect(rf"\d+\) {name}\s")
        assert "template" not in term.screen
        pick(term, "tiny")
        term.expect(r"Base URL \[http://127\.0\.0\.1:5001\]: ")
        term.type("localhost:99")  # no scheme: asked again
        term.expect(r"is not an http:// or https:// URL.*\n.*Base URL \[")
        term.type(server.url)
        plan = term.expect(r"About to run:(?s:.*)Run it\? \[Y/n\]: ").group(0)
        assert (
            "tiny (Tiny: two users" in plan and f"--base-url {server.url}" in plan and "users     2" in plan
        )
        term.type("")  # Enter accepts
        term.expect(r"ENDPOINTS")
        assert term.finish() == 0
    finally:
        term.close()
    assert "PASS" in term.screen and server.counts["/ok"] > 0
    assert json.loads((tmp_path / "state.json").read_text()) == {"base_url": server.url}


def test_the_last_url_is_offered_and_declining_runs_nothing(menu_env, tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"base_url": "http://127.0.0.1:5999"}))
    term = start(menu_env)
    try:
        pick(term, "smoke")
        term.expect(r"Base URL \[http://127\.0\.0\.1:5999\]: ")
        term.type("")
        term.expect(r"--base-url http://127\.0\.0\.1:5999(?s:.*)Run it\? \[Y/n\]: ")
        term.type("n")
        term.expect("no test run")
        assert term.finish() == 0
    finally:
        term.close()


def test_a_custom_test_prompts_for_users_duration_and_focus_and_checks_each_answer(menu_env):
    term = start(menu_env)
    try:
        term.expect(r"c\) custom test")
        term.expect(r"Choose \[1-\d+, c, q\]: ")
        term.type("7x")
        term.expect(r"'7x' is not on the menu")
        term.type("c")
        term.expect(r"Users \[25\]: ")
        term.type("lots")
        term.expect(r"'lots' is not a whole number(?s:.*)Users \[25\]: ")
        term.type("30")
        term.expect(r"Duration \(90s, 10m, 1h\) \[5m\]: ")
        term.type("soon")
        term.expect(r"not a duration(?s:.*)Duration \(90s, 10m, 1h\) \[5m\]: ")
        term.type("2m")
        term.expect(r"Focus on watch-history writes \(database stress\)\? \[y/N\]: ")
        term.type("y")
        term.expect(r"Base URL \[.*\]: ")
        term.type("http://127.0.0.1:5002")
        plan = term.expect(r"About to run:(?s:.*)Run it\? \[Y/n\]: ").group(0)
        assert "custom test based on db-stress" in plan and "users     30" in plan and "duration  2m" in plan
        assert "run --profile db-stress --base-url http://127.0.0.1:5002 --users 30 --duration 2m" in plan
        term.type("no")
        term.expect("no test run")
        assert term.finish() == 0
    finally:
        term.close()


def test_quit_and_ctrl_d_leave_without_running(menu_env):
    for keys in ("q", "\x04"):
        term = start(menu_env)
        try:
            term.expect(r"Choose \[1-\d+, c, q\]: ")
            os.write(term.master, keys.encode() + (b"\n" if keys == "q" else b""))
            term.expect("no test run")
            assert term.finish() == 0
        finally:
            term.close()
