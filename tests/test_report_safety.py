"""Reports that cannot be written: refused before the run, written atomically, a late failure is exit 8."""

import errno
import json
import os
import subprocess
import threading
import xml.etree.ElementTree as ET

import pytest
from helpers import read_report, start_cli

from amanflix_stress.cli import main
from amanflix_stress.errors import EXIT_REPORT_WRITE, EXIT_USAGE
from amanflix_stress.output.files import write_atomic
from amanflix_stress.output.rundir import run_folders
from amanflix_stress.output.timeseries import TimeSeriesWriter
from amanflix_stress.sandbox import SandboxConfig, start_sandbox

TMPFS_BYTES = 512 * 1024  # room for the pre-run probe (64 KiB) and a short run's files, then filled


@pytest.fixture
def mount(tmp_path):
    """mount("name", ro=False): a real tmpfs of TMPFS_BYTES, unmounted at teardown. As root, permission bits
    stop nothing, so a read-only or full destination has to be a real file system."""
    mounted = []

    def make(name: str, ro: bool = False):
        point = tmp_path / name
        point.mkdir()
        options = f"size={TMPFS_BYTES}" + (",ro" if ro else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True
        )
        if done.returncode != 0:
            point.rmdir()
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip() or done.returncode}")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=True)


def fill(folder) -> None:
    """Write a filler file until the file system is full (bounded by its size)."""
    chunk = bytes(4096)
    with open(folder / "filler", "wb", buffering=0) as out:
        for _ in range(TMPFS_BYTES // len(chunk) + 8):
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return
    raise AssertionError(f"{folder} never filled up")


def smoke(server, *flags):
    return ["run", "--profile", "smoke", "--base-url", server.url, "--users", "2", "--duration", "1s", *flags]


def one_error_line(err: str) -> str:
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("amanflix-stress: error: ")
    return err


def test_a_read_only_report_dir_is_refused_before_any_request(mount, server, capsys):
    read_only = mount("ro", ro=True)
    assert main(smoke(server, "--report-dir", str(read_only))) == EXIT_USAGE
    err = one_error_line(capsys.readouterr().err)
    assert f"--report-dir {read_only}: cannot write there (Read-only file system)" in err
    assert server.total() == 0 and os.listdir(read_only) == []


def test_a_full_disk_before_the_run_is_refused_and_leaves_no_folder(mount, server, capsys):
    full = mount("full")
    fill(full)
    assert main(smoke(server, "--report-dir", str(full / "soak"))) == EXIT_USAGE
    err = one_error_line(capsys.readouterr().err)
    assert str(full / "soak") in err and "No space left on device" in err
    assert server.total() == 0 and run_folders(full / "soak") == []


@pytest.mark.parametrize("where", ["--report-json", "--junit", "time series", "--report-dir"])
def test_a_directory_or_file_in_the_way_is_refused_before_any_request(where, tmp_path, server, capsys):
    in_the_way = tmp_path / "taken"
    flags = ["--report-json", str(tmp_path / "r.json")]
    if where == "--report-dir":
        in_the_way.write_text("a file where the report folder goes\n")
        flags = ["--report-dir", str(in_the_way)]
    elif where == "time series":
        in_the_way = tmp_path / "r.timeseries.jsonl"
        in_the_way.mkdir()
    else:
        in_the_way.mkdir()
        flags = [where, str(in_the_way)] + (flags if where == "--junit" else [])
    assert main(smoke(server, *flags)) == EXIT_USAGE
    err = one_error_line(capsys.readouterr().err)
    why = (
        "cannot create it (File exists)" if where == "--report-dir" else "cannot write there (Is a directory)"
    )
    assert f"{in_the_way}: {why}" in err
    assert server.total() == 0 and not (tmp_path / "r.json").exists()


def test_a_disk_that_fills_during_the_run_costs_the_files_not_the_run_or_the_other_files(
    mount, server, tmp_path
):
    full = mount("full")
    junit = tmp_path / "elsewhere" / "junit.xml"
    cli = start_cli(*smoke(server, "--report-dir", str(full), "--junit", str(junit), "--duration", "3s"))
    try:
        assert server.first_load_request.wait(60)
        fill(full)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == EXIT_REPORT_WRITE, err
    warning, error = err.splitlines()
    assert warning.startswith("amanflix-stress: warning: time series ") and "No space left" in warning
    (folder,) = run_folders(full)
    unwritten = [folder / "report.json", folder / "summary.txt", folder / "report.html"]
    assert error == (
        "amanflix-stress: error: could not write "
        + "; ".join(f"{path} (No space left on device)" for path in unwritten)
        + ": the summary is on stdout"
    )
    assert not any(path.exists() for path in unwritten)  # nothing half written, no temp file left
    assert sorted(p.name for p in folder.iterdir()) == [".amanflix-stress-run", "report.timeseries.jsonl"]
    for line in (folder / "report.timeseries.jsonl").read_text().splitlines():
        json.loads(line)  # only whole lines
    assert "ENDPOINTS" in out and out.rstrip().splitlines()[-1].startswith("PASS")
    assert ET.parse(junit).getroot().tag == "testsuites" and f"junit: {junit}" in out


@pytest.mark.slow
def test_accounts_are_cleaned_up_before_a_report_that_cannot_be_written(mount, tmp_path, monkeypatch):
    full = mount("full")
    with start_sandbox(SandboxConfig(mode="fixed", hash_iterations=1000)) as srv:
        monkeypatch.setenv("AMANFLIX_ADMIN_USER", srv.admin_username)
        monkeypatch.setenv("AMANFLIX_ADMIN_PASSWORD", srv.admin_password)
        cli = start_cli(
            "run", "--amanflix", "--base-url", srv.url, "--users", "4", "--duration", "3s",
            "--workers", "1", "--report-json", str(full / "report.json"),
        )  # fmt: skip
        try:
            assert wait_for(lambda: srv.truth()["users_registered"] >= 4)
            fill(full)
            out, err = cli.communicate(timeout=90)
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.communicate()
        truth = srv.truth()
    assert cli.returncode == EXIT_REPORT_WRITE, err
    assert err.splitlines()[-1] == (
        f"amanflix-stress: error: could not write {full / 'report.json'} (No space left on device): "
        "the summary is on stdout"
    )
    assert "Traceback" not in err and not (full / "report.json").exists()
    assert truth["users_in_db"] == 0 and "left behind 0" in out


def wait_for(condition, timeout_s: float = 60.0) -> bool:
    """Poll a condition on an event (never a bare sleep), bounded by timeout_s."""
    done, tick = threading.Event(), threading.Event()
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            done.set()
            break
        tick.wait(0.05)
    return done.is_set()


def test_a_failed_write_leaves_the_old_file_whole_and_no_temp_file(mount):
    full = mount("full")
    page = full / "report.html"
    write_atomic(str(page), "<html>the previous report</html>\n")
    fill(full)
    with pytest.raises(OSError) as failed:
        write_atomic(str(page), "x" * TMPFS_BYTES)
    assert failed.value.errno == errno.ENOSPC
    assert page.read_text() == "<html>the previous report</html>\n"
    assert sorted(p.name for p in full.iterdir()) == ["filler", "report.html"]


def test_the_time_series_skips_rows_it_cannot_write_with_one_warning(mount):
    full = mount("full")
    warnings: list[str] = []
    writer = TimeSeriesWriter(str(full / "r.timeseries.jsonl"), warnings.append)
    writer({"interval": 1})
    fill(full)
    for interval in range(2, 6):
        writer({"interval": interval, "pad": "x" * 5000})
    (full / "filler").unlink()
    writer({"interval": 6})
    rows = [json.loads(line) for line in (full / "r.timeseries.jsonl").read_text().splitlines()]
    assert rows == [{"interval": 1}, {"interval": 6}] and writer.rows_lost == 4
    assert len(warnings) == 1 and "No space left on device" in warnings[0]


def test_a_report_written_atomically_is_readable_like_any_file(tmp_path, server):
    mask = os.umask(0o022)  # what a cron job usually runs with
    try:
        assert main(smoke(server, "--report-json", str(tmp_path / "r.json"))) == 0
    finally:
        os.umask(mask)
    assert read_report(tmp_path / "r.json")["meta"]["timeseries"] == str(tmp_path / "r.timeseries.jsonl")
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644  # not the temp file's 0600
    assert sorted(os.listdir(tmp_path)) == ["r.json", "r.timeseries.jsonl"]
