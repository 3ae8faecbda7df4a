"""The interactive menu (the seed's run_test.sh): pick a profile or custom test, confirm, get the flags."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from tabulate import tabulate

from amanflix_stress.engine.client import parse_base_url
from amanflix_stress.errors import StressError
from amanflix_stress.profile import USER_PROFILE_DIR, list_profiles, load_profile, parse_duration_s

MENU_HIDDEN = {"template"}  # documents options; not a test anyone means to pick from a menu
CUSTOM_BASE = {False: "quick", True: "db-stress"}  # a custom test starts from one of these, by focus


def state_path() -> Path:
    """Where the menu remembers the last base URL; read at call time so tests can point it elsewhere."""
    return Path(os.environ.get("AMANFLIX_STRESS_STATE", USER_PROFILE_DIR / "menu-state.json"))


def load_state() -> dict:
    try:
        state = json.loads(state_path().read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def save_state(state: dict) -> None:
    try:
        state_path().parent.mkdir(parents=True, exist_ok=True)
        state_path().write_text(json.dumps(state) + "\n")
    except OSError as exc:  # remembering is a convenience: never block the run on it
        print(f"(could not remember the base URL in {state_path()}: {exc.strerror})", file=sys.stderr)


def profile_rows() -> list[dict]:
    """Each profile with the figures a person picks by; a broken profile shows its error instead."""
    rows = []
    for entry in list_profiles():
        try:
            resolved = load_profile(Path(entry["path"]))
            entry |= {
                "users": resolved["load"]["users"],
                "duration": resolved["load"]["duration"],
                "kind": resolved["behaviour"]["kind"],
                "base_url": resolved["target"]["base_url"],
            }
        except StressError as exc:
            entry |= {"users": "-", "duration": "-", "kind": "-", "purpose": f"INVALID: {exc}"}
        rows.append(entry)
    return rows


def render_profiles(rows: list[dict] | None = None) -> str:
    rows = profile_rows() if rows is None else rows
    table = [[r["name"], r["users"], r["duration"], r["kind"], r["source"], r["purpose"]] for r in rows]
    return tabulate(
        table,
        ["profile", "users", "duration", "behaviour", "from", "purpose"],
        tablefmt="simple",
        disable_numparse=True,
    )


class Menu:
    """Asks its questions through input_fn and returns the 'run' argv, or None when the user quits."""

    def __init__(self, input_fn=input, out=None) -> None:
        self.input_fn = input_fn
        self.out = out or sys.stdout

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def ask(self) -> list[str] | None:
        try:
            return self._ask()
        except EOFError:
            self.say("\nno test run")
            return None

    def _ask(self) -> list[str] | None:
        rows = [r for r in profile_rows() if r["name"] not in MENU_HIDDEN and r["kind"] != "-"]
        choice = self.choose(rows)
        if choice is None:
            return None
        state = load_state()
        default_url = state.get("base_url") or choice.get("base_url") or "http://127.0.0.1:5001"
        base_url = self.prompt("Base URL", default_url, check=parse_base_url)
        argv = ["run", "--profile", choice["name"], "--base-url", base_url, *choice.get("overrides", [])]
        self.summary(choice, base_url, argv)
        if not self.yes_no("Run it?", True):
            self.say("no test run")
            return None
        save_state({**state, "base_url": base_url})
        return argv

    def choose(self, rows: list[dict]) -> dict | None:
        self.say("Amanflix stress tests\n")
        for number, row in enumerate(rows, 1):
            self.say(
                f"  {number}) {row['name']:<11} {row['users']:>4} users "
                f"{row['duration']:>5}  {row['purpose']}"
            )
        self.say("  c) custom test: you choose users, duration and focus")
        self.say("  q) quit\n")
        while True:
            answer = self.input_fn(f"Choose [1-{len(rows)}, c, q]: ").strip().lower()
            if answer == "q":
                self.say("no test run")
                return None
            if answer == "c":
                return self.custom(rows)
            if answer.isdigit() and 1 <= int(answer) <= len(rows):
                return rows[int(answer) - 1]
            self.say(f"  {answer!r} is not on the menu: type a number from 1 to {len(rows)}, c or q")

    def custom(self, rows: list[dict]) -> dict:
        users = self.prompt("Users", "25", check=positive_int)
        duration = self.prompt("Duration (90s, 10m, 1h)", "5m", check=parse_duration_s)
        focus = self.yes_no("Focus on watch-history writes (database stress)?", False)
        base = next((r for r in rows if r["name"] == CUSTOM_BASE[focus]), {})
        return {
            **base,
            "name": CUSTOM_BASE[focus],
            "users": users,
            "duration": duration,
            "purpose": f"custom test based on {CUSTOM_BASE[focus]}",
            "overrides": ["--users", users, "--duration", duration],
        }

    def prompt(self, question: str, default: str, check) -> str:
        """Ask until check(answer) accepts it; Enter takes the default."""
        while True:
            answer = self.input_fn(f"{question} [{default}]: ").strip() or default
            try:
                check(answer)
                return answer
            except (ValueError, StressError) as exc:
                self.say(f"  {exc}")

    def yes_no(self, question: str, default: bool) -> bool:
        while True:
            answer = self.input_fn(f"{question} [{'Y/n' if default else 'y/N'}]: ").strip().lower()
            if not answer:
                return default
            if answer in ("y", "yes", "n", "no"):
                return answer.startswith("y")
            self.say("  answer y or n")

    def summary(self, choice: dict, base_url: str, argv: list[str]) -> None:
        self.say("\nAbout to run:")
        for label, value in (
            ("profile", f"{choice['name']} ({choice['purpose']})"),
            ("base URL", base_url),
            ("users", choice["users"]),
            ("duration", choice["duration"]),
            ("command", "amanflix-stress " + shlex.join(argv)),
        ):
            self.say(f"  {label:<9} {value}")


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{text!r} is not a whole number of users of at least 1")
    return int(text)
