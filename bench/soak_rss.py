"""Memory over a long run: the worker's resident set while it sends a few hundred req/s for N minutes.

Usage: .venv/bin/python bench/soak_rss.py [MINUTES]   (default 60; loopback only; writes bench/soak_rss.json)
"""

import json
import os
import sys
import tempfile

from run import BENCH, run_ours
from targets import start_delay_target

USERS = 20  # against a 50 ms server: about 400 req/s
DELAY_MS = 50.0
WARMUP_S = 60.0


def main() -> int:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    folder = tempfile.mkdtemp(prefix="amfx-soak-")
    everything = set(os.sched_getaffinity(0))
    target = start_delay_target(everything, DELAY_MS, os.path.join(folder, "timings.json"))
    rss: list = []
    try:
        report = run_ours(
            folder,
            target.url,
            everything,
            "--users",
            str(USERS),
            "--workers",
            "1",
            "--duration",
            f"{minutes}m",
            "--spawn-rate",
            "1000",
            rss=rss,
            timeout_s=minutes * 60 + 300,
        )
    finally:
        target.stop()
    warm = [mb for s, mb in rss if s >= WARMUP_S]
    result = {
        "minutes": minutes,
        "requests": report["totals"]["requests"],
        "rps": report["totals"]["throughput_rps"],
        "rss_mb_first_after_warmup": warm[0] if warm else None,
        "rss_mb_last": warm[-1] if warm else None,
        "rss_mb_max": max(warm) if warm else None,
        "growth_after_warmup_mb": round(warm[-1] - warm[0], 1) if len(warm) > 1 else None,
        "rss_mb_every_minute": rss[::60],
    }
    (BENCH / "soak_rss.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mb_every_minute"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
