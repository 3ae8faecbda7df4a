"""Whatever ends a run, the report's accounts equal the server's, and no process outlives the coordinator."""

import os
import re
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from helpers import read_report, start_cli, worker_pids

from amanflix_stress.amanflix.api import AdminApi, AmanflixApi
from amanflix_stress.cli import main
from amanflix_stress.engine.client import HttpClient
from amanflix_stress.sandbox import SandboxConfig, start_sandbox

pytestmark = pytest.mark.slow
FAST_HASH = 1000
USERS = 6
GONE_WITHIN_S = 10.0  # how long orphans may take to notice their coordinator died (they poll every 0.5 s)


@pytest.fixture
def sandbox():
    with start_sandbox(SandboxConfig(mode="upstream", hash_iterations=FAST_HASH)) as srv:
        yield srv


def start_run(srv, report: Path, duration="60s", workers="2"):
    """The CLI in its own process group, as a shell job, cron or systemd starts it."""
    return start_cli(
        "run",
        "--amanflix",
        "--base-url",
        srv.url,
        "--users",
        str(USERS),
        "--duration",
        duration,
        "--workers",
        workers,
        "--spawn-rate",
        "100",
        "--report-json",
        str(report),
        "--quiet",
        start_new_session=True,
    )


def wait_for(condition, timeout_s: float = 60.0, what: str = "") -> None:
    """Poll `condition` until it holds (bounded); fails the test with `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.05)


def wait_until_measuring(srv) -> None:
    """Every user and the catalog reader registered: the measured phase is on."""
    wait_for(lambda: srv.truth()["users_registered"] >= USERS + 1, what="registration")


def finish(proc, timeout_s: float = 90.0) -> str:
    try:
        _out, err = proc.communicate(timeout=timeout_s)
    finally:
        proc.kill()
    return err


def assert_clean_exit(err: str) -> None:
    assert "Traceback" not in err, err
    assert err.count("\n") <= 2, err  # a line for the forced stop, a line for the interrupt at most


def assert_accounts_match_the_server(cleanup: dict, truth: dict) -> None:
    """created = every account the server registered (catalog reader included), all removed."""
    assert cleanup["created"] == truth["users_registered"] == USERS + 1, (cleanup, truth)
    assert cleanup["deleted"] == cleanup["created"] and cleanup["left_behind"] == 0, cleanup
    assert truth["users_in_db"] == 0 and "not_removed" not in cleanup, (cleanup, truth)


def test_sigterm_to_the_process_group_mid_run_removes_every_account(tmp_path, sandbox):
    report = tmp_path / "r.json"
    proc = start_run(sandbox, report)
    wait_until_measuring(sandbox)
    os.killpg(proc.pid, signal.SIGTERM)  # what `timeout`, systemd and docker stop do
    err = finish(proc)
    truth = sandbox.truth()
    assert proc.returncode == 130, err
    assert_clean_exit(err)
    data = read_report(report)
    assert data["meta"]["stop_reason"] == "terminated"
    assert [w["status"] for w in data["workers"]] == ["done", "done"]  # no worker died of the signal
    cleanup = data["amanflix"]["cleanup"]
    assert_accounts_match_the_server(cleanup, truth)
    assert "self-delete" in cleanup["method"]
    # what the accounts held when they deleted themselves is what the server kept (upstream: no cascade)
    assert cleanup["rows_left_behind"] == truth["orphan_my_list_rows"] + titles(truth), (cleanup, truth)


def titles(truth: dict) -> int:
    """Watch-history rows left, minus the duplicates a listing groups into one title."""
    return truth["orphan_watch_history_rows"] - truth["duplicate_watch_history_rows"]


def stderr_line(proc, timeout_s: float = 30.0) -> str:
    """The next line the CLI writes to stderr, read on a thread so a silent CLI fails the test in time."""
    line: list[str] = []
    got = threading.Event()

    def read():
        line.append(proc.stderr.readline())
        got.set()

    threading.Thread(target=read, daemon=True).start()
    assert got.wait(timeout_s), "no line on stderr"
    return line[0] if line[0].strip() else stderr_line(proc, timeout_s)


def test_a_second_sigint_during_teardown_still_reports_exactly_what_is_left(tmp_path, sandbox):
    report = tmp_path / "r.json"
    proc = start_run(sandbox, report)
    wait_until_measuring(sandbox)
    # an exclusive lock on the database: the users' teardown requests cannot finish while it is held
    holder = sqlite3.connect(sandbox.db_path, isolation_level=None, timeout=10)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        assert "stopping" in stderr_line(proc)  # handled (two signals at once would count as one) ...
        os.killpg(proc.pid, signal.SIGINT)  # ... so this one lands while the workers are stuck stopping
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = finish(proc)
    truth = sandbox.truth()
    assert proc.returncode == 130, err
    assert_clean_exit(err)
    data = read_report(report)
    assert data["meta"]["stop_reason"] == "interrupted"
    assert_accounts_match_the_server(data["amanflix"]["cleanup"], truth)


@pytest.mark.parametrize("admin", [False, True], ids=["self-delete", "admin"])
def test_a_worker_killed_with_sigkill_leaves_no_account(tmp_path, sandbox, admin_env, admin):
    if admin:
        admin_env(sandbox)
    report = tmp_path / "r.json"
    proc = start_run(sandbox, report, duration="4s")
    wait_until_measuring(sandbox)
    victim = worker_pids(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=200)
    truth = sandbox.truth()
    assert proc.returncode == 1, err  # a worker lost
    assert "Traceback" not in err, err
    data = read_report(report)
    assert [w["status"] for w in data["workers"]].count("died") == 1
    cleanup = data["amanflix"]["cleanup"]
    assert_accounts_match_the_server(cleanup, truth)
    assert ("admin" if admin else "self-delete") in cleanup["method"]
    if admin:
        assert truth["orphan_watch_history_rows"] == truth["orphan_my_list_rows"] == 0
    assert f"ACCOUNTS: created {USERS + 1}, deleted {USERS + 1}, left behind 0" in out


def test_an_account_cleanup_cannot_remove_is_named_with_the_reason(tmp_path, sandbox):
    """Cleanup abandoned: each account nobody checked is named, and the count says they may be left."""
    report = tmp_path / "r.json"
    proc = start_run(sandbox, report)
    wait_until_measuring(sandbox)
    os.killpg(proc.pid, signal.SIGINT)
    assert "stopping" in stderr_line(proc)
    os.killpg(proc.pid, signal.SIGINT)  # force the workers down ...
    assert "stopping the workers now" in stderr_line(proc)
    os.killpg(proc.pid, signal.SIGINT)  # ... and abandon the cleanup
    err = finish(proc)
    truth = sandbox.truth()
    assert proc.returncode == 130 and "Traceback" not in err, err
    cleanup = read_report(report)["amanflix"]["cleanup"]
    named = {a["name"] for a in cleanup.get("not_removed", ())}
    # the accounts still on the server are exactly those named (checked and left, or not checked)
    assert set(usernames(sandbox)) <= named, (cleanup, truth)
    assert cleanup["created"] - cleanup["deleted"] == cleanup["left_behind"]
    assert cleanup["left_behind"] + (cleanup.get("unchecked") or 0) == len(named)
    assert all(a["reason"] for a in cleanup.get("not_removed", ()))


def usernames(srv) -> list[str]:
    admin = AdminApi(HttpClient(srv.url, -1, lambda sample: None, timeout_s=10, connect_timeout_s=2))
    assert admin.login(srv.admin_username, srv.admin_password)
    return [u["username"] for u in admin.users()]


def children(parent_pid: int) -> dict[int, str]:
    """pid -> command line of each live process whose parent is `parent_pid` (workers, resource tracker)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent_pid:
                found[int(entry.name)] = cmdline
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that may never reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_9_of_the_coordinator_leaves_no_process_and_cleanup_removes_its_accounts(
    tmp_path, sandbox, admin_env, capsys
):
    report = tmp_path / "r.json"
    proc = start_run(sandbox, report)
    wait_until_measuring(sandbox)
    left = children(proc.pid)
    assert sum("spawn_main" in c for c in left.values()) == 2
    assert any("resource_tracker" in c for c in left.values()), left
    proc.kill()
    proc.wait(timeout=10)
    wait_for(lambda: not any(alive(pid) for pid in left), GONE_WITHIN_S, f"orphans {left}")
    # the run's accounts stay: the cleanup command removes them, by the run id in their names
    names = usernames(sandbox)
    run_id = re.fullmatch(r"amfx([0-9a-f]{8})cat", next(n for n in names if n.endswith("cat"))).group(1)
    other_run = register(sandbox, "amfx0badcafeu3")
    person = register(sandbox, "amfxmary")  # a person's account that merely starts like ours
    admin_env(sandbox)
    assert main(["cleanup", "--base-url", sandbox.url, "--run-id", run_id]) == 0
    out = capsys.readouterr().out
    assert sorted(usernames(sandbox)) == sorted([other_run, person])
    assert out.count("removed amfx") == USERS + 1 and f"removed {USERS + 1}, left 0" in out
    assert main(["cleanup", "--base-url", sandbox.url, "--all-runs"]) == 0
    assert usernames(sandbox) == [person]
    assert "removed amfx0badcafeu3" in capsys.readouterr().out


def register(srv, name: str) -> str:
    api = AmanflixApi(HttpClient(srv.url, -1, lambda sample: None, timeout_s=10, connect_timeout_s=2))
    assert api.register(name, "pw-Secret1", f"{name}@example.test").status == 200
    return name


def test_cleanup_without_admin_credentials_is_one_line_and_exit_2(sandbox, monkeypatch, capsys):
    monkeypatch.delenv("AMANFLIX_ADMIN_USER", raising=False)
    monkeypatch.delenv("AMANFLIX_ADMIN_PASSWORD", raising=False)
    assert main(["cleanup", "--base-url", sandbox.url, "--all-runs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "admin credentials" in err
    assert main(["cleanup", "--base-url", sandbox.url, "--run-id", "../x"]) == 2
