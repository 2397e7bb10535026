"""The ``Attempt`` record and the ``Outcome`` taxonomy (DESIGN.md §3), with the replay JSON form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """What one attempt observed; whether it counts against the provider is not decided here."""

    OK = "ok"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    CONNECTION_ERROR = "connection_error"
    TLS_ERROR = "tls_error"
    DNS_ERROR = "dns_error"
    CLIENT_ERROR = "client_error"
    RATE_LIMITED = "rate_limited"
    PROBE_ERROR = "probe_error"


class Channel(StrEnum):
    """Which pool an attempt belongs to: the contract judges API calls and SMTP injections apart."""

    API = "api"
    SMTP = "smtp"
    CONTROL = "control"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One probe attempt, stamped when it was launched.

    ``started_at`` is UTC epoch seconds (float, sub-second): the second an attempt
    belongs to is ``floor(started_at)``, and floats keep replay fast.
    """

    service: str
    channel: Channel
    target: str
    prober: str
    started_at: float
    duration_s: float
    outcome: Outcome
    # How far the dialogue got: dns, connect, tls, request, headers, body, greeting, ehlo, ...
    phase: str = ""
    # Short, redacted: status code, SMTP reply, exception class.
    detail: str = ""
    # Per-phase durations in seconds (dns, connect, tls, ttfb, total), when measured.
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def second(self) -> int:
        """The wall-clock second the attempt belongs to."""
        return math.floor(self.started_at)

    def to_json(self) -> dict[str, Any]:
        """The replay JSON Lines record (DESIGN.md §9)."""
        record: dict[str, Any] = {
            "service": self.service,
            "channel": str(self.channel),
            "target": self.target,
            "prober": self.prober,
            "started_at": format_time(self.started_at, precision=3),
            "outcome": str(self.outcome),
            "duration_s": round(self.duration_s, 6),
        }
        if self.phase:
            record["phase"] = self.phase
        if self.detail:
            record["detail"] = self.detail
        if self.timings:
            record["timings"] = {k: round(v, 6) for k, v in self.timings.items()}
        return record


class AttemptFormatError(ValueError):
    """A replay record is malformed; ``field`` names the offending key."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


_OUTCOMES = {o.value: o for o in Outcome}
_CHANNELS = {c.value: c for c in Channel}
_REQUIRED = ("service", "channel", "target", "started_at", "outcome")
_KNOWN = frozenset((*_REQUIRED, "prober", "duration_s", "detail", "phase", "timings"))


def attempt_from_json(record: Any) -> Attempt:
    """Build an Attempt from one decoded replay record, naming the field of any error."""
    if not isinstance(record, dict):
        raise AttemptFormatError("record", f"expected a JSON object, got {type(record).__name__}")
    for key in _REQUIRED:
        if key not in record:
            raise AttemptFormatError(key, "missing")
    for key in record:
        if key not in _KNOWN:
            raise AttemptFormatError(str(key), "unknown field")
    service = _text(record, "service")
    target = _text(record, "target")
    raw_channel, raw_outcome = record["channel"], record["outcome"]
    # A list or object here is malformed input, not a lookup key (it is unhashable).
    channel = _CHANNELS.get(raw_channel) if isinstance(raw_channel, str) else None
    if channel is None:
        raise AttemptFormatError(
            "channel", f"expected api, smtp or control, got {record['channel']!r}"
        )
    outcome = _OUTCOMES.get(raw_outcome) if isinstance(raw_outcome, str) else None
    if outcome is None:
        raise AttemptFormatError("outcome", f"unknown outcome {record['outcome']!r}")
    started = record["started_at"]
    if not isinstance(started, str):
        raise AttemptFormatError("started_at", "expected an RFC 3339 time string")
    started_at = parse_time(started, "started_at")
    duration = record.get("duration_s", 0.0)
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not (0 <= duration < math.inf)
    ):
        raise AttemptFormatError("duration_s", f"expected seconds >= 0, got {duration!r}")
    prober = record.get("prober", "")
    detail = record.get("detail", "")
    phase = record.get("phase", "")
    for key, value in (("prober", prober), ("detail", detail), ("phase", phase)):
        if not isinstance(value, str):
            raise AttemptFormatError(key, "expected a string")
    timings = record.get("timings", {})
    if not isinstance(timings, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in timings.values()
    ):
        raise AttemptFormatError("timings", "expected an object of seconds")
    return Attempt(
        service=service,
        channel=channel,
        target=target,
        prober=prober,
        started_at=started_at,
        duration_s=float(duration),
        outcome=outcome,
        phase=phase,
        detail=detail,
        timings=timings,
    )


def _text(record: dict[str, Any], key: str) -> str:
    value = record[key]
    if not isinstance(value, str) or not value:
        raise AttemptFormatError(key, "expected a non-empty string")
    return value


def parse_time(text: str, field_name: str = "time") -> float:
    """RFC 3339 (``Z`` or any offset; a zone is required) to UTC epoch seconds."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise AttemptFormatError(field_name, f"invalid RFC 3339 time {text!r}") from None
    if parsed.tzinfo is None:
        raise AttemptFormatError(field_name, f"time {text!r} has no UTC offset")
    return parsed.timestamp()


def format_time(epoch: float, precision: int = 0) -> str:
    """UTC epoch seconds as RFC 3339 with ``Z``; fractional digits truncated, never rounded up."""
    whole = math.floor(epoch)
    text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if precision:
        scale = 10**precision
        frac = math.floor((epoch - whole) * scale + 1e-6)
        frac = min(frac, scale - 1)
        text += f".{frac:0{precision}d}"
    return text + "Z"
