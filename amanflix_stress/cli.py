"""The command line: parses flags, resolves the plan, runs it, and turns every exception into an exit code."""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
import threading
import time
from dataclasses import replace

from amanflix_stress import __version__
from amanflix_stress.amanflix.holdlock import hold_lock_section, lock_holder, window_evidence
from amanflix_stress.amanflix.probe import Probe, ProbeConfig
from amanflix_stress.amanflix.run_hooks import remove_leftovers
from amanflix_stress.amanflix.serverlog import event_times, evidence, follower_for
from amanflix_stress.amanflix.validate import (
    ADMIN_PASSWORD_ENV,
    ADMIN_USER_ENV,
    Validation,
    admin_from_env,
)
from amanflix_stress.amanflix.validate import render as render_validation
from amanflix_stress.demo import import_sandbox, run_demo
from amanflix_stress.engine.client import check_reachable, parse_base_url
from amanflix_stress.engine.coordinator import Coordinator
from amanflix_stress.engine.plan import AdminCredentials, RunPlan
from amanflix_stress.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_THRESHOLDS,
    EXIT_USAGE,
    EXIT_VALIDATE,
    StressError,
    UsageError,
)
from amanflix_stress.output.probe_report import exit_code as probe_exit_code
from amanflix_stress.output.probe_report import render as render_probe
from amanflix_stress.output.probe_report import write_json as write_probe_json
from amanflix_stress.output.report import build_report, progress_line
from amanflix_stress.output.rundir import RunDir, timeseries_path_for
from amanflix_stress.output.timeseries import TimeSeriesWriter
from amanflix_stress.profile import (
    BEHAVIOUR_PATHS,
    SCHEMA,
    defaults,
    find_profile,
    load_profile,
    parse_duration_s,
)

PLAIN_PROGRESS_EVERY_S = 10.0  # progress lines when stdout is not a terminal (cron mail, CI logs)

EXAMPLES = """examples:
  amanflix-stress run --base-url http://127.0.0.1:5001 --users 100 --duration 10m
  amanflix-stress run --profile smoke --base-url http://127.0.0.1:5001 --report-json out.json
  amanflix-stress run --users 20 --duration 90s --max-concurrent 10 --seed 7
  amanflix-stress run --profile db-stress --hold-lock api/instance/amanflix_db.db --hold-lock-schedule 7s/30s
  amanflix-stress validate --base-url http://127.0.0.1:5001
  amanflix-stress probe --base-url http://127.0.0.1:5001 --db api/instance/amanflix_db.db
  amanflix-stress cleanup --base-url http://127.0.0.1:5001 --run-id 1a2b3c4d   (admin credentials)

exit codes: 0 ok, 1 the run failed (a threshold, a lost worker, lock issues, errors above 1 %,
            the target stopped answering; --fail-on none only measures; probe: a failure reproduced),
            2 bad usage or profile, 3 target unreachable, 4 another run holds --report-dir,
            5 the run could not be prepared (e.g. an empty catalog, not an Amanflix API),
            6 validate found a failing check, 7 probe --db is not the target's database,
            8 the run ended but a report file could not be written (the summary is on stdout),
            130 interrupted"""

# flag -> (profile section, key): flags override the profile
FLAG_KEYS = {
    "base_url": ("target", "base_url"),
    "timeout": ("target", "timeout_s"),
    "users": ("load", "users"),
    "duration": ("load", "duration"),
    "spawn_rate": ("load", "spawn_rate"),
    "workers": ("load", "workers"),
    "max_concurrent": ("load", "max_concurrent"),
    "seed": ("load", "seed"),
}
FLAG_KEYS.update({"rate": ("load", "rate")})
FLAG_KEYS.update(
    {
        "report_dir": ("reporting", "report_dir"),
        "keep": ("reporting", "keep"),
        "junit": ("reporting", "junit"),
        "baseline": ("reporting", "baseline"),
        "fail_on": ("verdict", "fail_on"),
    }
)


AMANFLIX_SECTIONS = ("journeys", "watch_history", "detection", "accounts")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="amanflix-stress",
        description="Load tests for the Amanflix API that find its SQLite lock failures.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"amanflix-stress {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    run = commands.add_parser(
        "run", help="run a load test", epilog=EXAMPLES, formatter_class=argparse.RawTextHelpFormatter
    )
    add_run_flags(run)
    add_tool_commands(commands)
    add_probe_command(commands)
    commands.add_parser("profiles", help="list the profiles with their purpose")
    commands.add_parser("menu", help="pick a profile or a custom test interactively, then run it")
    return parser


def add_tool_commands(commands) -> None:
    commands.add_parser(
        "sandbox",
        help="run the embedded Amanflix sandbox in the foreground: --port N "
        "--mode upstream|strict|fixed --db PATH (sandbox --help)",
    )
    commands.add_parser(
        "demo", help="run a one-minute demo against a sandbox and compare with its ground truth"
    )
    validate = commands.add_parser("validate", help="six checks that a target is an Amanflix API we can load")
    validate.add_argument("--base-url", required=True, type=checked_url, help="e.g. http://127.0.0.1:5001")
    validate.add_argument("--timeout", type=seconds, default=10.0, help="per-request timeout, seconds")
    validate.add_argument("--admin-user", help="admin account: removes the probe's rows too")
    validate.add_argument("--admin-password", help="its password (better: $AMANFLIX_ADMIN_PASSWORD)")
    cleanup = commands.add_parser(
        "cleanup",
        help="remove the test accounts an earlier run left (admin credentials; only the tool's names)",
        epilog=CLEANUP_EXIT_CODES,
    )
    cleanup.add_argument("--base-url", required=True, type=checked_url, help="e.g. http://127.0.0.1:5001")
    which = cleanup.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", type=checked_run_id, help="the run's id (the report's meta.run_id)")
    which.add_argument("--all-runs", action="store_true", help="every run's accounts, whatever its id")
    cleanup.add_argument(
        "--prefix", default="amfx", type=checked_run_id, help="account prefix (default amfx)"
    )
    cleanup.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    cleanup.add_argument("--admin-user", help="admin account (or $AMANFLIX_ADMIN_USER)")
    cleanup.add_argument("--admin-password", help="its password (better: $AMANFLIX_ADMIN_PASSWORD)")


CLEANUP_EXIT_CODES = (
    "exit codes: 0 every matching account removed (or none found), 1 some could not be removed (each "
    "named), 2 bad usage or no/wrong admin credentials, 3 target unreachable, 5 the user list could "
    "not be read"
)


def checked_run_id(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise argparse.ArgumentTypeError(f"{value!r}: letters, digits, '-' and '_' only")
    return value


def add_probe_command(commands) -> None:
    probe = commands.add_parser(
        "probe",
        help="reproduce each lock failure once, explain its cause, prove the fix (exit 1: reproduced)",
    )
    probe.add_argument("--base-url", required=True, type=checked_url, help="e.g. http://127.0.0.1:5001")
    probe.add_argument(
        "--db",
        help="the server's SQLite file on this machine: the lock scenarios hold its lock (else skipped)",
    )
    probe.add_argument(
        "--server-log", help="the server's log (api/logs/amanflix.log): its lines for each scenario"
    )
    probe.add_argument("--json", help="write the findings and the diagnosis here as JSON")
    probe.add_argument(
        "--busy-timeout",
        type=float,
        default=5.0,
        help="the server's SQLite busy timeout, seconds (default 5)",
    )
    probe.add_argument("--timeout", type=seconds, default=30.0, help="per-request timeout, seconds")
    probe.add_argument("--admin-user", help="admin account for cleanup (or $AMANFLIX_ADMIN_USER)")
    probe.add_argument(
        "--admin-password", help="its password (better: $AMANFLIX_ADMIN_PASSWORD); never printed"
    )


def seconds(value: str) -> float:
    """A positive, finite number of seconds (nan and inf would reach the socket)."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return number


def checked_url(value: str) -> str:
    try:
        parse_base_url(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_run_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument("--profile", help="profile name (see 'profiles') or path to a .toml file")
    run.add_argument("--base-url", help="target base URL, e.g. http://127.0.0.1:5001")
    run.add_argument("--users", type=int, help="simulated users")
    run.add_argument("--duration", help="measured phase: 90s, 10m or 1h (a unit is required)")
    run.add_argument("--spawn-rate", type=float, help="users started per second")
    run.add_argument(
        "--rate",
        type=float,
        help="open model: arrivals per second, scheduled whatever the replies "
        "do; --users sets the thread pool that serves them",
    )
    run.add_argument("--workers", type=int, help="worker processes (default: CPUs)")
    run.add_argument(
        "--max-concurrent", type=int, help="cap on requests in flight across all users (0 = none)"
    )
    run.add_argument("--timeout", type=float, help="per-request read timeout, seconds")
    run.add_argument("--seed", type=int, help="seed for every random choice")
    run.add_argument(
        "--report-json", help="where to write the JSON report (default reports/run-<time>-<id>.json)"
    )
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the workers on Dask: tcp://SCHEDULER:8786, or local:N "
        "for N local processes (pip install 'amanflix-stress[cluster]'; see docs/cluster.md)",
    )
    add_amanflix_flags(run)


def add_amanflix_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--amanflix",
        action="store_true",
        help="run the Amanflix journeys (the default) even if the profile lists [[requests]]",
    )
    run.add_argument(
        "--focus-watch-history",
        action="store_true",
        help="concentrate on watch-history writes (the lock hot spot)",
    )
    run.add_argument(
        "--bursts",
        type=float,
        metavar="EVERY_S",
        help="every EVERY_S seconds many users write the same title at the same instant",
    )
    run.add_argument("--admin-user", help="admin account for cleanup (or $AMANFLIX_ADMIN_USER)")
    run.add_argument(
        "--admin-password", help="its password (better: $AMANFLIX_ADMIN_PASSWORD); never printed"
    )
    run.add_argument(
        "--hold-lock",
        metavar="DBPATH",
        help="hold a write lock on this SQLite file on a schedule, to reproduce lock failures",
    )
    run.add_argument(
        "--hold-lock-schedule",
        default="7s/30s",
        metavar="HOLD/EVERY",
        help="how long each hold lasts and how often it starts (default 7s/30s)",
    )
    run.add_argument(
        "--hold-lock-kind",
        choices=("reserved", "exclusive"),
        default="reserved",
        help="reserved blocks writers; exclusive blocks readers too",
    )
    run.add_argument(
        "--server-log",
        metavar="PATH",
        help="follow the target's log on this machine (e.g. api/logs/amanflix.log) and set the lock events "
        "it logs beside what the tool found",
    )
    run.add_argument(
        "--report-dir",
        help="put each run in a timestamped folder here (JSON, time series, summary, "
        "HTML); one run at a time per folder",
    )
    run.add_argument("--keep", type=int, help="with --report-dir: keep only the newest N run folders")
    run.add_argument("--junit", help="write JUnit XML here, one test case per verdict rule and per threshold")
    run.add_argument(
        "--baseline", help="flag regressions against this report.json, or 'previous' (with --report-dir)"
    )
    run.add_argument(
        "--fail-on",
        metavar="RULES",
        help="what fails a run besides thresholds and lost workers: any of target,locks,errors "
        "(the default: all three), or none to measure only",
    )


def resolve_profile(args: argparse.Namespace) -> dict:
    """Defaults <- profile file <- flags, each value checked; an error names the flag or the profile key."""
    profile = load_profile(find_profile(args.profile)) if args.profile else defaults()
    apply_amanflix_flags(args, profile)
    for flag, (section, key) in FLAG_KEYS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        try:
            profile[section][key] = SCHEMA[section][key].check(value)
        except ValueError as exc:
            raise UsageError(f"--{flag.replace('_', '-')}: {exc}") from None
    return profile


def apply_amanflix_flags(args: argparse.Namespace, profile: dict) -> None:
    if (
        getattr(args, "amanflix", False)
        or getattr(args, "focus_watch_history", False)
        or getattr(args, "bursts", None)
    ):
        profile["behaviour"]["kind"] = "amanflix"
    if getattr(args, "focus_watch_history", False):
        profile["watch_history"]["focus"] = True
    if getattr(args, "bursts", None) is not None:
        try:
            profile["watch_history"]["burst_every_s"] = SCHEMA["watch_history"]["burst_every_s"].check(
                args.bursts
            )
        except ValueError as exc:
            raise UsageError(f"--bursts: {exc}") from None


def admin_for_run(args: argparse.Namespace, plan: RunPlan) -> AdminCredentials | None:
    """--admin-user and --admin-password, each falling back to the environment variable the profile names:
    the one place a run reads the environment. The credentials stay in the coordinator's plan."""
    names = plan.settings.get("accounts", {})
    return admin_from_env(
        os.environ,
        names.get("admin_username_env", ADMIN_USER_ENV),
        names.get("admin_password_env", ADMIN_PASSWORD_ENV),
        user=getattr(args, "admin_user", None),
        password=getattr(args, "admin_password", None),
    )


def plan_from_profile(profile: dict, report_json: str) -> RunPlan:
    load, target, behaviour = profile["load"], profile["target"], profile["behaviour"]
    settings = {k: v for k, v in behaviour.items() if k not in ("kind", "setup_concurrency")}
    if behaviour["kind"] == "http":
        settings["requests"] = profile.get("requests") or [{"name": "GET /", "method": "GET", "path": "/"}]
    else:
        settings.update({section: dict(profile[section]) for section in AMANFLIX_SECTIONS})
    stages = tuple((parse_duration_s(d), r) for d, r in load["stages"])
    return RunPlan(
        base_url=target["base_url"],
        users=load["users"],
        rate=load["rate"],
        stages=stages,
        duration_s=sum(d for d, _r in stages) if stages else parse_duration_s(load["duration"]),
        spawn_rate=load["spawn_rate"],
        workers=load["workers"],
        max_concurrent=load["max_concurrent"],
        behaviour=behaviour["kind"],
        behaviour_path=BEHAVIOUR_PATHS[behaviour["kind"]],
        settings=settings,
        timeout_s=target["timeout_s"],
        connect_timeout_s=target["connect_timeout_s"],
        seed=load["seed"],
        interval_s=load["interval_s"],
        timeseries_path=timeseries_path_for(report_json),
        setup_concurrency=behaviour["setup_concurrency"],
    )


class ProgressPrinter:
    """Live progress: one rewritten line on a terminal, a plain line every so often elsewhere."""

    def __init__(self, total_s: float, quiet: bool, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.total_s, self.quiet = total_s, quiet
        self.tty = self.stream.isatty()
        self.next_plain = time.monotonic() + PLAIN_PROGRESS_EVERY_S

    def __call__(self, snapshot: dict) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r" + progress_line(snapshot, self.total_s).ljust(100))
            self.stream.flush()
        elif time.monotonic() >= self.next_plain:
            self.stream.write(progress_line(snapshot, self.total_s) + "\n")
            self.stream.flush()
            self.next_plain += PLAIN_PROGRESS_EVERY_S

    def finish(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")


def public_args(args: argparse.Namespace) -> dict:
    """The flags as the report saves them: secrets masked."""
    return {k: ("***" if "password" in k and v else v) for k, v in vars(args).items() if k != "func"}


def run_plan(plan: RunPlan, printer: ProgressPrinter, args: argparse.Namespace):
    """Run locally or on Dask with the admin credentials and the time series file; with --hold-lock, a second
    connection holds the target's lock on schedule."""
    plan = replace(plan, admin=admin_for_run(args, plan))
    on_interval = TimeSeriesWriter(plan.timeseries_path) if plan.timeseries_path else None
    holder = lock_holder(args, plan.base_url)
    on_start = (lambda start_s: holder.start(plan.duration_s)) if holder else None
    follower = follower_for(args, warn)  # from the log's end now, so setup's lock events count too
    try:
        result = start_run(plan, printer, args, on_start, on_interval)
    finally:
        if holder is not None:
            holder.stop()
        if follower is not None:
            follower.stop()
    if follower is not None:
        result.extra["server_log"] = evidence(follower, plan, result)
    if holder is not None:
        lag_s = plan.settings.get("detection", {}).get("lock_wait_s", 5.0) + 1.0
        lock_issues = result.extra.get("lock_issues")
        lock_timeline = lock_issues.timeline if lock_issues else ()
        result.extra["hold_lock"] = hold_lock_section(holder, lock_timeline, lag_s)
        result.extra["held_windows"] = window_evidence(
            holder.windows, result.intervals, lag_s, event_times(follower)
        )
    return result


def warn(line: str) -> None:
    """A problem the run survives (e.g. --server-log went away): one line on stderr, the run goes on."""
    print(f"amanflix-stress: warning: {line}", file=sys.stderr)


def start_run(plan: RunPlan, printer: ProgressPrinter, args: argparse.Namespace, on_start, on_interval=None):
    if not getattr(args, "cluster", None):
        coordinator = Coordinator(plan, printer, on_interval)
        coordinator.on_start = on_start or coordinator.on_start
        return coordinator.run()
    # Dask is an optional extra, imported only when asked for
    from amanflix_stress.engine.cluster import run_on_cluster

    return run_on_cluster(
        args.cluster,
        plan,
        printer,
        workers_given=args.workers is not None,
        on_start=on_start,
        on_interval=on_interval,
    )


def command_sandbox(args: argparse.Namespace) -> int:
    return import_sandbox().run_foreground(args.sandbox_args)  # UsageError without the [sandbox] extra


def command_demo(args: argparse.Namespace) -> int:
    return run_demo(lambda argv: command_run(build_parser().parse_args(argv)))


def command_validate(args: argparse.Namespace) -> int:
    admin = admin_from_env(os.environ, user=args.admin_user, password=args.admin_password)
    results = Validation(args.base_url, args.timeout, (admin.user, admin.password) if admin else None).run()
    print(render_validation(results))
    return EXIT_OK if all(ok for _name, ok, _reason in results) else EXIT_VALIDATE


def command_probe(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.busy_timeout) and args.busy_timeout >= 0):
        raise UsageError("--busy-timeout must be a finite number of seconds >= 0")
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise UsageError(f"--json: the folder of {args.json} does not exist")
    admin = admin_from_env(os.environ, user=args.admin_user, password=args.admin_password)
    cfg = ProbeConfig(
        args.base_url,
        db=args.db,
        server_log=args.server_log,
        busy_timeout_s=args.busy_timeout,
        timeout_s=args.timeout,
        admin=(admin.user, admin.password) if admin else None,
    )
    result = Probe(cfg).run()
    print(render_probe(result))
    if args.json:
        write_probe_json(result, args.json)
    return probe_exit_code(result)


def command_cleanup(args: argparse.Namespace) -> int:
    """Remove an earlier run's leftover accounts by the tool's name pattern; print each one removed."""
    admin = admin_from_env(os.environ, user=args.admin_user, password=args.admin_password)
    if admin is None:
        raise UsageError(
            f"cleanup needs admin credentials: --admin-user and ${ADMIN_PASSWORD_ENV} (or ${ADMIN_USER_ENV})"
        )
    check_reachable(args.base_url)
    found = remove_leftovers(args.base_url, admin, args.prefix, args.run_id, args.timeout)
    for name in found.removed:
        print(f"removed {name}")
    for left in found.not_removed:
        print(f"NOT removed {left.name}: {left.reason}")
    which = "every run" if args.all_runs else f"run {args.run_id}"
    print(f"cleanup of {which}: removed {len(found.removed)}, left {len(found.not_removed)}")
    return EXIT_THRESHOLDS if found.not_removed else EXIT_OK


def command_run(args: argparse.Namespace) -> int:
    profile = resolve_profile(args)
    with RunDir(profile["reporting"], args.report_json) as run_dir:  # every output path checked here
        baseline = run_dir.load_baseline()  # before the load: a typo must not cost a two-hour soak
        plan = plan_from_profile(profile, run_dir.report_path)
        printer = ProgressPrinter(plan.duration_s, args.quiet)
        result = run_plan(plan, printer, args)
        printer.finish()
        report = build_report(plan, result, public_args(args), profile, baseline)
        print(run_dir.write(report, tty=sys.stdout.isatty()))
    run_dir.raise_write_failures()  # after the folder is closed: what was written stays
    return report.verdict.exit_code


COMMANDS = {
    "run": command_run,
    "sandbox": command_sandbox,
    "demo": command_demo,
    "validate": command_validate,
    "probe": command_probe,
    "cleanup": command_cleanup,
}


def command_profiles(args: argparse.Namespace) -> int:
    from amanflix_stress.menu import render_profiles

    print(render_profiles())
    return EXIT_OK


def command_menu(args: argparse.Namespace) -> int:
    from amanflix_stress.menu import Menu

    argv = Menu().ask()
    return command_run(build_parser().parse_args(argv)) if argv else EXIT_OK


COMMANDS.update({"profiles": command_profiles, "menu": command_menu})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The sandbox's own options pass through to it; every other command takes only its own."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sandbox"]:
        return argparse.Namespace(command="sandbox", sandbox_args=argv[1:])
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch, and map exceptions to exit codes: the only place that does so."""
    previous = terminate_as_interrupt()
    try:
        args = parse_args(argv)
        return COMMANDS[args.command](args)
    except StressError as exc:
        print(f"amanflix-stress: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("amanflix-stress: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def terminate_as_interrupt():
    """SIGTERM outside a run (a run's coordinator handles its own) ends like Ctrl-C: one line, exit 130."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, raise_interrupt)


def raise_interrupt(_signum, _frame):
    raise KeyboardInterrupt
