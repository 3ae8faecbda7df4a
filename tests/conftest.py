"""Shared fixtures: the counting server, and a private temp folder that names each test leaving files."""

import os
import tempfile

import pytest
from loopback import CountingServer

TEMP_LEAKS: dict[str, list[str]] = {}  # test id -> what it left in the temp folder, for the summary


@pytest.fixture
def server():
    with CountingServer() as srv:
        yield srv


@pytest.fixture
def admin_env(monkeypatch):
    """Give a sandbox's admin to the run through the environment: its cleanup then removes the test users
    and their rows too, so a sandbox's ground truth counts the run's own alone."""

    def use(srv):
        monkeypatch.setenv("AMANFLIX_ADMIN_USER", srv.admin_username)
        monkeypatch.setenv("AMANFLIX_ADMIN_PASSWORD", srv.admin_password)

    return use


@pytest.fixture(scope="session", autouse=True)
def private_temp_folder(tmp_path_factory):
    """What the code under test puts in the temp folder (sandbox databases, Dask scratch, child processes'
    files) lands under pytest's own base folder, which pytest prunes, instead of littering /tmp."""
    folder = str(tmp_path_factory.mktemp("tempdir"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", folder)  # child processes: the CLI, spawned workers, the sandbox, Dask
        patch.setattr(tempfile, "tempdir", folder)  # this process: tempfile read TMPDIR once, at first use
        yield folder


@pytest.fixture(autouse=True)
def temp_leaks(request, private_temp_folder):
    """Note what a test left in the temp folder: a test cleans what it made (tmp_path does it for you)."""
    before = set(os.listdir(private_temp_folder))
    yield
    left = sorted(set(os.listdir(private_temp_folder)) - before)
    if left:
        TEMP_LEAKS[request.node.nodeid] = left


def pytest_terminal_summary(terminalreporter):
    if not TEMP_LEAKS:
        return
    terminalreporter.section("tests that left files in the temp folder (pytest prunes them; fix the test)")
    for nodeid, names in TEMP_LEAKS.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        terminalreporter.write_line(f"{nodeid}: {shown}")
