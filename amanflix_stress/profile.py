"""Profiles: TOML files of run settings, validated key by key and resolved with the flags into a RunPlan."""

from __future__ import annotations

import copy
import difflib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from amanflix_stress.amanflix.detect import LOCK_CLASSES
from amanflix_stress.engine.classify import ENGINE_CLASSES
from amanflix_stress.engine.client import check_header, parse_base_url
from amanflix_stress.errors import UsageError
from amanflix_stress.output.verdict import DEFAULT_MAX_ERROR_RATE
from amanflix_stress.output.verdict import RULES as VERDICT_RULES
from amanflix_stress.units import parse_duration_s

# shipped as package data so an installed wheel finds them; the checkout's top-level profiles/ links here
PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
# each behaviour kind a profile can name -> the User class that runs it
BEHAVIOUR_PATHS = {
    "http": "amanflix_stress.engine.user:HttpListUser",
    "amanflix": "amanflix_stress.amanflix.journeys:AmanflixUser",
}
ERROR_CLASSES = (*ENGINE_CLASSES, *LOCK_CLASSES)  # what [thresholds] error_classes may name
USER_PROFILE_DIR = Path(
    os.environ.get("AMANFLIX_STRESS_PROFILES", Path.home() / ".config" / "amanflix-stress")
)


@dataclass(frozen=True)
class Option:
    """One profile key: its check (value -> value, ValueError if wrong), default and one-line meaning."""

    check: Callable[[Any], Any]
    default: Any
    help: str


def number(low: float | None = None, high: float | None = None, integer: bool = False) -> Callable:
    def check(value):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (integer and not isinstance(value, int))
        ):
            raise ValueError(f"expected {'a whole number' if integer else 'a number'}, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"of at least {low}" if high is None else f"from {low} to {high}"
            raise ValueError(f"expected a value {bounds}, got {value!r}")
        return value

    return check


def text(choices: tuple[str, ...] | None = None) -> Callable:
    def check(value):
        if not isinstance(value, str) or (choices and value not in choices):
            raise ValueError(f"expected one of {', '.join(choices)}" if choices else "expected a string")
        return value

    return check


def boolean(value):
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def url(value):
    parse_base_url(text()(value))
    return value


def span(value):
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in value)
        or value[0] > value[1]
    ):
        raise ValueError(f"expected [low, high] seconds with 0 <= low <= high, got {value!r}")
    return [float(v) for v in value]


def duration(value):
    parse_duration_s(value)
    return value


def rate_stages(value):
    """Open-model ramp: [[duration, rate], ...]; each stage moves the arrival rate linearly to `rate`."""
    if not isinstance(value, list) or any(not isinstance(s, list) or len(s) != 2 for s in value):
        raise ValueError('expected [[duration, rate], ...], e.g. [["30s", 50], ["2m", 200]]')
    for stage_duration, stage_rate in value:
        if not isinstance(stage_duration, str):
            raise ValueError(f'stage duration {stage_duration!r}: write it with a unit, e.g. "30s"')
        parse_duration_s(stage_duration)
        number(0, 1_000_000)(stage_rate)
    return value


def request_list(value):
    if not isinstance(value, list) or not value:
        raise ValueError("expected at least one [[requests]] table")
    allowed = {"name", "method", "path", "weight", "query", "form", "json", "headers", "expect"}
    for i, call in enumerate(value):
        unknown = set(call) - allowed
        if unknown or "path" not in call or not str(call["path"]).startswith("/"):
            raise ValueError(f"request {i + 1}: needs path='/...' and only {', '.join(sorted(allowed))}")
        call.setdefault("method", "GET")
        number(0, None)(call.get("weight", 1))
        for name, header_value in (call.get("headers") or {}).items():
            try:
                check_header(name, str(header_value))
            except ValueError as exc:
                raise ValueError(f"request {i + 1}: {exc}") from None
    return value


def fail_rules(value) -> list[str]:
    """[verdict] fail_on: a list of rule names, or (from --fail-on) "locks,errors" or "none"."""
    if isinstance(value, str):
        value = [] if value.strip() == "none" else [v.strip() for v in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(
            f'expected a list of rules from {", ".join(VERDICT_RULES)}, e.g. ["locks", "target"]'
        )
    for rule in value:
        if rule not in VERDICT_RULES:
            raise ValueError(
                f"unknown rule {rule!r}{did_you_mean(rule, VERDICT_RULES)}; known: "
                f"{', '.join(VERDICT_RULES)}, or none"
            )
    return [rule for rule in VERDICT_RULES if rule in value]  # one order, each once


ENDPOINT_LIMITS = {
    "p95_ms": number(0, None),
    "p99_ms": number(0, None),
    "error_rate": number(0, 1),
    "min_rps": number(0, None),
}


class NestedValueError(ValueError):
    """A wrong value one table deeper than section.key: carries the sub-table's name for the message."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def class_limits(value) -> dict:
    if not isinstance(value, dict):
        raise ValueError("expected a table of error class = largest allowed share, e.g. { lost_update = 0 }")
    for name, limit in value.items():
        if name not in ERROR_CLASSES:
            known = ", ".join(ERROR_CLASSES)
            raise NestedValueError(
                "", f"unknown error class {name!r}{did_you_mean(name, ERROR_CLASSES)}; known: {known}"
            )
        try:
            number(0, 1)(limit)
        except ValueError as exc:
            raise NestedValueError("", f"{name}: {exc} (a share of requests: 0 = none allowed)") from None
    return value


def endpoint_limits(value) -> dict:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError('expected tables like [thresholds.endpoints."GET /api/movies"] with p95_ms = 500')
    for name, limits in value.items():
        for key, limit in limits.items():
            if key not in ENDPOINT_LIMITS:
                raise NestedValueError(
                    f'"{name}"', f"unknown key {key!r}; allowed keys: {', '.join(ENDPOINT_LIMITS)}"
                )
            try:
                ENDPOINT_LIMITS[key](limit)
            except ValueError as exc:
                raise NestedValueError(f'"{name}"', f"{key}: {exc}") from None
    return value


SCHEMA: dict[str, dict[str, Option]] = {
    "target": {
        "base_url": Option(url, "http://127.0.0.1:5001", "the API's base URL (loopback or your own server)"),
        "timeout_s": Option(number(0.1, 600), 30.0, "read timeout of every request, seconds"),
        "connect_timeout_s": Option(number(0.1, 60), 3.0, "connect timeout of every request, seconds"),
    },
    "load": {
        "users": Option(number(1, 100_000, integer=True), 10, "simulated users"),
        "duration": Option(duration, "1m", "measured phase: 90s, 10m or 1h (a unit is required)"),
        "spawn_rate": Option(number(0.01, 100_000), 10.0, "users started per second during the ramp"),
        "workers": Option(number(1, 1024, integer=True), os.cpu_count() or 1, "worker processes"),
        "max_concurrent": Option(number(0, 100_000, integer=True), 0, "cap on requests in flight, 0 = none"),
        "seed": Option(
            number(0, None, integer=True), 1, "seed of every random choice: a run is reproducible"
        ),
        "interval_s": Option(number(0.5, 3600), 5.0, "time-series interval, seconds"),
        "rate": Option(
            number(0, 1_000_000),
            0.0,
            "open model: arrivals per second, whatever the replies do (0 = "
            "closed model: users think between requests)",
        ),
        "stages": Option(
            rate_stages, [], "open model ramp: [[duration, rate], ...] from `rate`; the run lasts their total"
        ),
    },
    "behaviour": {
        "kind": Option(
            text(("http", "amanflix")),
            "amanflix",
            "amanflix: the journeys; http: the [[requests]] list (the default when the profile has one)",
        ),
        "think_time_s": Option(span, [0.5, 1.5], "[low, high] pause between a user's actions, seconds"),
        "setup_concurrency": Option(number(1, 1000, integer=True), 8, "user setups in flight per worker"),
    },
    "journeys": {
        "read_share": Option(
            number(0, 1), 0.7, "share of a user's actions that are reads (the rest are writes)"
        ),
        "watch_history_share": Option(number(0, 1), 0.8, "share of writes that are watch-history updates"),
        "mylist_share": Option(number(0, 1), 0.15, "share of writes that add, remove or check my-list items"),
        "profile_update_share": Option(number(0, 1), 0.05, "share of writes that update the profile"),
        "heartbeat_every_s": Option(number(0, 3600), 30.0, "analytics heartbeat cadence, seconds (0 = none)"),
        "dual_session_share": Option(number(0, 1), 0.1, "share of accounts used by two sessions at once"),
    },
    "watch_history": {
        "focus": Option(boolean, False, "nearly every action is a watch-history write (db-stress)"),
        "rapid_update_chance": Option(number(0, 1), 0.3, "chance an update is followed by rapid updates"),
        "rapid_updates": Option(span, [2, 4], "[low, high] count of rapid follow-up updates"),
        "rapid_gap_s": Option(span, [0.1, 0.9], "[low, high] gap between rapid updates, seconds (< 1 s)"),
        "burst_every_s": Option(number(0, 86400), 0.0, "a burst of same-content writes every N s (0 = none)"),
        "burst_share": Option(number(0, 1), 0.5, "share of users that join each burst"),
    },
    "detection": {
        "readback_share": Option(number(0, 1), 0.2, "share of acknowledged writes read back to verify them"),
        "lock_wait_s": Option(
            number(0, 600), 5.0, "the server's SQLite busy timeout: writes this slow waited on a lock"
        ),
        "lock_wait_tolerance_s": Option(
            number(0, 60), 0.6, "how close to lock_wait_s counts as the lock-wait signature"
        ),
        "verify_at_end": Option(boolean, True, "compare each user's last acknowledged write with the server"),
    },
    "accounts": {
        "prefix": Option(text(), "amfx", "test account names start with this, then the run id"),
        "setup_retries": Option(
            number(0, 10, integer=True), 2, "retries of registration and catalog calls only"
        ),
        "cleanup": Option(boolean, True, "delete every account the run created at the end"),
        "admin_username_env": Option(
            text(), "AMANFLIX_ADMIN_USER", "environment variable holding the admin name"
        ),
        "admin_password_env": Option(
            text(), "AMANFLIX_ADMIN_PASSWORD", "environment variable holding its password"
        ),
    },
    "reporting": {
        "report_dir": Option(
            text(), "", "put each run in a timestamped folder here ('' = a single JSON report)"
        ),
        "keep": Option(
            number(0, 100_000, integer=True), 0, "run folders kept in report_dir, newest first (0 = all)"
        ),
        "html": Option(
            boolean, True, "write report.html in the run folder (needs the html extra: matplotlib)"
        ),
        "junit": Option(text(), "", "write JUnit XML here, one test case per threshold ('' = none)"),
        "baseline": Option(
            text(), "", "compare with: '' nothing, 'previous' run in report_dir, or a report.json"
        ),
        "regression_pct": Option(
            number(0, 100_000), 25.0, "an endpoint whose p95 grew by more than this % regressed"
        ),
    },
    "verdict": {
        "fail_on": Option(
            fail_rules,
            list(VERDICT_RULES),
            "what fails a run with no thresholds: target (it stopped answering), locks (lock issues found), "
            "errors (error rate above max_error_rate); [] measures only",
        ),
        "max_error_rate": Option(
            number(0, 1),
            DEFAULT_MAX_ERROR_RATE,
            "the errors rule's limit ([thresholds] error_rate replaces it)",
        ),
    },
    "thresholds": {
        "error_rate": Option(number(0, 1), None, "largest allowed share of failed requests (exit 1 above)"),
        "p95_ms": Option(number(0, None), None, "largest allowed P95 latency of all requests, ms"),
        "p99_ms": Option(number(0, None), None, "largest allowed P99 latency of all requests, ms"),
        "min_throughput_rps": Option(
            number(0, None), None, "smallest allowed throughput of the run, requests/s"
        ),
        "error_classes": Option(
            class_limits,
            {},
            "largest allowed share of requests per error class, e.g. { lost_update = 0, db_locked = 0.01 }",
        ),
        "endpoints": Option(endpoint_limits, {}, "per endpoint: p95_ms, p99_ms, error_rate, min_rps"),
    },
}
LIST_SECTIONS = {"requests": request_list}


def defaults() -> dict:
    return {
        section: {k: copy.deepcopy(o.default) for k, o in options.items()}
        for section, options in SCHEMA.items()
    }


def find_profile(name_or_path: str) -> Path:
    """A profile by path, or by name from the user's profile directory, then the shipped profiles/."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or os.sep in name_or_path:
        if candidate.is_file():
            return candidate
        raise UsageError(
            f"--profile: no file {name_or_path}; give a path to a .toml file or a name from "
            "'amanflix-stress profiles'"
        )
    for folder in (USER_PROFILE_DIR, PROFILE_DIR):
        path = folder / f"{name_or_path}.toml"
        if path.is_file():
            return path
    raise UsageError(f"--profile: no profile named {name_or_path!r}; 'amanflix-stress profiles' lists them")


def load_profile(path: Path) -> dict:
    """Read and validate a profile file; every error names the file and the key."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the profile: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    return validate(raw, str(path))


def validate(raw: dict, where: str) -> dict:
    """Defaults overlaid with the raw profile, every key checked."""
    resolved = defaults()
    for section, body in raw.items():
        if section in LIST_SECTIONS:
            try:
                resolved[section] = LIST_SECTIONS[section](copy.deepcopy(body))
            except ValueError as exc:
                raise UsageError(f"{where}: [[{section}]]: {exc}") from None
            continue
        if section not in SCHEMA or not isinstance(body, dict):
            raise UsageError(f"{where}: {misplaced(section)}")
        for key, value in body.items():
            resolved[section][key] = check_option(section, key, value, where)
    if "requests" in raw and "kind" not in raw.get("behaviour", {}):
        resolved["behaviour"]["kind"] = "http"  # a list of calls says what to run
    check_together(resolved, where)
    return resolved


WRITE_SHARES = ("watch_history_share", "mylist_share", "profile_update_share")


def check_together(resolved: dict, where: str) -> None:
    """Values each fine alone but impossible together."""
    total = sum(resolved["journeys"][k] for k in WRITE_SHARES)
    if total > 1 + 1e-9:
        raise UsageError(
            f"{where}: [journeys] {' + '.join(WRITE_SHARES)} = {total:g}: these split the writes, "
            "so they must add up to at most 1"
        )


def check_option(section: str, key: str, value, where: str):
    option = SCHEMA[section].get(key)
    if option is None:
        allowed = ", ".join(sorted(SCHEMA[section]))
        raise UsageError(
            f"{where}: [{section}] unknown key {key!r}{did_you_mean(key, SCHEMA[section])}; "
            f"allowed keys: {allowed}"
        )
    try:
        return option.check(value)
    except NestedValueError as exc:
        table = ".".join(p for p in (section, key, exc.path) if p)
        raise UsageError(f"{where}: [{table}] {exc}") from None
    except ValueError as exc:
        raise UsageError(f"{where}: [{section}] {key}: {exc}") from None


def did_you_mean(key: str, choices) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def misplaced(name: str) -> str:
    """The message for a top-level name that is not a known section (often a key put outside its section)."""
    owners = [section for section, options in SCHEMA.items() if name in options]
    if owners:
        return f"key {name!r} must be inside its section: put it under [{owners[0]}]"
    allowed = ", ".join(sorted([*SCHEMA, *LIST_SECTIONS]))
    return (
        f"unknown section [{name}]{did_you_mean(name, [*SCHEMA, *LIST_SECTIONS])}; "
        f"allowed sections: {allowed}"
    )


def profile_purpose(path: Path) -> str:
    """The one-line purpose a profile opens with (its first comment line)."""
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def list_profiles() -> list[dict]:
    """Every profile the user can name: the user's directory first (it shadows a same-named shipped one)."""
    found: dict[str, dict] = {}
    for folder, source in ((USER_PROFILE_DIR, "user"), (PROFILE_DIR, "shipped")):
        for path in sorted(Path(folder).glob("*.toml")) if Path(folder).is_dir() else []:
            found.setdefault(
                path.stem,
                {"name": path.stem, "path": str(path), "source": source, "purpose": profile_purpose(path)},
            )
    return sorted(found.values(), key=lambda row: row["name"])
