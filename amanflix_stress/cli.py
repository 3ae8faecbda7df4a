"""The command line: parses flags, resolves the plan, runs it, and turns every exception into an exit code."""
from __future__ import annotations

import argparse
import os
import sys
import time

from . import __version__
from .coordinator import Coordinator, RunPlan
from .errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLDS, EXIT_USAGE, StressError, UsageError
from .profile import SCHEMA, defaults, find_profile, load_profile, parse_duration_s
from .report import build_report, progress_line, render_report, write_json

PLAIN_PROGRESS_EVERY_S = 10.0  # progress lines when stdout is not a terminal (cron mail, CI logs)

EXAMPLES = """examples:
  amanflix-stress run --base-url http://127.0.0.1:5001 --users 100 --duration 10m
  amanflix-stress run --profile smoke --base-url http://127.0.0.1:5001 --report-json out.json
  amanflix-stress run --users 20 --duration 90s --max-concurrent 10 --seed 7

exit codes: 0 ok, 1 thresholds breached or a worker lost, 2 bad usage or profile,
            3 target unreachable, 130 interrupted"""

# flag -> (profile section, key): flags override the profile
FLAG_KEYS = {"base_url": ("target", "base_url"), "timeout": ("target", "timeout_s"),
             "users": ("load", "users"), "duration": ("load", "duration"), "spawn_rate": ("load", "spawn_rate"),
             "workers": ("load", "workers"), "max_concurrent": ("load", "max_concurrent"), "seed": ("load", "seed")}


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="amanflix-stress", description="Load tests for the Amanflix API that find "
                            "its SQLite lock failures.", epilog=EXAMPLES, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--version", action="version", version=f"amanflix-stress {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    run = commands.add_parser("run", help="run a load test", epilog=EXAMPLES,
                              formatter_class=argparse.RawTextHelpFormatter)
    add_run_flags(run)
    return parser


def add_run_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument("--profile", help="profile name (see 'profiles') or path to a .toml file")
    run.add_argument("--base-url", help="target base URL, e.g. http://127.0.0.1:5001")
    run.add_argument("--users", type=int, help="simulated users")
    run.add_argument("--duration", help="measured phase: 90s, 10m, 1h, or whole minutes")
    run.add_argument("--spawn-rate", type=float, help="users started per second")
    run.add_argument("--workers", type=int, help="worker processes (default: CPUs)")
    run.add_argument("--max-concurrent", type=int, help="cap on requests in flight across all users (0 = none)")
    run.add_argument("--timeout", type=float, help="per-request read timeout, seconds")
    run.add_argument("--seed", type=int, help="seed for every random choice")
    run.add_argument("--report-json", help="where to write the JSON report (default reports/run-<time>-<id>.json)")
    run.add_argument("--quiet", action="store_true", help="no progress lines")


def resolve_profile(args: argparse.Namespace) -> dict:
    """Defaults <- profile file <- flags, each value checked; an error names the flag or the profile key."""
    profile = load_profile(find_profile(args.profile)) if args.profile else defaults()
    for flag, (section, key) in FLAG_KEYS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        try:
            profile[section][key] = SCHEMA[section][key].check(value)
        except ValueError as exc:
            raise UsageError(f"--{flag.replace('_', '-')}: {exc}") from None
    return profile


def plan_from_profile(profile: dict, report_json: str) -> RunPlan:
    load, target, behaviour = profile["load"], profile["target"], profile["behaviour"]
    settings = {k: v for k, v in behaviour.items() if k not in ("kind", "setup_concurrency")}
    if behaviour["kind"] == "http":
        settings["requests"] = profile.get("requests") or [{"name": "GET /", "method": "GET", "path": "/"}]
    return RunPlan(base_url=target["base_url"], users=load["users"], duration_s=parse_duration_s(load["duration"]),
                   spawn_rate=load["spawn_rate"], workers=load["workers"], max_concurrent=load["max_concurrent"],
                   behaviour=behaviour["kind"], settings=settings, timeout_s=target["timeout_s"],
                   connect_timeout_s=target["connect_timeout_s"], seed=load["seed"], interval_s=load["interval_s"],
                   timeseries_path=os.path.splitext(report_json)[0] + ".timeseries.jsonl",
                   setup_concurrency=behaviour["setup_concurrency"])


def default_report_path() -> str:
    return os.path.join("reports", time.strftime("run-%Y%m%d-%H%M%S") + f"-{os.getpid()}.json")


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


def verdict(report: dict, profile: dict) -> tuple[int, str]:
    """Exit code and a one-line verdict suitable for cron mail."""
    problems = [f"worker {w['id']} {w['status']} ({w['detail']})" for w in report["workers"]
                if w["status"] in ("died", "hung")]
    allowed = profile["thresholds"].get("error_rate")
    rate = report["totals"]["error_rate"]
    if allowed is not None and rate > allowed:
        problems.append(f"error rate {rate:.2%} > allowed {allowed:.2%}")
    if report["meta"]["interrupted"]:
        return EXIT_INTERRUPTED, "INTERRUPTED: partial report written" + (f"; {'; '.join(problems)}" if problems else "")
    if problems:
        return EXIT_THRESHOLDS, "FAIL: " + "; ".join(problems)
    return EXIT_OK, "PASS"


def command_run(args: argparse.Namespace) -> int:
    profile = resolve_profile(args)
    report_path = args.report_json or default_report_path()
    plan = plan_from_profile(profile, report_path)
    printer = ProgressPrinter(plan.duration_s, args.quiet)
    result = Coordinator(plan, printer).run()
    printer.finish()
    report = build_report(plan, result, {k: v for k, v in vars(args).items() if k != "func"}, profile)
    code, line = verdict(report, profile)
    report["verdict"] = {"exit_code": code, "summary": line}
    write_json(report, report_path)
    print(render_report(report))
    print(f"report: {report_path}\ntime series: {plan.timeseries_path}\n{line}")
    return code


COMMANDS = {"run": command_run}


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch, and map exceptions to exit codes: the only place that does so."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except StressError as exc:
        print(f"amanflix-stress: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("amanflix-stress: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
