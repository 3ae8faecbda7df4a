"""The DIAGNOSIS: from the probe's observations to the causes they support, with cure and evidence."""

from __future__ import annotations

from amanflix_stress.amanflix.probe_records import LEVELS, Cause, Finding

# cause key -> (name, cure); the sandbox's `fixed` mode applies exactly these cures
CAUSES = {
    "commit_swallowed": (
        "the commit helper swallows the failed commit",
        "re-raise after the rollback and answer 503 (or 409), so the client knows and retries",
    ),
    "busy_timeout": (
        "no busy-timeout headroom / rollback journal",
        "PRAGMA journal_mode=WAL (readers never wait for a writer) and a busy timeout sized to the "
        "longest write",
    ),
    "check_then_insert": (
        "check-then-insert without a unique constraint",
        "a unique index on (user, content type, content id, season, episode) and an upsert "
        "(INSERT … ON CONFLICT DO UPDATE)",
    ),
    "self_delete_no_cascade": (
        "self-delete without cascade",
        "PRAGMA foreign_keys=ON with ON DELETE CASCADE on the user's rows (or delete them as the admin "
        "delete does)",
    ),
    "phantom_token": (
        "registration issues a token although its commit was rolled back",
        "issue the token only after the commit succeeded (and answer 503 when it did not)",
    ),
}


def diagnose(findings: tuple[Finding, ...]) -> tuple[Cause, ...]:
    """Each cause some observation supports, in CAUSES order; its level is its strongest observation's."""
    causes = []
    for key, (name, cure) in CAUSES.items():
        seen = [
            (o.level, f"{f.scenario}: {o.text}") for f in findings for o in f.observations if o.cause == key
        ]
        if not seen:
            continue
        level = min((level for level, _ in seen), key=LEVELS.index)
        texts = tuple(f"[{level}] {text}" for level, text in seen)
        causes.append(Cause(key=key, name=name, level=level, observations=texts, cure=cure))
    return tuple(causes)
