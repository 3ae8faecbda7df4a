"""Lifecycle: start/stop, truth file, reopening a database, the child process and the foreground runner."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from amanflix_stress.sandbox import (
    SandboxConfig,
    SandboxLaunchError,
    launch_sandbox_process,
    run_foreground,
    start_sandbox,
)
from amanflix_stress.sandbox.server import READY_PREFIX

from .conftest import FAST_HASH, GENERIC_500_BODY, Api, server_log

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_stop_is_idempotent_and_writes_the_truth_file(tmp_path):
    srv = start_sandbox(SandboxConfig(db_path=str(tmp_path / "a.db"), hash_iterations=FAST_HASH))
    assert srv.url.startswith("http://127.0.0.1:") and srv.truth_path == str(tmp_path / "a.db.truth.json")
    Api(srv).register()
    srv.stop()
    srv.stop()
    assert json.loads(Path(srv.truth_path).read_text())["users_registered"] == 1
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.url + "/api/search", timeout=2)


def test_default_db_is_a_temp_folder_removed_at_stop_and_truth_path_is_configurable(tmp_path):
    target = str(tmp_path / "truth.json")
    with start_sandbox(SandboxConfig(truth_path=target, hash_iterations=FAST_HASH)) as srv:
        assert os.path.exists(srv.db_path) and os.path.exists(srv.server_log_path)
        assert os.path.dirname(srv.server_log_path) == os.path.dirname(srv.db_path)
    assert not os.path.exists(os.path.dirname(srv.db_path))
    assert json.loads(Path(target).read_text())["mode"] == "upstream"


def test_a_named_db_folder_is_kept_with_its_log(tmp_path):
    with start_sandbox(SandboxConfig(db_path=str(tmp_path / "k.db"), hash_iterations=FAST_HASH)) as srv:
        assert srv.server_log_path == str(tmp_path / "amanflix.log")
    assert sorted(os.listdir(tmp_path)) == ["amanflix.log", "k.db", "k.db.truth.json"]


@pytest.mark.slow
def test_child_with_a_temp_db_removes_its_folder(tmp_path):
    child = launch_sandbox_process(SandboxConfig(hash_iterations=FAST_HASH, debug=False))
    with child:
        folder = os.path.dirname(child.db_path)
        assert child.debug is False and os.path.dirname(child.server_log_path) == folder
        assert Api(child).post("/api/auth/login", json={}).content == GENERIC_500_BODY
        assert "ERROR in app: Exception on /api/auth/login [POST]" in server_log(child)
    assert child.stop() == 0 and not os.path.exists(folder)


def test_reopening_a_database_keeps_data_and_does_not_reseed(tmp_path):
    db = str(tmp_path / "keep.db")
    with start_sandbox(SandboxConfig(db_path=db, hash_iterations=FAST_HASH)) as srv:
        name, _ = Api(srv).register(password="pw")
        first_movies = Api(srv).get("/api/search?max_results=100").json()
    with start_sandbox(SandboxConfig(db_path=db, hash_iterations=FAST_HASH, admin_password="given")) as srv:
        api = Api(srv)
        assert api.post("/api/auth/login", data={"username": name, "password": "pw"}).status_code == 200
        assert api.get("/api/search?max_results=100").json() == first_movies
        assert srv.admin_password == "given" and api.admin_token()


def test_config_is_validated():
    with pytest.raises(ValueError):
        SandboxConfig(mode="chaos")


@pytest.mark.slow
def test_child_process_sandbox(tmp_path):
    cfg = SandboxConfig(mode="fixed", db_path=str(tmp_path / "child.db"), hash_iterations=FAST_HASH)
    child = launch_sandbox_process(cfg)
    with child:
        assert child.pid != os.getpid() and child.mode == "fixed"
        Api(child).register()
        assert child.truth()["users_registered"] == 1
    assert child.stop() == 0
    assert json.loads(Path(child.truth_path).read_text())["users_registered"] == 1


@pytest.mark.slow
def test_child_that_cannot_start_fails_clearly(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = SandboxConfig(
            db_path=str(tmp_path / "busy.db"), port=taken.getsockname()[1], hash_iterations=FAST_HASH
        )
        with pytest.raises(SandboxLaunchError, match="not ready"):
            launch_sandbox_process(cfg, timeout_s=15)


def test_run_foreground_stops_when_told(tmp_path, capsys):
    stop = threading.Event()
    stop.set()  # already asked to stop: start, print, stop, write the truth file
    argv = ["--db", str(tmp_path / "fg.db"), "--admin-password", "pw", "--hash-iterations", str(FAST_HASH)]
    assert run_foreground(argv, stop) == 0
    out = capsys.readouterr().out.splitlines()
    info = json.loads(out[0][len(READY_PREFIX) :])
    assert (
        out[0].startswith(READY_PREFIX)
        and info["admin_password"] == "pw"
        and info["url"].startswith("http://127.0.0.1:")
    )
    assert any("superadmin / pw" in line for line in out) and out[-1].startswith("Stopped. Ground truth:")
    assert info["debug"] is False  # the command's default: debug off, as the server is deployed
    assert f"  server log: {tmp_path / 'amanflix.log'}" in out
    assert os.path.exists(str(tmp_path / "fg.db.truth.json"))


def test_run_foreground_rejects_bad_arguments(capsys):
    assert run_foreground(["--busy-timeout-s", "-1"]) == 2
    with pytest.raises(SystemExit):
        run_foreground(["--mode", "chaos"])


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_module_entry_point_stops_cleanly_on_signals(tmp_path, signum):
    db = str(tmp_path / "sig.db")
    argv = [sys.executable, "-m", "amanflix_stress.sandbox", "--db", db, "--hash-iterations", str(FAST_HASH)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        info = json.loads(proc.stdout.readline()[len(READY_PREFIX) :])  # blocks until ready
        assert requests.get(info["url"] + "/api/search", timeout=5).status_code == 200
        proc.send_signal(signum)
        assert proc.wait(15) == 0
    finally:
        proc.kill()
        proc.stdout.close()
    assert os.path.exists(db + ".truth.json")


def sandbox_exit(argv: list[str]) -> int:
    """run_foreground's exit code, whether it returns it or argparse raises it."""
    try:
        return run_foreground([*argv, "--hash-iterations", str(FAST_HASH)], threading.Event())
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else -1


def one_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err and captured.err.count("\n") == 1
    assert captured.err.startswith("amanflix-stress sandbox: error: ")
    return captured.err


@pytest.mark.parametrize("port", ["-1", "65536", "70000"])
def test_a_port_outside_0_to_65535_is_one_line_and_exit_2(port, capsys):
    assert sandbox_exit(["--port", port]) == 2
    assert f"argument --port: must be 0 to 65535 (0 = any free port), got {port}" in one_line(capsys)
    with pytest.raises(ValueError, match="port must be 0 to 65535"):
        SandboxConfig(port=int(port))  # the API refuses it too: 70000 would listen on 70000 - 65536


@pytest.fixture
def read_only_db(tmp_path):
    """A SQLite database on a read-only tmpfs (as root, permission bits would not stop a write)."""
    point = tmp_path / "ro"
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip() or done.returncode}")
    try:
        with start_sandbox(SandboxConfig(db_path=str(point / "amanflix.db"), hash_iterations=FAST_HASH)):
            pass
        subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        yield point / "amanflix.db"
    finally:
        subprocess.run(["umount", "-l", str(point)], check=True)


def test_a_read_only_database_is_one_line_and_exit_2(read_only_db, capsys):
    assert sandbox_exit(["--db", str(read_only_db)]) == 2
    assert f"--db {read_only_db}: cannot open it read-write (Read-only file system)" in one_line(capsys)
    assert sandbox_exit(["--db", str(read_only_db.parent / "new.db")]) == 2
    assert "cannot create files in its folder (Read-only file system)" in one_line(capsys)


@pytest.mark.parametrize(
    "content, why",
    [
        (None, "is a directory"),
        (b"id,title\n1,Alien\n", "not a SQLite database"),
        (b"SQLite format 3\x00" + b"\xff" * 200, "cannot use it (file is not a database)"),
    ],
)
def test_a_db_that_is_not_a_sqlite_file_is_one_line_and_exit_2(content, why, tmp_path, capsys):
    db = tmp_path / "amanflix.db"
    db.mkdir() if content is None else db.write_bytes(content)
    assert sandbox_exit(["--db", str(db)]) == 2
    assert f"--db {db}: {why}" in one_line(capsys)
    assert content is None or db.read_bytes() == content  # refused, never overwritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["amanflix.db"]  # no log, no journal left


def test_a_db_in_a_missing_folder_or_a_log_path_that_is_a_folder_is_refused(tmp_path, capsys):
    assert sandbox_exit(["--db", str(tmp_path / "nowhere" / "a.db")]) == 2
    assert f"its folder {tmp_path / 'nowhere'} does not exist" in one_line(capsys)
    assert sandbox_exit(["--db", str(tmp_path / "a.db"), "--log-path", str(tmp_path)]) == 2
    assert f"--log-path {tmp_path}: is a directory" in one_line(capsys)


def test_a_child_sandbox_gets_an_admin_password_that_starts_with_a_dash(tmp_path):
    from amanflix_stress.sandbox.cli import build_parser
    from amanflix_stress.sandbox.server import cli_args

    cfg = SandboxConfig(db_path=str(tmp_path / "a.db"), admin_password="-Xy_9", log_path=str(tmp_path / "l"))
    assert build_parser().parse_args(cli_args(cfg)).admin_password == "-Xy_9"  # token_urlsafe: 1 in 64
