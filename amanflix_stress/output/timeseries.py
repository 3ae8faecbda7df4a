"""The time series file: each closed interval's row appended as one JSON line while the run goes."""

from __future__ import annotations

import json
import os


class TimeSeriesWriter:
    """The aggregator's interval sink for one run: starts the file empty, then appends one line per row."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        open(path, "w").close()  # a report path used again must not keep an earlier run's lines

    def __call__(self, row: dict) -> None:
        with open(
            self.path, "a"
        ) as out:  # open per row (one every interval): a crash keeps every line so far
            out.write(json.dumps(row) + "\n")
