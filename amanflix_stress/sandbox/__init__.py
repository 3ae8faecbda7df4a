"""The sandbox Amanflix: an embedded target with real SQLite locks and ground truth."""

from .cli import run_foreground
from .config import SandboxConfig
from .server import ChildSandbox, SandboxLaunchError, SandboxServer, launch_sandbox_process, start_sandbox

__all__ = [
    "ChildSandbox",
    "SandboxConfig",
    "SandboxLaunchError",
    "SandboxServer",
    "launch_sandbox_process",
    "run_foreground",
    "start_sandbox",
]
