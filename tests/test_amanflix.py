"""The Amanflix users against the sandbox: what the tool detects matches what really happened."""

import signal
import sqlite3
import threading
import time

import pytest
from helpers import read_report, start_cli

from amanflix_stress.amanflix.api import AdminApi, AmanflixApi
from amanflix_stress.amanflix.journeys import phantom_check
from amanflix_stress.cli import main
from amanflix_stress.engine.client import HttpClient
from amanflix_stress.errors import SetupFailed
from amanflix_stress.sandbox import SandboxConfig, start_sandbox

pytestmark = pytest.mark.slow
FAST_HASH = 1000
WATCH_UPDATE = "POST /api/watch-history/update"


def run_against(srv, tmp_path, *flags, users="24", duration="6s"):
    report = tmp_path / "report.json"
    code = main(
        [
            "run",
            "--amanflix",
            "--base-url",
            srv.url,
            "--users",
            users,
            "--duration",
            duration,
            "--spawn-rate",
            "100",
            "--workers",
            "2",
            "--report-json",
            str(report),
            "--quiet",
            *flags,
        ]
    )
    return code, read_report(report)


def detected_watch_losses(report) -> int:
    """Watch-history writes lost, or refused with a 500 the tool could not prove was a loss (db_locked)."""
    groups = report["errors"] + report["teardown"]["errors"]
    return sum(
        n
        for g in groups
        if g["class"] in ("lost_update", "lost_insert", "lost_write", "db_locked")
        for name, n in g["endpoints"].items()
        if "watch-history" in name and (g["class"] != "db_locked" or name == WATCH_UPDATE)
    )


BURSTY = """# test: two-device accounts writing the same titles in bursts
[journeys]
dual_session_share = 0.5
[watch_history]
focus = true
burst_every_s = 1.5
burst_share = 0.8
[detection]
lock_wait_s = 0.3
"""


def test_upstream_burst_detection_matches_the_ground_truth(tmp_path, admin_env):
    profile = tmp_path / "bursty.toml"
    profile.write_text(BURSTY)
    with start_sandbox(SandboxConfig(mode="upstream", busy_timeout_s=0.3, hash_iterations=FAST_HASH)) as srv:
        admin_env(srv)
        # a second connection holds the write lock now and then, so the run surely meets locks
        _code, report = run_against(
            srv,
            tmp_path,
            "--profile",
            str(profile),
            "--hold-lock",
            srv.db_path,
            "--hold-lock-schedule",
            "1s/3s",
        )
        truth = srv.truth()
    # every lock the update met: rolled back by the commit helper (lost) or escaped as a 500 (refused)
    lost_truth = truth["lock_events_by_endpoint"].get(WATCH_UPDATE, 0)
    assert truth["lost_writes_by_endpoint"].get(WATCH_UPDATE, 0) > 0, "the sandbox should have lost writes"
    detected = detected_watch_losses(report)
    # every hidden loss is found (recall 1.0 here), and nothing is blamed that did not happen
    assert detected == lost_truth, (report["error_classes"], truth["lost_writes_by_endpoint"])
    duplicates = report["amanflix"]["counters"].get("duplicate_rows", 0)
    assert duplicates == truth["duplicate_watch_history_rows_created"], (duplicates, truth)
    assert report["lock_issues"]["detected"] is True
    assert "POST /api/watch-history/update" in report["lock_issues"]["endpoints"]


def test_fixed_mode_under_the_same_load_reports_no_lock_issues(tmp_path, admin_env, capsys):
    with start_sandbox(SandboxConfig(mode="fixed", busy_timeout_s=0.2, hash_iterations=FAST_HASH)) as srv:
        admin_env(srv)
        code, report = run_against(srv, tmp_path, "--focus-watch-history", "--bursts", "2")
        truth = srv.truth()
    assert truth["lost_writes"] == 0 and truth["duplicate_watch_history_rows_created"] == 0
    assert report["lock_issues"]["detected"] is False and report["lock_issues"]["total"] == 0
    assert report["lock_issues"]["verified"]["echoes_checked"] > 50
    assert code == 0
    assert "no lock issues detected; verified:" in capsys.readouterr().out


def test_every_held_lock_window_shows_up(tmp_path, admin_env):
    with start_sandbox(SandboxConfig(mode="upstream", busy_timeout_s=0.5, hash_iterations=FAST_HASH)) as srv:
        admin_env(srv)
        _code, report = run_against(
            srv,
            tmp_path,
            "--focus-watch-history",
            "--hold-lock",
            srv.db_path,
            "--hold-lock-schedule",
            "1.5s/4s",
            users="12",
            duration="9s",
        )
    held = report["hold_lock"]
    assert len(held["windows"]) == 2
    assert held["windows_detected"] == len(held["windows"])
    assert all(w["lock_issues_detected"] > 0 for w in held["windows"])


def test_hold_lock_refuses_a_file_that_is_not_sqlite(tmp_path, capsys):
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello")
    assert main(["run", "--amanflix", "--base-url", "http://127.0.0.1:9", "--hold-lock", str(not_a_db)]) == 2
    assert "is not a SQLite database" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["admin", "self-delete"])
def test_cleanup_leaves_zero_test_users(tmp_path, admin_env, mode):
    with start_sandbox(SandboxConfig(mode="fixed", hash_iterations=FAST_HASH)) as srv:
        if mode == "admin":
            admin_env(srv)
        _code, report = run_against(srv, tmp_path, users="6", duration="2s")
        truth = srv.truth()
    cleanup = report["amanflix"]["cleanup"]
    assert truth["users_in_db"] == 0
    assert cleanup["left_behind"] == 0 and cleanup["created"] == truth["users_registered"]
    assert mode.split("-")[0] in cleanup["method"]


def test_an_interrupted_run_still_cleans_up(tmp_path):
    with start_sandbox(SandboxConfig(mode="fixed", hash_iterations=FAST_HASH)) as srv:
        report = tmp_path / "r.json"
        proc = start_cli(
            "run",
            "--amanflix",
            "--base-url",
            srv.url,
            "--users",
            "4",
            "--duration",
            "60s",
            "--workers",
            "1",
            "--spawn-rate",
            "100",
            "--report-json",
            str(report),
        )
        try:
            wait_until_measuring(proc, srv)
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
        finally:
            proc.kill()
        truth = srv.truth()
    assert proc.returncode == 130
    assert truth["users_in_db"] == 0
    assert read_report(report)["amanflix"]["cleanup"]["left_behind"] == 0


def wait_until_measuring(proc, srv):
    """Block until the run's users are past registration (4 users + the catalog account)."""
    wait_until_registered(srv, 5)


def wait_until_registered(srv, accounts: int):
    """Block until the sandbox has registered this many accounts (polls its ground truth, bounded)."""
    done = threading.Event()
    deadline = time.monotonic() + 60

    def poll():
        while not done.is_set() and time.monotonic() < deadline:
            if srv.truth()["users_registered"] >= accounts:
                done.set()
                return
            done.wait(0.05)

    threading.Thread(target=poll, daemon=True).start()
    assert done.wait(60)


def test_validate_passes_on_a_sandbox_and_fails_on_an_empty_catalog(capsys, admin_env):
    with start_sandbox(SandboxConfig(mode="fixed", hash_iterations=FAST_HASH)) as srv:
        admin_env(srv)
        assert main(["validate", "--base-url", srv.url]) == 0
        truth = srv.truth()
    out = capsys.readouterr().out
    assert out.count("✓") == 7 and truth["users_in_db"] == 0 and truth["orphan_watch_history_rows"] == 0
    with start_sandbox(SandboxConfig(mode="fixed", catalog="empty", hash_iterations=FAST_HASH)) as srv:
        assert main(["validate", "--base-url", srv.url]) == 6
        truth = srv.truth()
    out = capsys.readouterr().out
    assert "✗ content: " in out and "empty catalog" in out
    assert truth["users_in_db"] == 0


def test_run_on_an_empty_catalog_is_one_clear_line(capsys):
    with start_sandbox(SandboxConfig(mode="fixed", catalog="empty", hash_iterations=FAST_HASH)) as srv:
        assert main(["run", "--amanflix", "--base-url", srv.url, "--duration", "2s", "--quiet"]) == 5
        truth = srv.truth()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "empty catalog" in err
    assert truth["users_in_db"] == 0  # the catalog account was removed again


def test_a_registration_under_a_lock_is_a_phantom(tmp_path):
    with start_sandbox(SandboxConfig(mode="upstream", busy_timeout_s=0.1, hash_iterations=FAST_HASH)) as srv:
        samples = []
        api = AmanflixApi(HttpClient(srv.url, 0, samples.append, timeout_s=10, connect_timeout_s=2))
        holder = sqlite3.connect(srv.db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            reply = api.register("ghost", "pw", "ghost@example.test", check=phantom_check)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    assert reply.status == 200 and samples[-1].error == "phantom_registration"


def make_user(srv, tmp_path, **journeys):
    """One AmanflixUser wired as a worker wires it, against a sandbox."""
    import random

    from amanflix_stress.amanflix.journeys import AmanflixUser
    from amanflix_stress.amanflix.run_hooks import prepare_run
    from amanflix_stress.cli import plan_from_profile
    from amanflix_stress.engine.user import UserContext
    from amanflix_stress.profile import defaults

    profile = defaults()
    profile["behaviour"]["kind"] = "amanflix"
    profile["target"]["base_url"] = srv.url
    profile["journeys"].update(journeys)
    plan = plan_from_profile(profile, str(tmp_path / "r.json"))
    samples = []
    ctx = UserContext(
        index=0,
        worker_id=0,
        run_id=plan.run_id,
        base_url=srv.url,
        settings=plan.settings,
        shared=prepare_run(plan),
        stop=threading.Event(),
        rng=random.Random(1),
        new_client=lambda: HttpClient(srv.url, 0, samples.append, timeout_s=10, connect_timeout_s=2),
    )
    return AmanflixUser(ctx), samples


def test_a_blacklisted_token_makes_the_user_log_in_again(tmp_path):
    with start_sandbox(SandboxConfig(mode="fixed", hash_iterations=FAST_HASH)) as srv:
        user, samples = make_user(
            srv,
            tmp_path,
            read_share=0.0,
            watch_history_share=1.0,
            mylist_share=0.0,
            profile_update_share=0.0,
            heartbeat_every_s=0.0,
            dual_session_share=0.0,
        )
        user.ctx.settings["think_time_s"] = [0.0, 0.0]
        assert user.setup()
        session = user.sessions[0]
        old_token = session.api.token
        session.api.logout()
        user.act(session, companion=False)  # the write is refused with 403 user_logged_out ...
        assert samples[-2].status == 403 and samples[-1].name == "POST /api/auth/login"
        assert user.counts["relogins"] == 1 and session.api.token != old_token
        user.act(session, companion=False)  # ... and the next one goes through on the new token
        assert samples[-1].name == WATCH_UPDATE and samples[-1].status == 200


def test_ctrl_c_during_registration_stops_promptly_and_cleans_up(tmp_path):
    # a slow password hash makes registration the long part of the run, as on the real server
    with start_sandbox(SandboxConfig(mode="fixed", hash_iterations=1_000_000)) as srv:
        report = tmp_path / "r.json"
        proc = start_cli(
            "run",
            "--base-url",
            srv.url,
            "--users",
            "40",
            "--duration",
            "60s",
            "--workers",
            "1",
            "--spawn-rate",
            "100",
            "--report-json",
            str(report),
        )
        try:
            wait_until_registered(srv, 3)
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
        finally:
            proc.kill()
        truth = srv.truth()
    data = read_report(report)
    assert proc.returncode == 130 and data["meta"]["stop_reason"] == "interrupted"
    assert truth["users_registered"] < 41  # it did not register everybody first
    assert truth["users_in_db"] == 0 and data["amanflix"]["cleanup"]["left_behind"] == 0


def test_an_admin_user_list_that_cannot_be_read_is_an_error_not_an_empty_list(server):
    # an empty list would let a cleanup count say "0 left behind" for accounts nobody could see
    admin = AdminApi(HttpClient(server.url, 0, lambda sample: None, timeout_s=5, connect_timeout_s=2))
    with pytest.raises(SetupFailed, match="GET /api/admin/user/list answered 200"):
        admin.users()  # the counting server answers {"ok": true}: not a list of users
