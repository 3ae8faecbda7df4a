"""`demo`: a sandbox child process, a run against it, and the ground truth beside what the tool saw."""

import tempfile

import pytest

from amanflix_stress import cli
from amanflix_stress.demo import run_demo

pytestmark = pytest.mark.slow


def test_the_demo_shows_the_ground_truth_beside_what_was_detected(capsys, tmp_path, monkeypatch):
    def shorter_run(argv):  # the demo's own flow, with a shorter run than the one-minute demo
        return cli.command_run(
            cli.build_parser().parse_args(
                [*argv, "--duration", "10s", "--users", "10", "--hold-lock-schedule", "6s/9s", "--quiet"]
            )
        )

    temp_root = tmp_path / "tmp"  # where the demo's sandbox database folder goes, to see it removed
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    assert run_demo(shorter_run, report_dir=str(tmp_path / "reports")) == 0
    out = capsys.readouterr().out
    assert list(temp_root.iterdir()) == []
    (report,) = (tmp_path / "reports").glob("demo-*.json")
    assert f"report and time series: {report}" in out
    assert "sandbox Amanflix (upstream mode, real SQLite, debug off)" in out
    table = out[out.index("GROUND TRUTH") :]
    rows = {line[:47].strip(): line[47:].split() for line in table.splitlines()[3:11]}
    truth, detected = rows["watch-history writes lost or refused"][:2]
    assert int(truth) > 0 and detected == truth  # the held lock made real losses, and all were found
    assert rows["test users left in the database"][:2] == ["0", "0"]
    assert "HELD LOCK WINDOWS" in out and "DATABASE LOCK ISSUES DETECTED" in out
    assert "the run's verdict was FAIL (exit 1), as expected" in out  # lock issues fail a run; not the demo
