"""Incident lifecycle: signals and user events as append-only records, incidents as their fold.

SLA clocks are not stored: they are derived from an incident's events on demand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from classifier.machine import severity_names
from classifier.signals import IncidentSignal, Opened, Restored, Upgraded
from config.catalog import BUSINESS, Catalog, ClockName, PolicySpec
from config.model import CalendarConfig, ServiceConfig
from incidents.calendar import Calendar
from incidents.clocks import ClockState, clocks_for
from incidents.events import EventKind, IncidentEvent
from incidents.model import (
    SIGNAL_KINDS,
    USER_KINDS,
    EventRecord,
    Incident,
    SeverityChange,
    SlaTerms,
)

# The calendar every catalog policy may name without the config defining it.
ALWAYS_OPEN = "24x7"
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


class LifecycleError(ValueError):
    """An event that cannot be recorded on an incident (unknown, resolved, malformed)."""


def sla_terms(
    service: ServiceConfig,
    catalog: Catalog,
    calendars: Mapping[str, CalendarConfig],
    *,
    at: float,
) -> SlaTerms:
    """Freeze the service's SLA terms for an incident starting at ``at``.

    The calendar snapshots hold the holidays of that year and the next, which covers
    every clock an incident can run (the longest target is days, not years).
    """
    names = {str(level): name for level, name in severity_names(service, catalog).items()}
    policy_id = service.sla.policy
    spec = catalog.policies.get(policy_id) if policy_id else None
    if spec is None:
        return SlaTerms(names=names)
    wanted: set[str] = set()
    if service.sla.calendar is not None:
        wanted.add(service.sla.calendar)
    for severity in spec.severities.values():
        for clock in severity.clocks.values():
            if clock.calendar not in (BUSINESS, ALWAYS_OPEN):
                wanted.add(clock.calendar)
    year = datetime.fromtimestamp(at, UTC).year
    snapshots = {
        name: Calendar.from_config(name, calendars[name]).snapshot(year, year + 1)
        for name in sorted(wanted)
        if name in calendars
    }
    return SlaTerms(
        policy_id=policy_id,
        policy=spec.model_dump(mode="json"),
        calendar=service.sla.calendar,
        calendars=snapshots,
        update_every=service.sla.update_every,
        names=names,
    )


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
    """A user's event, checked for shape (the incident's state is checked by :func:`apply`)."""
    if kind not in USER_KINDS:
        raise LifecycleError(
            f"unknown event kind {kind!r} (one of: {', '.join(USER_KINDS)})"
            if kind not in SIGNAL_KINDS
            else f"{kind} events are recorded by the classifier, not by hand"
        )
    if at > recorded_at:
        raise LifecycleError(f"{kind}: time is in the future")
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


def apply(incident: Incident | None, event: EventRecord) -> Incident:
    """The incident after one more event; LifecycleError if the event cannot apply to it."""
    if event.kind == "opened":
        return _opened(event) if incident is None else incident
    if incident is None:
        raise LifecycleError(f"no such incident {event.incident!r}")
    if event.kind in SIGNAL_KINDS:
        return _apply_signal(incident, event)
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
    # provider_responded/updated, awaiting_customer, customer_replied only move the clocks.
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


@dataclass(frozen=True, slots=True)
class ParsedTerms:
    """An incident's frozen SLA terms, parsed once (the daemon reuses them every second)."""

    policy: PolicySpec
    calendars: dict[str, Calendar]


def parse_terms(terms: SlaTerms) -> ParsedTerms | None:
    """The policy and calendar snapshots of ``terms`` as objects; None without a policy."""
    if terms.policy is None:
        return None
    return ParsedTerms(
        policy=PolicySpec.model_validate(terms.policy),
        calendars={name: Calendar.from_snapshot(snap) for name, snap in terms.calendars.items()},
    )


def incident_clocks(
    incident: Incident,
    events: Iterable[EventRecord],
    now: float,
    parsed: ParsedTerms | None = None,
) -> dict[ClockName, ClockState]:
    """Every SLA clock of the incident as of ``now``, from its frozen terms and its events.

    Empty when the service names no policy. PolicyError (from incidents.policy) when the
    terms cannot be resolved, e.g. a business-hours clock without a calendar. ``parsed``
    is :func:`parse_terms` of the incident's terms, when the caller keeps it.
    """
    terms = incident.terms
    parsed = parsed or parse_terms(terms)
    if parsed is None:
        return {}
    calendars = parsed.calendars
    service_calendar = calendars.get(terms.calendar) if terms.calendar else None
    return clocks_for(
        parsed.policy,
        incident.opened_severity,
        service_calendar,
        opened_at=incident.detected_at,
        events=clock_events(events),
        now=now,
        update_every=terms.update_every,
        calendars=calendars,
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
