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
