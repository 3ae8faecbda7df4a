"""The HTML report's charts as inline SVG: one time axis shared by every panel, and latency per endpoint."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import blended_transform_factory

from amanflix_stress.amanflix.detect import LOCK_CAUSED

CHART_WIDTH_IN = 13.0  # ~1,300 px at the page's width: text stays at its printed size on a 1,400 px screen
PANEL_HEIGHT_IN = 2.5
MIN_PARTIAL_SHARE = 0.25  # a last interval shorter than this share of the others is left out: too few samples
LINES = {"p50_ms": "#4c78a8", "p95_ms": "#f58518", "p99_ms": "#e45756"}
RPS_COLOUR, USERS_COLOUR = "#4c78a8", "#54a24b"
HELD_COLOUR, BURST_COLOUR, MARK_COLOUR = "#e45756", "#7b4fa0", "#b71c1c"
LOCK_PALETTE = ["#c62828", "#ef6c00", "#f9a825", "#ad1457", "#8d6e63", "#d84315", "#ff8a65", "#6d4c41"]
OTHER_PALETTE = ["#4c78a8", "#72b7b2", "#9e9e9e", "#54a24b", "#b279a2", "#5c6bc0", "#26a69a", "#78909c"]
LADDER = (  # per-endpoint latency: (field, label, marker)
    ("min_ms", "min", "|"),
    ("p50_ms", "p50", "o"),
    ("p90_ms", "p90", "s"),
    ("p95_ms", "p95", "D"),
    ("p99_ms", "p99", "^"),
    ("p999_ms", "p99.9", "v"),
    ("max_ms", "max", "|"),
)


@dataclass(frozen=True)
class Span:
    """One time-series interval on the shared axis, in seconds since the measured phase started."""

    start_s: float
    width_s: float
    partial: bool  # cut short by the end of the measured phase: its rate is over its own width
    row: Mapping


@dataclass(frozen=True)
class Timeline:
    """What the time charts draw, every time in seconds since the measured phase started."""

    spans: tuple[Span, ...]
    phase_s: float  # the measured phase's length: the end of every chart's axis
    held: tuple[tuple[float, float], ...]  # --hold-lock windows, (start, end)
    bursts: tuple[float, ...]  # scheduled same-title bursts
    lock_marks: tuple[tuple[float, float, int], ...]  # intervals with lock issues: (start, end, count)
    left_out: int  # partial intervals too short to draw
    clock: str  # wall-clock time of 0 s, for the axis label


def make_spans(rows: Sequence[Mapping], origin_s: float, phase_s: float, width_s: float) -> tuple:
    """Each interval clipped to the measured phase; the partial last one kept when long enough to mean
    something (its req/s recomputed over the part inside the phase), else counted as left out."""
    spans, left_out = [], 0
    for row in rows:
        start_s = row["start_s"] - origin_s
        width = min(row["end_s"] - origin_s, phase_s) - start_s
        if width < width_s * MIN_PARTIAL_SHARE:
            left_out += 1
            continue
        partial = width < width_s * 0.999
        if partial:
            row = {**row, "rps": row["requests"] / width}
        spans.append(Span(start_s, width, partial, row))
    return tuple(spans), left_out


def steps(spans: Sequence[Span], values: Sequence[float | None]) -> tuple[list[float], list[float]]:
    """A step line: each value held across its interval, a gap where intervals are missing."""
    xs: list[float] = []
    ys: list[float] = []
    for span, value in zip(spans, values):
        if xs and not math.isclose(xs[-1], span.start_s, abs_tol=1e-6):
            xs.append(math.nan)
            ys.append(math.nan)
        y = math.nan if value is None else value
        xs += [span.start_s, span.start_s + span.width_s]
        ys += [y, y]
    return xs, ys


def step_line(axes: Axes, spans: Sequence[Span], key: str, colour: str, label: str) -> None:
    """Full intervals solid, the partial last interval dashed (its figures come from fewer seconds)."""
    full = [s for s in spans if not s.partial]
    axes.plot(*steps(full, [s.row[key] for s in full]), color=colour, label=label, linewidth=1.8)
    for span in (s for s in spans if s.partial):
        axes.plot(*steps([span], [span.row[key]]), color=colour, linestyle="--", linewidth=1.8)


def shade(axes: Axes, timeline: Timeline) -> None:
    """Held lock windows and bursts on every panel, so a spike can be matched to its cause by eye."""
    for i, (start_s, end_s) in enumerate(timeline.held):
        label = "lock held (--hold-lock)" if i == 0 else None
        axes.axvspan(start_s, max(end_s, start_s + 0.05), color=HELD_COLOUR, alpha=0.13, lw=0, label=label)
    for i, at_s in enumerate(timeline.bursts):
        label = "burst (same title, many users)" if i == 0 else None
        axes.axvline(at_s, color=BURST_COLOUR, linestyle=":", linewidth=1.3, label=label)


def lock_caused(name: str) -> bool:
    return name in LOCK_CAUSED


def class_colours(names: Sequence[str]) -> dict[str, str]:
    """Lock-caused classes in warm colours, everything else in cool ones: lock issues stand out."""
    locks = [n for n in names if lock_caused(n)]
    others = [n for n in names if not lock_caused(n)]
    colours = {n: LOCK_PALETTE[i % len(LOCK_PALETTE)] for i, n in enumerate(locks)}
    return colours | {n: OTHER_PALETTE[i % len(OTHER_PALETTE)] for i, n in enumerate(others)}


def class_label(name: str) -> str:
    return f"{name} (lock)" if lock_caused(name) else name


def failures_panel(axes: Axes, timeline: Timeline) -> None:
    """Failed requests per interval stacked by class, lock-caused classes at the bottom."""
    spans = timeline.spans
    names = sorted({c for s in spans for c, n in s.row["errors"].items() if n})
    names.sort(key=lambda n: not lock_caused(n))  # stable: lock-caused first, each group by name
    colours = class_colours(names)
    bottom = [0] * len(spans)
    for name in names:
        counts = [s.row["errors"].get(name, 0) for s in spans]
        axes.bar(
            [s.start_s for s in spans],
            counts,
            width=[s.width_s * 0.92 for s in spans],
            bottom=bottom,
            align="edge",
            color=colours[name],
            label=class_label(name),
        )
        bottom = [b + c for b, c in zip(bottom, counts)]
    axes.set_title("Failed requests per interval, by class", loc="left", fontsize=11)
    axes.set_ylabel("failed requests")
    if not names:
        note(axes, "no failed request in any interval")


def latency_panel(axes: Axes, timeline: Timeline) -> None:
    """p50/p95/p99 per interval; each interval with lock issues marked above the lines with its count."""
    for key, colour in LINES.items():
        step_line(axes, timeline.spans, key, colour, key[:3])
    axes.set_title("Latency per interval (all endpoints)", loc="left", fontsize=11)
    axes.set_ylabel("ms")
    axes.set_ylim(bottom=0, top=max(axes.get_ylim()[1], 1.0) * 1.18)
    top = blended_transform_factory(axes.transData, axes.transAxes)
    for i, (start_s, end_s, count) in enumerate(timeline.lock_marks):
        middle_s = (start_s + min(end_s, timeline.phase_s)) / 2
        label = "interval with lock issues (count)" if i == 0 else None
        axes.plot([middle_s], [0.93], "v", color=MARK_COLOUR, transform=top, markersize=8, label=label)
        axes.text(middle_s, 0.93, f" {count}", transform=top, va="center", fontsize=9, color=MARK_COLOUR)


def throughput_panel(axes: Axes, timeline: Timeline) -> None:
    step_line(axes, timeline.spans, "rps", RPS_COLOUR, "requests/s")
    axes.set_title("Throughput and active users", loc="left", fontsize=11)
    axes.set_ylabel("requests / s")
    axes.set_ylim(bottom=0, top=max(axes.get_ylim()[1], 1.0) * 1.1)
    users = axes.twinx()
    step_line(users, timeline.spans, "active_users", USERS_COLOUR, "active users")
    users.set_ylabel("active users")
    users.set_ylim(bottom=0, top=max(users.get_ylim()[1], 1.0) * 1.1)
    handles, labels = axes.get_legend_handles_labels()
    more_handles, more_labels = users.get_legend_handles_labels()
    legend(axes, handles + more_handles, labels + more_labels, 1.07)


def legend(axes: Axes, handles: list, labels: list[str], x: float) -> None:
    """Beside the panel, right of its axes: never over the data, the same place on every panel."""
    axes.legend(handles, labels, loc="upper left", fontsize=9, frameon=False, bbox_to_anchor=(x, 1))


def note(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, transform=axes.transAxes, ha="center", va="center", color="#777")


def timeline_svg(timeline: Timeline) -> str:
    """Failures, latency, throughput: three panels on one shared time axis, drawn as one figure so their
    interval boundaries line up exactly."""
    fig = Figure(figsize=(CHART_WIDTH_IN, PANEL_HEIGHT_IN * 3 + 0.6), layout="constrained")
    panels = fig.subplots(3, 1, sharex=True)
    failures_panel(panels[0], timeline)
    latency_panel(panels[1], timeline)
    throughput_panel(panels[2], timeline)
    for axes in panels:
        shade(axes, timeline)
        axes.grid(True, alpha=0.3)
        axes.set_xlim(0, max(timeline.phase_s, 1e-3))
        axes.tick_params(labelbottom=True)
        handles, labels = axes.get_legend_handles_labels()
        if axes is not panels[2] and handles:
            legend(axes, handles, labels, 1.07)
    panels[2].set_xlabel(f"seconds since the measured phase started (0 s = {timeline.clock})")
    return to_svg(fig, "timeline")


def ladder_svg(rows: Sequence) -> str:
    """Each endpoint's latency percentiles on a log axis, slowest p99 at the top."""
    rows = sorted((r for r in rows if r.p50_ms is not None), key=lambda r: r.p99_ms or 0.0)
    fig = Figure(figsize=(CHART_WIDTH_IN, 0.9 + 0.42 * max(len(rows), 1)), layout="constrained")
    axes = fig.add_subplot()
    for y, row in enumerate(rows):
        axes.plot([row.min_ms, row.max_ms], [y, y], color="#bbb", linewidth=1, zorder=1)
    for i, (key, label, marker) in enumerate(LADDER):
        values = [getattr(r, key) for r in rows]
        colour = matplotlib.colormaps["viridis"](0.85 * i / (len(LADDER) - 1))  # no pale yellow end
        axes.scatter(values, range(len(rows)), marker=marker, color=colour, label=label, zorder=2, s=40)
    axes.set_yticks(range(len(rows)), [r.name for r in rows], fontsize=9)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))  # 100, not 10²
    axes.set_xlabel("ms (log scale)")
    axes.grid(True, axis="x", which="both", alpha=0.3)
    axes.set_title("Latency percentiles per endpoint (measured phase)", loc="left", fontsize=11)
    handles, labels = axes.get_legend_handles_labels()
    legend(axes, handles, labels, 1.01)
    return to_svg(fig, "ladder")


def to_svg(fig: Figure, salt: str) -> str:
    """Inline SVG: text kept as text, ids salted per chart so several charts can share one page."""
    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(out, format="svg")
    svg = out.getvalue()
    svg = svg[svg.index("<svg") :]
    # matplotlib numbers ids per figure (figure_1, axes_1, ...): prefix them so ids stay unique on the page
    return re.sub(r'(id="|url\(#|href="#)', lambda m: f"{m.group(1)}{salt}-", svg)
