"""SandboxConfig: the knobs chosen when a sandbox Amanflix starts."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("upstream", "strict", "fixed")
CATALOGS = ("default", "empty")
DEFAULT_HASH_ITERATIONS = (
    40_000  # PBKDF2-SHA256: ~15 ms per hash here; ~1_000_000 mimics upstream's ~0.4 s bcrypt
)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a sandbox needs to start; plain values only so it can cross a process boundary."""

    mode: str = "upstream"
    db_path: str | None = None
    port: int = 0
    busy_timeout_s: float = 5.0
    hash_iterations: int = DEFAULT_HASH_ITERATIONS
    catalog: str = "default"
    admin_password: str | None = None
    truth_path: str | None = None
    # False (default, like the `sandbox` command and the demo): Werkzeug's generic 500 page that names no
    # exception, as the server is deployed; True: the debugger page naming it (upstream's app.run).
    debug: bool = False
    log_path: str | None = None  # server log (default <db dir>/amanflix.log)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.catalog not in CATALOGS:
            raise ValueError(f"catalog must be one of {CATALOGS}, got {self.catalog!r}")
        if self.busy_timeout_s < 0 or self.hash_iterations < 1:
            raise ValueError("busy_timeout_s must be >= 0 and hash_iterations >= 1")
