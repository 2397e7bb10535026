"""The ``Attempt`` record and the ``Outcome`` taxonomy (DESIGN.md §3), with the replay JSON form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from config.timetext import TimeTextError, format_time, parse_time


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


class Source(StrEnum):
    """Who made an attempt: slawatch's own probe, or the customer's real traffic (ingested)."""

    PROBE = "probe"
    TRAFFIC = "traffic"


# The prober ids of ingested traffic: ``traffic:<the sender's service.name>`` (or the
# prober a pushed line names). The namespace is reserved for traffic, so a bucket tells
# an attempt's source by its prober id alone (DESIGN.md §13).
TRAFFIC_PREFIX = "traffic:"


def prober_source(prober: str) -> Source:
    """The source of the attempts of a prober id (traffic ids start with ``traffic:``)."""
    return Source.TRAFFIC if prober.startswith(TRAFFIC_PREFIX) else Source.PROBE


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
    # The probe's own configuration failed it (e.g. SMTP 535: our credentials), not the
    # provider: the prober reports itself unhealthy for that target.
    misconfigured: bool = False
    # A probe's attempt or one of the customer's own calls; traffic attempts always have a
    # prober id in the ``traffic:`` namespace (``attempt_from_json`` keeps that true).
    source: Source = Source.PROBE

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
        if self.misconfigured:
            record["misconfigured"] = True
        # Written only when not the default: probe logs keep the canonical replay form.
        if self.source is not Source.PROBE:
            record["source"] = str(self.source)
        return record


class AttemptFormatError(ValueError):
    """A replay record is malformed; ``field`` names the offending key."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


_OUTCOMES = {o.value: o for o in Outcome}
_CHANNELS = {c.value: c for c in Channel}
_REQUIRED = ("service", "channel", "target", "started_at", "outcome")
_SOURCES = {s.value: s for s in Source}
_KNOWN = frozenset(
    (*_REQUIRED, "prober", "duration_s", "detail", "phase", "timings", "misconfigured", "source")
)
# The prober of a traffic record that names none.
DEFAULT_TRAFFIC_PROBER = TRAFFIC_PREFIX + "push"


def attempt_from_json(record: Any, *, default_source: Source = Source.PROBE) -> Attempt:
    """Build an Attempt from one decoded replay record, naming the field of any error.

    ``source`` is optional: when absent, a prober id in the ``traffic:`` namespace means
    traffic, any other ``default_source``. A traffic record's prober id is put in that
    namespace (``app-1`` becomes ``traffic:app-1``; none becomes ``traffic:push``); a
    record that says ``source: probe`` may not use it.
    """
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
    started_at = _started_at(record["started_at"])
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
    misconfigured = record.get("misconfigured", False)
    if not isinstance(misconfigured, bool):
        raise AttemptFormatError("misconfigured", "expected true or false")
    source, prober = _source_and_prober(record, prober, default_source)
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
        misconfigured=misconfigured,
        source=source,
    )


def _source_and_prober(record: dict[str, Any], prober: str, default: Source) -> tuple[Source, str]:
    """The record's source and its prober id in the namespace of that source."""
    if "source" not in record and prober.startswith(TRAFFIC_PREFIX):
        default = Source.TRAFFIC
    source = _source(record, default)
    return source, _prober_of(source, prober)


def _source(record: dict[str, Any], default: Source) -> Source:
    raw = record.get("source", default.value)
    source = _SOURCES.get(raw) if isinstance(raw, str) else None
    if source is None:
        raise AttemptFormatError("source", f"expected probe or traffic, got {raw!r}")
    return source


def _prober_of(source: Source, prober: str) -> str:
    """The prober id of a record of ``source`` (see ``attempt_from_json``)."""
    if source is Source.PROBE:
        if prober.startswith(TRAFFIC_PREFIX):
            raise AttemptFormatError(
                "prober", f"the {TRAFFIC_PREFIX!r} prefix is reserved for source traffic"
            )
        return prober
    if not prober:
        return DEFAULT_TRAFFIC_PROBER
    return prober if prober.startswith(TRAFFIC_PREFIX) else TRAFFIC_PREFIX + prober


def _started_at(value: Any) -> float:
    if not isinstance(value, str):
        raise AttemptFormatError("started_at", "expected an RFC 3339 time string")
    try:
        return parse_time(value)
    except TimeTextError as exc:
        raise AttemptFormatError("started_at", str(exc)) from None


def _text(record: dict[str, Any], key: str) -> str:
    value = record[key]
    if not isinstance(value, str) or not value:
        raise AttemptFormatError(key, "expected a non-empty string")
    return value
