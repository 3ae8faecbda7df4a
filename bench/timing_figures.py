"""Timing figures the tests no longer assert (they depend on the machine's load), each beside its old bound.

Usage: .venv/bin/python bench/timing_figures.py   (about 15 s; loopback only; not part of `make test`)
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import fast_profile, free_port  # noqa: E402
from loopback import CountingServer  # noqa: E402

from amanflix_stress.cli import main  # noqa: E402
from amanflix_stress.engine import health  # noqa: E402


def delay_profile(folder: Path, server, think_s: str) -> str:
    return fast_profile(folder, server, path="/delay", think=think_s)


def run(folder: Path, profile: str, *flags: str) -> dict:
    report = folder / "r.json"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(["run", "--profile", profile, "--report-json", str(report), "--quiet", *flags])
    return json.loads(report.read_text())


def light_closed(folder: Path) -> list[tuple]:
    with CountingServer() as server:
        data = run(
            folder,
            delay_profile(folder, server, "[5.0, 5.0]"),
            "--users",
            "2",
            "--workers",
            "1",
            "--duration",
            "3s",
        )
    (worker,) = data["health"]["workers"]
    return [
        ("idle generator: CPU, cores", worker["cpu_cores"], f"< {health.CPU_LIMIT_CORES}"),
        ("idle generator: schedule lag p99, ms", worker["lag_p99_ms"], f"<= {health.LAG_LIMIT_MS}"),
    ]


def open_model(folder: Path) -> list[tuple]:
    with CountingServer() as server:
        easy = run(
            folder,
            delay_profile(folder, server, "[5.0, 5.0]"),
            "--rate",
            "50",
            "--users",
            "6",
            "--workers",
            "2",
            "--duration",
            "2s",
        )
    with CountingServer() as server:
        hard = run(
            folder,
            delay_profile(folder, server, "[5.0, 5.0]"),
            "--rate",
            "150",
            "--users",
            "2",
            "--workers",
            "1",
            "--duration",
            "2s",
        )
    (row,), (hard_row,) = easy["endpoints"], hard["endpoints"]
    model = easy["load_model"]
    return [
        (
            "open 50/s: arrivals sent of scheduled",
            f"{easy['totals']['requests']}/{model['arrivals_scheduled']}",
            "all",
        ),
        ("open 50/s: dropped + unsent at stop", model["dropped"] + model["unsent_at_stop"], "0"),
        ("open 50/s: response p50, ms (server 50 ms)", row["response_p50_ms"], "< 200"),
        ("open 150/s on 40/s: service p99, ms", hard_row["p99_ms"], "< 150"),
        ("open 150/s on 40/s: response p99, ms", hard_row["response_p99_ms"], "> 500"),
    ]


def capped(folder: Path) -> list[tuple]:
    with CountingServer() as server:
        data = run(
            folder,
            delay_profile(folder, server, "[0.0, 0.01]"),
            "--users",
            "8",
            "--workers",
            "2",
            "--duration",
            "2s",
            "--max-concurrent",
            "2",
            "--spawn-rate",
            "100",
        )
        most = server.max_in_flight
    return [
        ("--max-concurrent 2: requests in 2 s (50 ms each)", data["totals"]["requests"], "<= 84"),
        ("--max-concurrent 2: most served at once", most, "2"),
    ]


def unreachable() -> list[tuple]:
    started = time.monotonic()
    with contextlib.redirect_stderr(io.StringIO()):
        main(["run", "--base-url", f"http://127.0.0.1:{free_port()}", "--duration", "1s"])
    return [("unreachable target: seconds to exit 3", round(time.monotonic() - started, 3), "< 3.5")]


def main_bench() -> int:
    with tempfile.TemporaryDirectory(prefix="amfx-timing-") as folder:
        rows = [*light_closed(Path(folder)), *open_model(Path(folder)), *capped(Path(folder)), *unreachable()]
    for name, value, bound in rows:
        print(f"{name:<52} {value!s:>12}   (was asserted: {bound})")
    return 0


if __name__ == "__main__":
    sys.exit(main_bench())
