"""Install check: a wheel of the checkout, installed in a fresh venv outside it, lists and runs profiles."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(path.stem for path in (CHECKOUT / "amanflix_stress" / "profiles").glob("*.toml"))
NOT_SHIPPED = (
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "reports",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)
SANDBOX_ONLY = ("flask", "werkzeug", "sqlalchemy", "requests")  # Requires-Dist only under the [sandbox] extra
EXTRA_HINT = "pip install 'amanflix-stress[sandbox]'"
PIP_QUIET = ["--quiet", "--disable-pip-version-check", "--no-input"]
RUN_DURATION = "3s"  # the smoke profile, shortened: enough for a few hundred requests
PIP_TIMEOUT_S = 180  # a cold pip cache downloads numpy, Flask and SQLAlchemy
COMMAND_TIMEOUT_S = 60
SANDBOX_READY_TIMEOUT_S = 30
SANDBOX_STOP_TIMEOUT_S = 15


class CheckFailed(Exception):
    """One step of the install check went wrong; the message says which and shows the evidence."""


def run(argv: list, cwd: Path, env: dict | None = None, timeout_s: float = COMMAND_TIMEOUT_S):
    """Run a command to completion; its output is kept for the failure message, never streamed."""
    try:
        done = subprocess.run(
            [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{Path(argv[0]).name} {argv[1]}: no answer in {timeout_s:.0f} s") from None
    return done


def expect(done: subprocess.CompletedProcess, code: int, what: str) -> str:
    if done.returncode != code:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise CheckFailed(f"{what}: exit {done.returncode}, expected {code}\n{tail}")
    return done.stdout


def build_wheel(work: Path) -> Path:
    """A clean copy of the checkout (no stale build/), built the way pip builds it for a user."""
    source = work / "source"
    shutil.copytree(CHECKOUT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SHIPPED))
    pip_wheel = [sys.executable, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "-w", work / "dist", source]
    expect(run(pip_wheel, work, timeout_s=PIP_TIMEOUT_S), 0, "pip wheel")
    shutil.rmtree(source)  # from here on nothing of the checkout is on disk in the work folder
    (wheel,) = (work / "dist").glob("amanflix_stress-*.whl")
    return wheel


def check_wheel(wheel: Path) -> None:
    """The profiles are inside, the tests are not, and the sandbox's web stack is an extra."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    missing = [name for name in SHIPPED if f"amanflix_stress/profiles/{name}.toml" not in names]
    if missing or not SHIPPED:
        raise CheckFailed(f"wheel lacks the profiles {missing or 'all'}")
    if any(name.startswith(("tests/", "bench/", "profiles/")) for name in names):
        raise CheckFailed("wheel ships tests/, bench/ or a top-level profiles/")
    hard = [
        line
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ") and line.split()[1].lower().startswith(SANDBOX_ONLY)
        if "extra ==" not in line
    ]
    if hard:
        raise CheckFailed(f"sandbox dependencies required by every install: {hard}")


def venv_env(work: Path) -> dict:
    """The environment of a user's shell: no PYTHONPATH, and the user profiles in a folder of our own."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["AMANFLIX_STRESS_PROFILES"] = str(work / "my-profiles")
    env["AMANFLIX_STRESS_STATE"] = str(work / "menu-state.json")
    return env


def pip_install(venv: Path, requirement: str, work: Path) -> None:
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", *PIP_QUIET]
    expect(
        run([*pip, requirement], work, timeout_s=PIP_TIMEOUT_S), 0, f"pip install {Path(requirement).name}"
    )


def check_import_location(venv: Path, work: Path, env: dict) -> None:
    probe = "import json, sys, amanflix_stress; print(json.dumps([amanflix_stress.__file__, sys.path]))"
    where, path = json.loads(expect(run([venv / "bin" / "python", "-c", probe], work, env), 0, "import"))
    if not Path(where).is_relative_to(venv):
        raise CheckFailed(f"amanflix_stress imported from {where}, not from the fresh venv")
    if any(entry and Path(entry).resolve().is_relative_to(CHECKOUT) for entry in path):
        raise CheckFailed(f"the checkout is on sys.path: {path}")


def check_commands_without_sandbox(tool: Path, work: Path, env: dict) -> None:
    """`profiles` lists the shipped and the user's profiles; `demo` and `sandbox` say how to add the extra."""
    (work / "my-profiles").mkdir()
    (work / "my-profiles" / "mine.toml").write_text("# my own profile\n[load]\nusers = 2\n")
    listing = expect(run([tool, "profiles"], work, env), 0, "amanflix-stress profiles")
    lines = listing.splitlines()
    absent = [name for name in [*SHIPPED, "mine"] if not any(line.startswith(f"{name} ") for line in lines)]
    if absent:
        raise CheckFailed(f"'amanflix-stress profiles' does not list {absent}:\n{listing}")
    if "--base-url" not in expect(run([tool, "validate", "--help"], work, env), 0, "validate --help"):
        raise CheckFailed("'amanflix-stress validate --help' does not mention --base-url")
    for command in ("demo", "sandbox"):
        done = run([tool, command], work, env)
        expect(done, 2, f"amanflix-stress {command} without the sandbox extra")
        if EXTRA_HINT not in done.stderr or len(done.stderr.splitlines()) != 1:
            raise CheckFailed(
                f"'{command}' without the extra should say {EXTRA_HINT!r} in one line:\n{done.stderr}"
            )


def start_sandbox(tool: Path, work: Path, env: dict) -> tuple[subprocess.Popen, str]:
    """The installed sandbox on 127.0.0.1 port 0; its first line has the URL (and a password: never shown)."""
    with open(work / "sandbox.log", "w") as log:
        argv = [tool, "sandbox", "--port", "0", "--db", work / "sandbox.db"]
        proc = subprocess.Popen(
            [str(a) for a in argv], cwd=work, env=env, stdout=subprocess.PIPE, stderr=log, text=True
        )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        first = lines.get(timeout=SANDBOX_READY_TIMEOUT_S)
    except queue.Empty:
        first = ""
    if not first.startswith("SANDBOX READY "):
        stop(proc)
        raise CheckFailed(f"the installed sandbox did not start in {SANDBOX_READY_TIMEOUT_S} s")
    return proc, json.loads(first.removeprefix("SANDBOX READY "))["url"]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(SANDBOX_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_profile_run(tool: Path, work: Path, env: dict) -> None:
    """`run --profile smoke` against the installed sandbox: exit 0 and a report with requests in it."""
    proc, url = start_sandbox(tool, work, env)
    try:
        report_path = work / "smoke.json"
        argv = [tool, "run", "--profile", "smoke", "--base-url", url, "--duration", RUN_DURATION]
        expect(run([*argv, "--report-json", report_path, "--quiet"], work, env), 0, "run --profile smoke")
    finally:
        stop(proc)
    requests = json.loads(report_path.read_text())["totals"]["requests"]
    if requests <= 0:
        raise CheckFailed("the smoke run sent no requests")


def check(work: Path) -> None:
    wheel = build_wheel(work)
    check_wheel(wheel)
    venv, env = work / "venv", venv_env(work)
    expect(run([sys.executable, "-m", "venv", "--without-pip", venv], work), 0, "python -m venv")
    pip_install(venv, str(wheel), work)
    check_import_location(venv, work, env)
    check_commands_without_sandbox(venv / "bin" / "amanflix-stress", work, env)
    pip_install(venv, f"{wheel}[sandbox]", work)
    check_profile_run(venv / "bin" / "amanflix-stress", work, env)


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="amanflix-install-") as folder:
        work = Path(folder).resolve()
        if work.is_relative_to(CHECKOUT):
            print(
                "install check: the temp folder is inside the checkout; set TMPDIR elsewhere", file=sys.stderr
            )
            return 1
        try:
            check(work)
        except CheckFailed as exc:
            print(f"install check FAILED: {exc}", file=sys.stderr)
            return 1
    took_s = time.monotonic() - started
    checked = "profiles, validate --help, the [sandbox] hint, a smoke run"
    print(f"install check: ok in {took_s:.0f} s, a wheel installed outside the checkout ({checked})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
