"""Incident lifecycle: signals and user events as append-only records, incidents as their fold.

SLA clocks are not stored: they are derived from an incident's events on demand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from classifier.signals import IncidentSignal, Opened, Restored, Upgraded
from config.catalog import ClockName
from config.timetext import format_time
from incidents.model import (
    OBSERVATION_KINDS,
    SIGNAL_KINDS,
    USER_KINDS,
    EventRecord,
    Incident,
    SeverityChange,
)
from sla.clocks import ClockState
from sla.events import EventKind, IncidentEvent
from sla.terms import SlaTerms

# Kinds whose event may carry the provider's promised time of its next update.
_PROMISING = ("provider_responded", "provider_updated")
# User events the clocks read as they are.
_CLOCK_KINDS: dict[str, EventKind] = {
    kind: kind
    for kind in (
        "ticket_opened",
        "provider_responded",
        "provider_updated",
        "awaiting_customer",
        "customer_replied",
        "resolved",
    )
}


# A user event may be stamped this far past the time it is recorded (two machines'
# clocks differ a little); anything later has not happened yet.
MAX_SKEW_S = 60.0


class LifecycleError(ValueError):
    """An event that cannot be recorded on an incident (unknown, resolved, malformed)."""


def signal_event(
    signal: IncidentSignal, terms: SlaTerms, *, source: str, recorded_at: float | None = None
) -> EventRecord:
    """The event record of one classifier signal; ``recorded_at`` defaults to its detection."""
    recorded = float(signal.detected_at if recorded_at is None else recorded_at)
    channels = list(signal.channels)
    if isinstance(signal, Opened):
        return EventRecord(
            incident=signal.incident,
            kind="opened",
            at=signal.detected_at,
            source=source,
            recorded_at=recorded,
            severity=signal.severity,
            data={
                "service": signal.service,
                "provider_severity": signal.provider_severity,
                "started_at": signal.started_at,
                "detected_at": signal.detected_at,
                "channels": channels,
                "terms": terms.to_json(),
            },
            key=f"opened@{signal.detected_at}",
        )
    if isinstance(signal, Upgraded):
        return EventRecord(
            incident=signal.incident,
            kind="upgraded",
            at=signal.detected_at,
            source=source,
            recorded_at=recorded,
            severity=signal.to_severity,
            data={
                "from": signal.from_severity,
                "started_at": signal.started_at,
                "channels": channels,
            },
            key=f"upgraded@{signal.detected_at}",
        )
    if isinstance(signal, Restored):
        # ``at`` is when service came back (the start of the available run), which is
        # what the restore clock measures; the detection comes recover_after later.
        return EventRecord(
            incident=signal.incident,
            kind="restored",
            at=signal.restored_at,
            source=source,
            recorded_at=recorded,
            data={"detected_at": signal.detected_at, "channels": channels},
            key=f"restored@{signal.detected_at}",
        )
    return EventRecord(
        incident=signal.incident,
        kind="reopened",
        at=signal.detected_at,
        source=source,
        recorded_at=recorded,
        severity=signal.severity,
        data={
            "from": signal.previous_severity,
            "started_at": signal.started_at,
            "restored_at": signal.restored_at,
            "channels": channels,
        },
        key=f"reopened@{signal.detected_at}",
    )


def user_event(
    incident: str,
    kind: str,
    *,
    at: float,
    source: str,
    recorded_at: float,
    note: str = "",
    ticket: str | None = None,
    severity: int | None = None,
    next_update_at: float | None = None,
) -> EventRecord:
    """A user's event, checked for shape (its time and the incident's state: :func:`admit`)."""
    if kind not in USER_KINDS:
        raise LifecycleError(
            f"unknown event kind {kind!r} (one of: {', '.join(USER_KINDS)})"
            if kind not in SIGNAL_KINDS
            else f"{kind} events are recorded by the classifier, not by hand"
        )
    if kind == "ticket_opened" and not ticket:
        raise LifecycleError("ticket_opened needs the ticket id or URL")
    if ticket is not None and kind != "ticket_opened":
        raise LifecycleError("a ticket reference belongs to ticket_opened")
    if (kind == "severity_changed") != (severity is not None):
        raise LifecycleError("a severity is given with severity_changed, and only with it")
    if next_update_at is not None and kind not in _PROMISING:
        raise LifecycleError("a next update time belongs to provider_responded or provider_updated")
    return EventRecord(
        incident=incident,
        kind=kind,
        at=at,
        source=source,
        recorded_at=recorded_at,
        note=note,
        ticket=ticket,
        severity=severity,
        next_update_at=next_update_at,
    )


def admit(incident: Incident | None, event: EventRecord) -> None:
    """Refuse a new user event that cannot have happened as told: LifecycleError saying why.

    Every writer's events pass here before they are stored (``incidents.commit``), so the
    CLI and the API refuse the same events with the same words. Not a rule of the fold:
    events stored before these checks existed still read.
    """
    if event.kind not in USER_KINDS:
        return
    if event.at > event.recorded_at + MAX_SKEW_S:
        raise LifecycleError(
            f"{event.kind}: {format_time(event.at)} is in the future "
            f"(it is {format_time(event.recorded_at)})"
        )
    if incident is None:
        return
    if event.at < incident.started_at:
        raise LifecycleError(
            f"{event.kind}: {format_time(event.at)} is before the incident's first bad second "
            f"({format_time(incident.started_at)})"
        )
    if event.kind == "customer_replied" and incident.awaiting_since is None:
        raise LifecycleError(
            f"customer_replied: incident {incident.id} is not awaiting the customer "
            "(record awaiting_customer first)"
        )


def apply(incident: Incident | None, event: EventRecord) -> Incident:
    """The incident after one more event; LifecycleError if the event cannot apply to it."""
    if event.kind == "opened":
        return _opened(event) if incident is None else incident
    if incident is None:
        raise LifecycleError(f"no such incident {event.incident!r}")
    if event.kind in SIGNAL_KINDS:
        return _apply_signal(incident, event)
    if event.kind in OBSERVATION_KINDS:
        # The provider's status page says what it says: no state or clock of ours moves.
        return incident
    return _apply_user(incident, event)


def _apply_signal(incident: Incident, event: EventRecord) -> Incident:
    replace = dataclasses.replace
    channels = _channels(incident, event)
    if event.kind == "upgraded" and event.severity is not None:
        return replace(
            incident,
            severity=event.severity,
            provider_severity=incident.terms.name_of(event.severity),
            channels=channels,
            severity_changes=(
                *incident.severity_changes,
                SeverityChange(event.at, incident.severity, event.severity, event.source),
            ),
        )
    if event.kind == "restored":
        return replace(
            incident,
            state="resolved" if incident.state == "resolved" else "restored",
            restored_at=int(event.at),
            channels=channels,
        )
    if event.severity is None:
        raise LifecycleError(f"{event.kind} event of {incident.id} has no severity")
    # Reopened: the condition is back, so the incident is open again, even if resolved.
    changes = incident.severity_changes
    if event.severity != incident.severity:
        changes = (
            *changes,
            SeverityChange(event.at, incident.severity, event.severity, event.source),
        )
    return replace(
        incident,
        state="open",
        severity=event.severity,
        provider_severity=incident.terms.name_of(event.severity),
        restored_at=None,
        resolved_at=None,
        resolution="",
        channels=channels,
        severity_changes=changes,
        reopened_at=(*incident.reopened_at, int(event.at)),
    )


def _apply_user(incident: Incident, event: EventRecord) -> Incident:
    replace = dataclasses.replace
    if incident.state == "resolved":
        raise LifecycleError(f"incident {incident.id} is resolved: no more events")
    if event.kind == "ticket_opened":
        return replace(incident, ticket=event.ticket, ticket_opened_at=event.at)
    if event.kind == "severity_changed" and event.severity is not None:
        if event.severity == incident.severity:
            raise LifecycleError(f"incident {incident.id} is already severity {event.severity}")
        return replace(
            incident,
            severity=event.severity,
            provider_severity=incident.terms.name_of(event.severity),
            severity_changes=(
                *incident.severity_changes,
                SeverityChange(event.at, incident.severity, event.severity, event.source),
            ),
        )
    if event.kind == "resolved":
        return replace(incident, state="resolved", resolved_at=event.at, resolution=event.note)
    if event.kind == "awaiting_customer" and incident.awaiting_since is None:
        return replace(incident, awaiting_since=event.at)
    if event.kind == "customer_replied":
        return replace(incident, awaiting_since=None)
    # provider_responded/updated (and a repeated awaiting_customer) only move the clocks.
    return incident


def fold(events: Iterable[EventRecord]) -> Incident | None:
    """The incident its events (in append order) describe; None when there are none."""
    incident: Incident | None = None
    for event in events:
        incident = apply(incident, event)
    return incident


def clock_events(events: Iterable[EventRecord]) -> list[IncidentEvent]:
    """The events the SLA clocks are computed from, in append order.

    An upgrade is a severity change; a reopening cancels the restore before it (the
    service was not restored after all) and may change the severity.
    """
    out: list[IncidentEvent] = []
    for event in events:
        kind = event.kind
        if kind in ("upgraded", "severity_changed") and event.severity is not None:
            out.append(IncidentEvent("severity_changed", event.at, severity=event.severity))
        elif kind == "reopened":
            for index in range(len(out) - 1, -1, -1):
                if out[index].kind == "restored":
                    del out[index]
                    break
            if event.severity is not None and event.severity != event.data.get("from"):
                out.append(IncidentEvent("severity_changed", event.at, severity=event.severity))
        elif kind == "restored":
            out.append(IncidentEvent("restored", event.at))
        elif kind in _CLOCK_KINDS:
            out.append(
                IncidentEvent(_CLOCK_KINDS[kind], event.at, next_update_at=event.next_update_at)
            )
    return out


def incident_clocks(
    incident: Incident, events: Iterable[EventRecord], now: float
) -> dict[ClockName, ClockState]:
    """Every SLA clock of the incident as of ``now``, from its frozen terms and its events.

    Empty when the service names no policy. PolicyError (sla.policy) when the terms
    cannot be resolved, e.g. a business-hours clock without a calendar.
    """
    return incident.terms.clocks(
        incident.opened_severity,
        opened_at=incident.detected_at,
        events=clock_events(events),
        now=now,
    )


def _opened(event: EventRecord) -> Incident:
    data = event.data
    severity = event.severity or 3
    return Incident(
        id=event.incident,
        service=str(data["service"]),
        state="open",
        severity=severity,
        provider_severity=str(data["provider_severity"]),
        opened_severity=severity,
        started_at=int(data["started_at"]),
        detected_at=int(data["detected_at"]),
        channels=tuple(data.get("channels") or ()),
        terms=SlaTerms.from_json(data.get("terms") or {}),
    )


def _channels(incident: Incident, event: EventRecord) -> tuple[str, ...]:
    extra = [str(c) for c in event.data.get("channels") or () if c not in incident.channels]
    return tuple(sorted((*incident.channels, *extra))) if extra else incident.channels
