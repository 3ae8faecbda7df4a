"""The HTML page of a real run (sandbox, held locks, server log), read back with an HTML parser: every
section against report.json, no empty table, no header count that differs from its section."""

from __future__ import annotations

import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from amanflix_stress.cli import main
from amanflix_stress.output.html import build_timeline, read_timeseries
from amanflix_stress.output.model import Report, from_plain
from amanflix_stress.sandbox import SandboxConfig, start_sandbox

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """The page as a test reads it: each table's header and body rows, each element with an id as text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, dict] = {}
        self.texts: dict[str, str] = {}
        self.cards: dict[str, str] = {}
        self.svgs = 0
        self.open: list[tuple[str, str | None]] = []
        self.table: dict | None = None
        self.row: list[str] | None = None
        self.card: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.svgs += tag == "svg"
        self.card = attrs.get("data-card", self.card)
        if tag in VOID:
            return
        self.open.append((tag, attrs.get("id")))
        if attrs.get("id"):
            self.texts[attrs["id"]] = ""
        if tag == "table":
            self.table = self.tables.setdefault(attrs["id"], {"head": [], "rows": []})
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.row.append("")

    def handle_endtag(self, tag):
        while self.open:
            open_tag, _ = self.open.pop()
            if open_tag == tag:
                break
        if tag == "tr" and self.table is not None and self.row is not None:
            target = "head" if not self.table["head"] else "rows"
            self.table[target].append([cell.strip() for cell in self.row])
            self.row = None
        elif tag == "table":
            self.table = None
        elif tag == "div" and self.card:
            self.card = None

    def handle_data(self, data):
        for _, element_id in self.open:
            if element_id:
                self.texts[element_id] += data
        if self.row is not None and self.row:
            self.row[-1] += data
        if self.card and self.open and self.open[-1][0] == "b":
            self.cards[self.card] = data.strip()

    def column(self, table: str, header: str) -> list[str]:
        found = self.tables[table]
        index = found["head"][0].index(header)
        return [row[index] for row in found["rows"]]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One short run against the sandbox with held locks and its server log; its folder's files."""
    folder = tmp_path_factory.mktemp("html-run")
    config = SandboxConfig(mode="upstream", busy_timeout_s=0.4, hash_iterations=1000)
    with start_sandbox(config) as srv, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AMANFLIX_ADMIN_USER", srv.admin_username)
        patch.setenv("AMANFLIX_ADMIN_PASSWORD", srv.admin_password)
        argv = ["run", "--amanflix", "--base-url", srv.url, "--users", "10", "--duration", "8s"]
        argv += ["--spawn-rate", "100", "--workers", "2", "--focus-watch-history", "--bursts", "3"]
        argv += ["--hold-lock", srv.db_path, "--hold-lock-schedule", "1.5s/4s"]
        argv += ["--server-log", srv.server_log_path, "--report-dir", str(folder), "--quiet"]
        code = main(argv)
    (run_dir,) = [p for p in folder.iterdir() if p.is_dir()]
    data = json.loads((run_dir / "report.json").read_text())
    page_text = (run_dir / "report.html").read_text()
    return {"code": code, "dir": run_dir, "json": data, "page": Page(page_text), "text": page_text}


def number(text: str) -> float:
    return float(text.replace(",", "").rstrip("%").split()[0])


def test_the_run_found_lock_issues_so_every_section_has_something_to_show(run):
    lock = run["json"]["lock_issues"]
    assert run["code"] == 1 and lock["total"] > 0, "the held windows should have caused lock issues"
    assert len(run["json"]["held_windows"]) == 2 and run["json"]["server_log"]["followed"]


def test_no_table_is_empty_and_every_row_has_a_cell_per_column(run):
    tables = run["page"].tables
    assert len(tables) >= 15, sorted(tables)
    for name, table in tables.items():
        assert table["rows"], f"table {name} has a header and no rows"
        width = len(table["head"][0])
        assert all(len(row) == width for row in table["rows"]), name


def test_the_header_counts_equal_their_sections_and_the_json(run):
    page, data = run["page"], run["json"]
    total = data["lock_issues"]["total"]
    assert f"DATABASE LOCK ISSUES: {total} (" in page.texts["verdict"]
    assert page.texts["lock-total"].startswith(f"Database lock issues detected: {total:,} (")
    assert page.texts["answer"].startswith(f"Yes: {total:,} database lock issues found")
    assert number(page.cards["lock issues found"]) == total
    assert number(page.cards["requests"]) == data["totals"]["requests"]
    assert number(page.cards["error rate"]) == pytest.approx(data["totals"]["error_rate"] * 100, abs=0.005)
    assert number(page.cards["accounts left behind"]) == data["amanflix"]["cleanup"]["left_behind"]
    assert 'class="verdict fail"' in run["text"]


def test_loss_section_lists_each_lock_class_with_its_evidence_as_the_json(run):
    page, lock = run["page"], run["json"]["lock_issues"]
    classes = page.column("lock-classes", "class")
    assert classes == list(lock["by_class"])
    counts = [number(c) for c in page.column("lock-classes", "count")]
    assert counts == list(lock["by_class"].values())
    for cls, cell in zip(classes, page.column("lock-classes", "evidence")):
        assert cell == ", ".join(f"{lv} {n:,}" for lv, n in lock["evidence"][cls].items() if lv != "timing")
    integrity = page.tables["integrity"]["rows"][0]
    assert [number(c) for c in integrity] == [
        lock["integrity"]["lock_caused_losses"],
        lock["integrity"]["race_duplicates"],
    ]
    log = run["json"]["server_log"]
    assert page.texts["server-log-line"] == (
        f"server logged {log['events']:,} lock events; the tool accounted for {log['accounted']:,} of them"
    )


def test_the_diagnosis_names_the_causes_of_the_json_with_their_evidence(run):
    page, causes = run["page"], run["json"]["diagnosis"]
    assert causes, "held locks on an upstream sandbox should give a diagnosis"
    assert page.column("diagnosis", "cause") == [c["name"] for c in causes]
    assert page.column("diagnosis", "evidence") == [c["level"] for c in causes]


def test_when_section_one_time_axis_with_held_windows_at_their_seconds(run):
    page, data = run["page"], run["json"]
    assert page.svgs == 2  # the shared-axis timeline and the per-endpoint latency chart
    timeline_svg = page.texts["timeline"]
    assert (
        "seconds since the measured phase started" in timeline_svg
        and "lock held (--hold-lock)" in timeline_svg
    )
    windows = data["held_windows"]
    origin = json.loads(Path(data["meta"]["timeseries"]).read_text().splitlines()[0])["start_s"]
    starts = [number(s) for s in page.column("held-windows", "s since start")]
    assert starts == [pytest.approx(w["start_s"] - origin, abs=0.06) for w in windows]
    found = page.column("held-windows", "lock classes found")
    assert found == [", ".join(f"{c} {n:,}" for c, n in w["lock_classes"].items()) or "-" for w in windows]
    assert len(page.tables["lock-timeline"]["rows"]) == len(data["lock_issues"]["timeline"])
    # --bursts 3 over 8 s: the bursts the run scheduled, from the report, drawn on the same axis
    assert data["amanflix"]["bursts_s"] == [3.0, 6.0]
    assert "burst (same title, many users)" in timeline_svg


def test_the_last_interval_is_drawn_over_its_own_seconds_not_as_a_collapse(run):
    report = from_plain(Report, run["json"])
    rows = read_timeseries(report.meta.timeseries)
    timeline = build_timeline(report, rows)
    assert timeline is not None and timeline.phase_s == report.totals.duration_s
    last = timeline.spans[-1]
    assert last.start_s + last.width_s <= timeline.phase_s + 1e-6  # nothing drawn after the stop
    # every drawn interval's rate is its requests over the seconds it really lasted inside the phase
    assert all(s.row["rps"] == pytest.approx(s.row["requests"] / s.width_s, rel=0.01) for s in timeline.spans)
    assert sum(s.row["requests"] for s in timeline.spans) <= report.totals.requests


def test_where_section_endpoints_errors_and_users_as_the_json(run):
    page, data = run["page"], run["json"]
    assert page.column("endpoints", "endpoint") == [e["name"] for e in data["endpoints"]]
    assert [number(n) for n in page.column("endpoints", "requests")] == [
        e["requests"] for e in data["endpoints"]
    ]
    assert [number(n) for n in page.column("errors", "count")] == [e["count"] for e in data["errors"]]
    assert page.column("lock-endpoints", "endpoint") == list(data["lock_issues"]["endpoints"])
    failing = [u for u in data["users"] if u["failures"]]
    assert len(page.tables["users"]["rows"]) == len(failing)


def test_speed_section_totals_as_the_json(run):
    page, totals = run["page"], run["json"]["totals"]
    figures = dict(page.tables["totals"]["rows"])
    assert figures["requests"] == f"{totals['requests']:,}"
    assert figures["throughput"] == f"{totals['throughput_rps']:,.1f} req/s"
    assert figures["error rate"] == f"{totals['error_rate']:.2%} ({totals['failures']:,} failed)"
    assert "no per-endpoint histogram" in run["text"] and page.texts["ladder"]


def test_trust_section_health_accounts_setup_and_teardown_as_the_json(run):
    page, data = run["page"], run["json"]
    assert len(page.tables["health"]["rows"]) == len(data["health"]["workers"])
    accounts = dict(page.tables["accounts"]["rows"])
    cleanup = data["amanflix"]["cleanup"]
    assert [number(accounts[k]) for k in ("created", "deleted", "left behind")] == [
        cleanup["created"],
        cleanup["deleted"],
        cleanup["left_behind"],
    ]
    assert page.texts["accounts-left"] == "none: every account was removed"
    for phase in ("setup", "teardown"):
        names = page.column(phase, "endpoint")
        assert names == [e["name"] for e in data[phase]["endpoints"]] and names


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (/usr/bin/chromium)"
)
def test_the_page_renders_in_a_headless_browser_at_1400_px(run, tmp_path):
    shot = tmp_path / "page.png"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    command += [f"--screenshot={shot}", "--window-size=1400,3000", (run["dir"] / "report.html").as_uri()]
    subprocess.run(command, capture_output=True, timeout=90, check=False, cwd=tmp_path)
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(header[16:20], "big") == 1400 and shot.stat().st_size > 50_000
