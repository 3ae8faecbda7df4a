"""The Sample record: the one piece of plain data every stage of the data path passes on."""

from typing import NamedTuple


class Sample(NamedTuple):
    """One request's outcome. A failure is data: `error` names its class, "" means success."""

    name: str  # endpoint template, e.g. "GET /api/movies/{id}", never a raw URL
    status: int  # HTTP status, 0 when no response arrived
    error: str  # error class ("connect", "timeout", "http_5xx", "db_locked", ...), "" when ok
    message: str  # short detail for the error table, "" when ok
    latency_us: int  # service time: from the actual send until the whole body was read
    start_s: float  # wall-clock epoch seconds at the actual send (for timelines only)
    user: int  # global index of the simulated user
    wait_us: int = 0  # from the intended start (open model) or the call (--max-concurrent) to the actual send
    inflight: int = 0  # writes (non-GET requests) in flight in this worker when this one was sent
