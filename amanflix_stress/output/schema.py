"""docs/report-schema.md from the report's types: `python -m amanflix_stress.output.schema --write`."""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Union

from amanflix_stress.output.model import SCHEMA_VERSION, Report, is_record_type, json_name, optional_of

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "report-schema.md"
SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", Any: "any"}

INTRO = f"""# The JSON report (`{SCHEMA_VERSION}`)

Written atomically (a temporary file renamed into place) at the end of every run, also an interrupted one.
Durations are seconds, latencies milliseconds (`*_ms`, 3 decimals), times ISO-8601 UTC (`*_at`) or epoch
seconds (`*_s`). A latency is `null` where nothing was measured. No password or token is ever saved: flags
whose name contains `password` are saved as `***`.

This page is generated from the report's types (`amanflix_stress/output/model.py` and
`amanflix_stress/amanflix/records.py`) by `python -m amanflix_stress.output.schema --write`; a test fails when
the two differ. Each section below is one JSON object; its keys appear in the order listed.
"""

TIMESERIES = """## The time series (`<report>.timeseries.jsonl`)

One JSON object per interval (default 5 s), appended while the run goes:
`interval`, `start_s`, `end_s`, `requests`, `failures`, `rps`, `p50_ms`, `p95_ms`, `p99_ms`, `active_users`,
`errors` (class → count), `endpoints` (name → `requests`, `failures`, `p50_ms`, `p95_ms`, `p99_ms`).
Samples are placed in the interval in which their answer arrived (send time + latency), so a request that
waited 5 s on a lock counts where the failure was seen and is never left out of an interval already written.
"""


def type_text(hint: Any) -> str:
    """A type hint in words, records as links to their sections."""
    inner = optional_of(hint)
    if inner is not hint:
        return f"{type_text(inner)} or null"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if is_record_type(hint):
        return f"object ([{hint.__name__}](#{hint.__name__.lower()}))"
    if origin is tuple:
        if args[-1:] == (Ellipsis,):
            return f"array of {type_text(args[0])}"
        return "[" + ", ".join(type_text(a) for a in args) + "]"
    if origin in (dict, Mapping):
        return f"object: {type_text(args[0])} → {type_text(args[1])}" if args else "object"
    if origin in (Union, types.UnionType):
        return " or ".join(type_text(a) for a in args)
    return SCALARS.get(hint, getattr(hint, "__name__", str(hint)))


def records(root: type) -> list[type]:
    """Every record type reachable from root, breadth first, each once."""
    found, queue = [], [root]
    while queue:
        cls = queue.pop(0)
        if cls in found:
            continue
        found.append(cls)
        for hint in typing.get_type_hints(cls).values():
            queue += [t for t in nested(hint) if is_record_type(t)]
    return found


def nested(hint: Any) -> list[Any]:
    return [hint, *(t for arg in typing.get_args(hint) for t in nested(arg))]


def field_row(f, hint: Any) -> str:
    text = f.metadata.get("doc", "")
    if f.metadata.get("flatten"):
        inner = optional_of(hint)
        return f"| the keys of [{inner.__name__}](#{inner.__name__.lower()}) | | {text}; absent otherwise |"
    kind = type_text(optional_of(hint) if f.metadata.get("omit_none") else hint)
    if f.metadata.get("omit_none"):
        kind += " (the key is absent when there is none)"
    return f"| `{json_name(f)}` | {kind} | {text} |"


def record_section(cls: type) -> str:
    hints = typing.get_type_hints(cls)
    rows = [field_row(f, hints[f.name]) for f in fields(cls)]
    head = f"## {cls.__name__}\n\n{(cls.__doc__ or '').strip()}\n\n| key | type | contents |\n|---|---|---|"
    return head + "\n" + "\n".join(rows) + "\n"


def render_schema() -> str:
    """The whole document."""
    return "\n".join([INTRO, *(record_section(cls) for cls in records(Report)), TIMESERIES])


def main(argv: list[str]) -> int:
    """Print the document, or with --write replace docs/report-schema.md."""
    text = render_schema()
    if "--write" in argv:
        DOC_PATH.write_text(text)
        print(f"wrote {DOC_PATH}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
