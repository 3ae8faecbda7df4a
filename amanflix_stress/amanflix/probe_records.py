"""The probe's records: a Step per request, a Finding per scenario, the causes diagnosed, the probe."""

from __future__ import annotations

from dataclasses import dataclass, field

from amanflix_stress.amanflix.records import Cause  # one record for the probe's and the run's causes

REPRODUCED, NOT_REPRODUCED, SKIPPED = "reproduced", "not reproduced", "skipped"
# evidence levels, strongest first: a read-back showed it / the server's answer or log said it / only timing
VERIFIED, SERVER_SAID, TIMING = "verified", "server-said", "timing"
LEVELS = (VERIFIED, SERVER_SAID, TIMING)


@dataclass(frozen=True)
class Step:
    """One request of a scenario as evidence: what was sent, what came back (masked), and when."""

    request: str  # e.g. "POST /api/watch-history/update {content_id: 603, watch_timestamp: 240.0}"
    status: int  # 0: no answer (excerpt says why)
    excerpt: str  # the answer, shortened, tokens and passwords masked
    seconds: float
    during_hold: str = ""  # "reserved" / "exclusive" when a lock was held while it was sent


@dataclass(frozen=True)
class Observation:
    """One fact a scenario established that points to a cause, with how strongly it was established."""

    cause: str  # a key of diagnosis.CAUSES
    level: str  # VERIFIED, SERVER_SAID or TIMING
    text: str


@dataclass(frozen=True)
class Finding:
    """A scenario's outcome: the one line, the evidence below it, and what it says about causes."""

    scenario: str
    outcome: str  # REPRODUCED, NOT_REPRODUCED or SKIPPED
    summary: str  # the rest of the line: why
    title: str = ""  # the content the scenario used, e.g. "movie 603"
    steps: tuple[Step, ...] = ()
    readback: str = ""
    held_s: float | None = None  # how long the lock was held, when one was
    server_log: tuple[str, ...] = ()
    observations: tuple[Observation, ...] = ()


@dataclass(frozen=True)
class ProbeResult:
    """Everything `probe` found: printed on the console and written as JSON."""

    base_url: str
    db: str | None
    busy_timeout_s: float
    findings: tuple[Finding, ...]
    diagnosis: tuple[Cause, ...]
    cleanup: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def reproduced(self) -> int:
        return sum(1 for f in self.findings if f.outcome == REPRODUCED)
