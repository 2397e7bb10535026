"""The stored records of the incidents package: incidents, their events and verdict runs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from config.timetext import format_time, parse_time
from sla.events import EventError
from sla.terms import SlaTerms

IncidentState = Literal["open", "restored", "resolved"]
INCIDENT_STATES: tuple[IncidentState, ...] = get_args(IncidentState)

# Who recorded an event: the classifier (live), a replay, the CLI, the web API, or the
# poller of the provider's own status page.
EventSource = Literal["classifier", "replay", "cli", "api", "status_page"]
EVENT_SOURCES: tuple[EventSource, ...] = get_args(EventSource)

# Events the classifier's signals become; they carry a dedupe key (see EventRecord.key).
SignalKind = Literal["opened", "upgraded", "restored", "reopened"]
SIGNAL_KINDS: tuple[SignalKind, ...] = get_args(SignalKind)
# Events a user records (DESIGN.md §6); ``restored`` is automatic and not among them.
UserKind = Literal[
    "ticket_opened",
    "provider_responded",
    "provider_updated",
    "awaiting_customer",
    "customer_replied",
    "severity_changed",
    "resolved",
]
USER_KINDS: tuple[UserKind, ...] = get_args(UserKind)
# What was observed beside the incident (the provider's status page, ingested attempts that
# came after their second was judged): recorded with a key, shown in evidence, and changing
# nothing of the incident or its clocks.
ObservationKind = Literal["provider_status_changed", "attempts_late"]
OBSERVATION_KINDS: tuple[ObservationKind, ...] = get_args(ObservationKind)
RECORD_KINDS: tuple[str, ...] = (*SIGNAL_KINDS, *USER_KINDS, *OBSERVATION_KINDS)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One append-only event of an incident, with who recorded it and when.

    ``at`` is when it happened (UTC epoch seconds), ``recorded_at`` when it was written
    down. Classifier events carry ``key`` (kind and time), unique per incident, so a
    signal replayed after a crash cannot be recorded twice; user events have none.
    ``data`` holds what a kind needs beyond the common fields (the ``opened`` event
    carries the incident's header and SLA terms).
    """

    incident: str
    kind: str
    at: float
    source: str
    recorded_at: float
    note: str = ""
    ticket: str | None = None
    severity: int | None = None
    next_update_at: float | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    # Assigned by the store, in append order (None before it is stored).
    seq: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in RECORD_KINDS:
            raise EventError(f"unknown event kind {self.kind!r}")
        if self.source not in EVENT_SOURCES:
            raise EventError(f"unknown event source {self.source!r}")
        if not (math.isfinite(self.at) and math.isfinite(self.recorded_at)):
            raise EventError(f"{self.kind}: times must be finite")
        if self.severity is not None and self.severity not in (1, 2, 3):
            raise EventError(f"severity must be 1, 2 or 3, got {self.severity!r}")

    def to_json(self) -> dict[str, Any]:
        """The event as JSON (times RFC 3339 UTC); the store keeps exactly this."""
        record: dict[str, Any] = {
            "seq": self.seq,
            "incident": self.incident,
            "kind": self.kind,
            "at": format_time(self.at),
            "source": self.source,
            "recorded_at": format_time(self.recorded_at),
        }
        if self.note:
            record["note"] = self.note
        if self.ticket is not None:
            record["ticket"] = self.ticket
        if self.severity is not None:
            record["severity"] = self.severity
        if self.next_update_at is not None:
            record["next_update_at"] = format_time(self.next_update_at)
        if self.data:
            record["data"] = dict(self.data)
        if self.key is not None:
            record["key"] = self.key
        return record

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventRecord:
        """Rebuild an event from :meth:`to_json` output."""
        next_update = data.get("next_update_at")
        return cls(
            incident=str(data["incident"]),
            kind=str(data["kind"]),
            at=parse_time(data["at"]),
            source=str(data["source"]),
            recorded_at=parse_time(data["recorded_at"]),
            note=str(data.get("note", "")),
            ticket=data.get("ticket"),
            severity=data.get("severity"),
            next_update_at=None if next_update is None else parse_time(next_update),
            data=dict(data.get("data") or {}),
            key=data.get("key"),
            seq=data.get("seq"),
        )


@dataclass(frozen=True, slots=True)
class SeverityChange:
    """A change of an incident's level, by the classifier (upgrade, reopen) or a user."""

    at: float
    from_severity: int
    to_severity: int
    source: str


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident as its events say it is (the store keeps this projection for listing).

    Times of the classifier's making are whole seconds (``started_at`` the first bad
    second, ``detected_at`` the end of the second the condition became true,
    ``restored_at`` the start of the available run); user times may have fractions.
    """

    id: str
    service: str
    state: IncidentState
    severity: int
    provider_severity: str
    # The level it opened at (``severity`` is the current one).
    opened_severity: int
    started_at: int
    detected_at: int
    channels: tuple[str, ...]
    terms: SlaTerms
    restored_at: int | None = None
    resolved_at: float | None = None
    resolution: str = ""
    ticket: str | None = None
    # The real ticket-open time, when a user recorded it (the clocks start there).
    ticket_opened_at: float | None = None
    severity_changes: tuple[SeverityChange, ...] = ()
    reopened_at: tuple[int, ...] = ()
    # Since when the provider has been waiting for the customer (an awaiting_customer not
    # yet answered by customer_replied); None when it is not.
    awaiting_since: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The incident as the API, the CLI and evidence show it (times RFC 3339 UTC)."""
        return {
            "id": self.id,
            "service": self.service,
            "state": self.state,
            "severity": self.severity,
            "provider_severity": self.provider_severity,
            "opened_severity": self.opened_severity,
            "started_at": format_time(self.started_at),
            "detected_at": format_time(self.detected_at),
            "restored_at": None if self.restored_at is None else format_time(self.restored_at),
            "resolved_at": None if self.resolved_at is None else format_time(self.resolved_at),
            "resolution": self.resolution,
            "channels": list(self.channels),
            "ticket": self.ticket,
            "ticket_opened_at": None
            if self.ticket_opened_at is None
            else format_time(self.ticket_opened_at),
            "severity_changes": [
                {
                    "at": format_time(c.at),
                    "from": c.from_severity,
                    "to": c.to_severity,
                    "source": c.source,
                }
                for c in self.severity_changes
            ],
            "reopened_at": [format_time(at) for at in self.reopened_at],
            "sla": {"policy": self.terms.policy_id, "calendar": self.terms.calendar},
        }


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive seconds of one channel (or ``combined``) with the same verdict and counts.

    ``counts`` (by outcome, in the classifier's OUTCOMES order) and ``set_aside`` are
    those of *each* second of the run: a run breaks whenever they change, so every
    second's record can be rebuilt exactly while a steady hour is still a single row.
    """

    service: str
    channel: str
    verdict: str
    first: int
    last: int
    counts: tuple[int, ...]
    set_aside: int = 0
    # The part of ``counts`` from the customer's ingested traffic (empty: none).
    traffic: tuple[int, ...] = ()

    @property
    def seconds(self) -> int:
        """How many seconds the run covers."""
        return self.last - self.first + 1
