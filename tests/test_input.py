"""Bad input is refused before anything starts: one line naming the flag, exit 2, no traceback, no report."""

import pytest

from amanflix_stress import cli
from amanflix_stress.units import parse_duration_s

BASE = ["run", "--base-url", "http://127.0.0.1:9", "--quiet"]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--timeout", "nan"], "--timeout"),
        (["--timeout", "-1"], "--timeout"),
        (["--rate", "nan"], "--rate"),
        (["--rate", "inf"], "--rate"),
        (["--spawn-rate", "nan"], "--spawn-rate"),
        (["--bursts", "nan"], "--bursts"),
        (["--duration", "60"], "--duration"),
        (["--duration", "ten"], "--duration"),
    ],
)
def test_a_bad_number_is_one_line_naming_the_flag(flags, named, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main([*BASE, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "reports").exists()  # refused before a run folder or report was made


def test_a_bare_number_of_minutes_or_hours_is_refused_with_both_readings():
    with pytest.raises(ValueError, match=r"say 60m or 3600s"):
        parse_duration_s("60")
    with pytest.raises(ValueError, match=r"no unit"):
        parse_duration_s(10)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("1h30m", 5400), ("250ms", 0.25)])
def test_durations_with_units(text, seconds):
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("content", [None, "not json", '{"schema": "something else"}'])
def test_a_bad_baseline_is_refused_before_any_load(content, tmp_path, server, capsys):
    baseline = tmp_path / "old.json"
    if content is not None:
        baseline.write_text(content)
    argv = ["run", "--base-url", server.url, "--users", "1", "--duration", "30s", "--quiet"]
    code = cli.main([*argv, "--baseline", str(baseline), "--report-json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--baseline" in err[0], err
    assert server.total() == 0  # not one request was sent: refused before the load, not after it
