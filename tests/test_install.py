"""An install without the [sandbox] extra: `demo` and `sandbox` say in one line how to add it, and exit 2."""

import subprocess
import sys

import pytest

from amanflix_stress.errors import EXIT_USAGE

HINT = "pip install 'amanflix-stress[sandbox]'"
CALL_TIMEOUT_S = 60


def run_cli_without(module: str, *argv: str) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter where importing `module` fails as if it were not installed."""
    code = (
        "import sys\n"
        f"sys.modules[{module!r}] = None  # `import {module}` now raises ModuleNotFoundError\n"
        "from amanflix_stress.cli import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=CALL_TIMEOUT_S
    )


@pytest.mark.parametrize(
    ("module", "command"),
    [("flask", "demo"), ("flask", "sandbox"), ("sqlalchemy", "demo"), ("requests", "sandbox")],
)
def test_demo_and_sandbox_without_the_extra_say_how_to_install_it(module, command):
    done = run_cli_without(module, command)
    assert done.returncode == EXIT_USAGE
    assert done.stderr.splitlines() == [
        f"amanflix-stress: error: the sandbox needs {module}, which is not installed: {HINT}"
    ]
    assert done.stdout == ""  # nothing started before the message


def test_the_rest_of_the_tool_works_without_the_extra():
    done = run_cli_without("flask", "profiles")
    assert done.returncode == 0 and "smoke" in done.stdout


def test_a_missing_module_of_our_own_is_a_bug_not_a_missing_extra():
    done = run_cli_without("amanflix_stress.sandbox.truth", "sandbox")
    assert done.returncode != EXIT_USAGE
    assert "Traceback" in done.stderr and HINT not in done.stderr
