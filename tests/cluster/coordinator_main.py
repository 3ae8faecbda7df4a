"""The coordinator on the `sched` host: `amanflix-stress` itself (cli.main), with two test-only seams.

    python coordinator_main.py [--set module.NAME=seconds ...] [--tap PATH] -- run ARGS...

--set shrinks a tunable (module constants are read at call time, STYLE 11). --tap pickles, at the end, every
message the aggregator received (as it arrived off the Dask queue), the merged phases, and the bytes of every
task this process submitted to Dask (what a worker host receives), for the tests to inspect."""

from __future__ import annotations

import importlib
import pickle
import sys

import distributed
from distributed.protocol import pickle as dask_pickle

from amanflix_stress.cli import main as cli_main
from amanflix_stress.engine.aggregator import Aggregator


def tap(path: str):
    record: dict = {"messages": [], "tasks": [], "phases": None}
    handle, init, submit = Aggregator.handle, Aggregator.__init__, distributed.Client.submit
    seen: list[Aggregator] = []

    def handle_tapped(self, message):
        record["messages"].append(message)
        return handle(self, message)

    def init_tapped(self, *args, **kwargs):
        init(self, *args, **kwargs)
        seen.append(self)

    def submit_tapped(self, func, *args, **kwargs):
        record["tasks"].append(dask_pickle.dumps((func, args, kwargs)))
        return submit(self, func, *args, **kwargs)

    Aggregator.handle, Aggregator.__init__ = handle_tapped, init_tapped
    distributed.Client.submit = submit_tapped

    def dump() -> None:
        if seen:
            record["phases"] = {name: stats.to_plain() for name, stats in seen[-1].phases.items()}
        with open(path, "wb") as out:
            pickle.dump(record, out)

    return dump


def main(argv: list[str]) -> int:
    split = argv.index("--")
    options, args = argv[:split], argv[split + 1 :]
    dump = None
    while options:
        flag, value = options.pop(0), options.pop(0)
        if flag == "--set":
            target, number = value.split("=")
            module, name = target.rsplit(".", 1)
            setattr(importlib.import_module(f"amanflix_stress.{module}"), name, float(number))
        elif flag == "--tap":
            dump = tap(value)
    try:
        return cli_main(args)
    finally:
        if dump is not None:
            dump()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
