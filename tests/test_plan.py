"""The plan as frozen data: its shares, and admin credentials that stay in the coordinator."""

import dataclasses
import os
import pickle

import pytest

from amanflix_stress.cli import admin_for_run, build_parser, plan_from_profile, resolve_profile
from amanflix_stress.engine.plan import AdminCredentials, RunPlan, worker_shares

SECRET = "s3cret-Pw-never-saved"
ENV_NAMES = ("AMANFLIX_ADMIN_USER", "AMANFLIX_ADMIN_PASSWORD", "MY_ADMIN_PW")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def admin_plan(**fields) -> RunPlan:
    return RunPlan(base_url="http://127.0.0.1:9", admin=AdminCredentials("superadmin", SECRET), **fields)


def test_the_admin_password_is_masked_and_never_crosses_a_process():
    plan = admin_plan(users=5, workers=2)
    assert SECRET not in repr(plan) and SECRET not in repr(plan.admin) and "superadmin" in repr(plan.admin)
    copied = pickle.loads(pickle.dumps(plan))
    assert copied.admin is None and copied == plan  # everything else arrives as it was
    assert dataclasses.asdict(plan)["admin"] is None
    for share in worker_shares(plan, {"catalog": {}}):
        assert not hasattr(share, "admin") and SECRET.encode() not in pickle.dumps(share)


def test_the_plan_is_frozen_and_changed_by_replace():
    plan = admin_plan(workers=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.workers = 2
    fewer = dataclasses.replace(plan, workers=2)
    assert (fewer.workers, plan.workers) == (2, 4) and fewer.admin == plan.admin


def test_shares_spread_users_round_robin_with_their_start_offsets():
    plan = RunPlan(base_url="http://127.0.0.1:9", users=5, workers=2, spawn_rate=2.0, stages=((10.0, 5.0),))
    first, second = worker_shares(plan, {"k": 1})
    assert first.users == ((0, 0.0), (2, 1.0), (4, 2.0)) and second.users == ((1, 0.5), (3, 1.5))
    assert (first.worker_id, second.worker_id, first.workers) == (0, 1, 2)
    assert first.shared == {"k": 1} and first.open_model and first.run_id == plan.run_id


def run_args(*flags: str):
    return build_parser().parse_args(["run", "--amanflix", *flags])


def test_admin_flags_go_into_the_plan_and_not_into_the_environment(clean_env, tmp_path):
    args = run_args("--admin-user", "boss", "--admin-password", SECRET)
    plan = plan_from_profile(resolve_profile(args), str(tmp_path / "r.json"))
    assert admin_for_run(args, plan) == AdminCredentials("boss", SECRET)
    assert not any(name in os.environ for name in ENV_NAMES)


def test_each_admin_flag_falls_back_to_the_variable_the_profile_names(clean_env, monkeypatch, tmp_path):
    args = run_args("--admin-user", "boss")
    profile = resolve_profile(args)
    profile["accounts"]["admin_password_env"] = "MY_ADMIN_PW"
    plan = plan_from_profile(profile, str(tmp_path / "r.json"))
    assert admin_for_run(args, plan) is None  # a name without a password is no credentials
    monkeypatch.setenv("AMANFLIX_ADMIN_PASSWORD", "not-this-one")
    monkeypatch.setenv("MY_ADMIN_PW", SECRET)
    assert admin_for_run(args, plan) == AdminCredentials("boss", SECRET)
