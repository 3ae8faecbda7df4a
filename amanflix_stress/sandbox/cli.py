"""`amanflix-stress sandbox` / `python -m amanflix_stress.sandbox`: run a sandbox in the foreground."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from sqlalchemy.exc import DatabaseError

from .config import CATALOGS, DEFAULT_HASH_ITERATIONS, MAX_PORT, MODES, SandboxConfig, check_paths
from .server import READY_PREFIX, start_sandbox

PROG = "amanflix-stress sandbox"
EXIT_USAGE = 2  # as the main command's bad usage


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        """One line on stderr, exit 2 (argparse would print the whole usage first)."""
        fail(f"{message} (see '{self.prog} --help')")
        raise SystemExit(EXIT_USAGE)


def port_number(value: str) -> int:
    port = int(value)  # a ValueError is argparse's "invalid port_number value"
    if not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_PORT} (0 = any free port), got {port}")
    return port


def fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="Run the sandbox Amanflix API on 127.0.0.1 until Ctrl-C.")
    parser.add_argument(
        "--port", type=port_number, default=0, help="TCP port on 127.0.0.1 (0 = any free port)"
    )
    parser.add_argument(
        "--mode", choices=MODES, default="upstream", help="storage behaviour (default upstream)"
    )
    parser.add_argument("--db", help="SQLite file (default: a new temp file); an existing catalog is reused")
    parser.add_argument("--busy-timeout-s", type=float, default=5.0, help="SQLite busy timeout (upstream: 5)")
    parser.add_argument("--catalog", choices=CATALOGS, default="default", help="seed content or leave empty")
    parser.add_argument("--admin-password", help="superadmin password (default: random, printed)")
    parser.add_argument(
        "--hash-iterations",
        type=int,
        default=DEFAULT_HASH_ITERATIONS,
        help="PBKDF2 iterations per password hash (~1000000 mimics upstream bcrypt's ~0.4 s)",
    )
    parser.add_argument(
        "--truth-path", help="ground-truth JSON written at shutdown (default <db>.truth.json)"
    )
    parser.add_argument(
        "--debug",
        choices=("on", "off"),
        default="off",
        help="500 pages: off = Werkzeug's generic page, as the server is deployed (default); "
        "on = the debugger page naming the exception, as upstream's app.run(debug=True)",
    )
    parser.add_argument("--log-path", help="server log, upstream's format (default <db dir>/amanflix.log)")
    parser.add_argument("--log-requests", action="store_true", help="print one line per request")
    return parser


def config_from(args: argparse.Namespace) -> SandboxConfig:
    return SandboxConfig(
        mode=args.mode,
        db_path=args.db,
        port=args.port,
        busy_timeout_s=args.busy_timeout_s,
        hash_iterations=args.hash_iterations,
        catalog=args.catalog,
        admin_password=args.admin_password,
        truth_path=args.truth_path,
        debug=args.debug == "on",
        log_path=args.log_path,
    )


def _install_stop_signals(stop: threading.Event) -> None:
    """First SIGINT/SIGTERM stops gracefully (truth file written); a second Ctrl-C interrupts."""

    def on_signal(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            signal.default_int_handler(signum, frame)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(signum, on_signal)
        except ValueError:  # not the main thread: the caller stops us through `stop`
            pass


def banner(info: dict) -> str:
    debug = "on (debugger pages)" if info["debug"] else "off (generic 500 pages)"
    temp = " (a temp folder, removed at shutdown; pass --db to keep it)" if info["temp_db"] else ""
    return "\n".join(
        [
            f"Amanflix sandbox ({info['mode']} mode, debug {debug}) listening on {info['url']}",
            f"  admin: {info['admin_username']} / {info['admin_password']}",
            f"  database: {info['db_path']}{temp}",
            f"  server log: {info['server_log_path']}",
            f"  ground truth at shutdown: {info['truth_path']}",
            "Press Ctrl-C to stop.",
        ]
    )


def run_foreground(argv: list[str] | None = None, stop: threading.Event | None = None) -> int:
    """Serve until SIGINT/SIGTERM (or `stop` is set); the first stdout line is `SANDBOX READY <json>`."""
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from(args)
        check_paths(cfg.db_path, cfg.log_path, cfg.truth_path)
    except ValueError as exc:
        fail(str(exc))
        return EXIT_USAGE
    stop = stop or threading.Event()
    _install_stop_signals(stop)
    try:
        server = start_sandbox(cfg, log_requests=args.log_requests)
    except DatabaseError as exc:  # a SQLite file that passed the header check but is damaged
        fail(f"--db {cfg.db_path}: cannot use it ({exc.orig})")
        return EXIT_USAGE
    except OSError as exc:  # e.g. the port is taken
        fail(f"cannot start: {exc}")
        return 1
    print(READY_PREFIX + json.dumps(server.info()), flush=True)
    print(banner(server.info()), flush=True)
    while not stop.wait(0.5):
        pass
    final = server.stop()
    print("Stopped. Ground truth: " + json.dumps(final, sort_keys=True), flush=True)
    return 0
