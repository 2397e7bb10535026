"""Which notifications the incident event log, the SLA clocks and prober health produce.

Pure (no clock reads, no I/O). The daemon follows the store's event log and asks
:meth:`NotifyRules.for_event` about every new event, whoever wrote it (the classifier,
the API, the CLI, another instance); each second it asks :meth:`NotifyRules.clocks` about
the open incidents' clocks and reports prober health. It writes what comes back to the
outbox, where ``notify/worker.py`` picks it up.

Idempotency keys are derived from the cause, never random: ``{incident}:{cause}:{channel}``
(the cause is the event's dedupe key or its kind and time, ``clock_due:{clock}@{deadline}``,
``clock_breached:{clock}#{n}`` …). The outbox ignores a key it already holds, so an event
read again after a restart, or by a second reader, queues nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from config.catalog import ClockName
from config.model import NotifyChannel, NotifyEvent
from config.timetext import format_time
from incidents.model import EventRecord, Incident
from incidents.outbox import Notification
from incidents.view import clock_states, links
from sla.clocks import ClockState

# How long before a deadline ``clock_due`` is sent (DESIGN.md: "due soon", 10 minutes).
DUE_SOON_S = 600.0
# Incident events each notify event comes from (user events not listed notify nobody).
_EVENT_KINDS: dict[str, NotifyEvent] = {
    "opened": "opened",
    "upgraded": "upgraded",
    "restored": "restored",
    "reopened": "reopened",
    "resolved": "resolved",
}
# Events written by ``slawatch replay --store`` are history being filed, not news.
_SILENT_SOURCES = frozenset({"replay"})


def _wants(channel: NotifyChannel, event: str, service: str | None, severity: int | None) -> bool:
    """The channel's filters: every one must let the notification through."""
    if event not in channel.events:
        return False
    if channel.services is not None and service is not None and service not in channel.services:
        return False
    # Prober notifications have no severity: the severity filter does not apply to them.
    return severity is None or severity in channel.severities


@dataclass(slots=True)
class NotifyRules:
    """Which notifications each incident event, clock state and prober fault produces."""

    channels: Sequence[NotifyChannel]
    base_url: str
    prober: str = ""
    due_lead: float = DUE_SOON_S
    # Clock notifications already produced, by cause (the outbox ignores repeats anyway;
    # this spares building them every second).
    _seen: set[str] = field(default_factory=set)
    # Prober checks currently unhealthy (one notification when a check turns unhealthy).
    _unhealthy: set[str] = field(default_factory=set)

    def reconfigure(self, channels: Sequence[NotifyChannel], *, base_url: str) -> None:
        """Switch to a reloaded config's channels."""
        self.channels = channels
        self.base_url = base_url

    def for_event(
        self, incident: Incident, history: Sequence[EventRecord], event: EventRecord
    ) -> list[Notification]:
        """Notifications of one event; ``incident`` and ``history`` are as of that event."""
        name = _EVENT_KINDS.get(event.kind)
        if name is None or event.source in _SILENT_SOURCES:
            return []
        wanted = [c for c in self.channels if _wants(c, name, incident.service, incident.severity)]
        if not wanted:
            return []
        # The clocks as they stood when the event was written down.
        now = max(event.at, event.recorded_at)
        states, error = clock_states(incident, history, now)
        cause = event.key or f"{event.kind}@{event.at:.3f}"
        document: dict[str, Any] = self._document(name, incident, states, event.at)
        if error:
            document["clocks_error"] = error
        if event.kind in ("upgraded", "reopened") and "from" in event.data:
            document["previous_severity"] = event.data["from"]
            document["previous_provider_severity"] = incident.terms.name_of(int(event.data["from"]))
        if event.note:
            document["note"] = event.note
        return [_note(document, c.name, f"{incident.id}:{cause}", incident.id, now) for c in wanted]

    def clocks(
        self, incident: Incident, states: Mapping[ClockName, ClockState], now: float
    ) -> list[Notification]:
        """``clock_due`` (within ``due_lead`` of a deadline) and ``clock_breached`` notices."""
        out: list[Notification] = []
        for name, state in states.items():
            if state.breaches:
                out += self._clock(
                    incident, states, name, "clock_breached", f"#{state.breaches}", now
                )
            if (
                state.state == "running"
                and state.deadline is not None
                and 0 < state.deadline - now <= self.due_lead
            ):
                out += self._clock(
                    incident, states, name, "clock_due", f"@{state.deadline:.0f}", now
                )
        return out

    def forget(self, incident_ids: Iterable[str]) -> None:
        """Drop the clock memory of incidents no longer open (it only saves work)."""
        gone = tuple(f"{i}:" for i in incident_ids)
        if gone:
            self._seen = {s for s in self._seen if not s.startswith(gone)}

    def prober_health(
        self,
        check: str,
        *,
        healthy: bool,
        now: float,
        detail: str = "",
        service: str | None = None,
        target: str | None = None,
    ) -> list[Notification]:
        """``prober_unhealthy`` when a check turns unhealthy (once until it recovers).

        ``check`` names what is judged, e.g. ``misconfigured:sparkpost/send`` or
        ``launch_lag``; it recovers when a later report says healthy.
        """
        if healthy:
            self._unhealthy.discard(check)
            return []
        if check in self._unhealthy:
            return []
        self._unhealthy.add(check)
        event: NotifyEvent = "prober_unhealthy"
        wanted = [c for c in self.channels if _wants(c, event, service, None)]
        document: dict[str, Any] = {
            "event": event,
            "at": format_time(now),
            "incident": None,
            "clocks": {},
            "links": {"incident": None, "evidence": None},
            "prober": {
                "id": self.prober,
                "check": check,
                "service": service,
                "target": target,
                "detail": detail,
            },
        }
        cause = f"{self.prober or 'prober'}:{event}:{check}@{now:.3f}"
        return [_note(document, c.name, cause, None, now) for c in wanted]

    def _clock(  # noqa: PLR0917  (a private helper called from one place)
        self,
        incident: Incident,
        states: Mapping[ClockName, ClockState],
        clock: str,
        event: NotifyEvent,
        mark: str,
        now: float,
    ) -> list[Notification]:
        cause = f"{incident.id}:{event}:{clock}{mark}"
        if cause in self._seen:
            return []
        self._seen.add(cause)
        wanted = [c for c in self.channels if _wants(c, event, incident.service, incident.severity)]
        document = self._document(event, incident, states, now)
        document["clock"] = clock
        return [_note(document, c.name, cause, incident.id, now) for c in wanted]

    def _document(
        self,
        event: str,
        incident: Incident,
        states: Mapping[ClockName, ClockState],
        at: float,
    ) -> dict[str, Any]:
        """The channel-independent body (DESIGN.md §10) of one incident notification."""
        return {
            "event": event,
            "at": format_time(at),
            "incident": incident.to_json(),
            "clocks": {name: state.to_json() for name, state in states.items()},
            "links": links(self.base_url, incident.id),
            "escalation": incident.terms.escalation,
        }


def _note(
    document: Mapping[str, Any], channel: str, cause: str, incident: str | None, now: float
) -> Notification:
    key = f"{cause}:{channel}"
    return Notification(
        key=key,
        channel=channel,
        event=str(document["event"]),
        created_at=now,
        document={**document, "idempotency_key": key},
        incident=incident,
        next_at=now,
    )
