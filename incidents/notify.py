"""Notifications: which events reach which channels, their outbox records and their payloads.

Pure domain code (no clock reads, no I/O): the store calls :meth:`NotifyRules.for_event`
inside the transaction that records an incident event, so a notification exists exactly
when its event does; the daemon feeds clock states and prober health, which queue
``clock_due``, ``clock_breached`` and ``prober_unhealthy`` notifications for its next
batch. The transport (``slawatch/notifier.py``) delivers the outbox; the channel payloads
(webhook, Slack, PagerDuty, Alertmanager, e-mail) are built here from one document.

Idempotency keys are derived from the cause, never random: ``{incident}:{cause}:{channel}``
(the cause is the event's dedupe key, ``clock_due:{clock}@{deadline}``,
``clock_breached:{clock}#{n}`` …). The outbox ignores a key it already holds, so a batch
retried after a crash, or a clock re-examined after a restart, queues nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from config.catalog import ClockName
from config.model import NotifyChannel, NotifyEvent
from incidents.clocks import ClockState
from incidents.events import format_utc
from incidents.lifecycle import incident_clocks
from incidents.model import EventRecord, Incident

if TYPE_CHECKING:
    from incidents.store import Batch

# How long before a deadline ``clock_due`` is sent (DESIGN.md: "due soon", 10 minutes).
DUE_SOON_S = 600.0
# Alertmanager resolves an alert nobody re-sends after its resolve_timeout; slawatch sends
# each event once, so firing alerts say for how long they hold (refreshed by later events).
ALERT_HOLD_S = 86_400.0

OutboxState = Literal["pending", "delivered", "dead"]
OUTBOX_STATES: tuple[OutboxState, ...] = get_args(OutboxState)

# Incident events each notify event comes from (user events not listed notify nobody).
_EVENT_KINDS: dict[str, NotifyEvent] = {
    "opened": "opened",
    "upgraded": "upgraded",
    "restored": "restored",
    "reopened": "reopened",
    "resolved": "resolved",
}
# PagerDuty Events API v2 severities of the normalized levels.
PAGERDUTY_SEVERITY = {1: "critical", 2: "error", 3: "warning"}
# What each event does to the PagerDuty incident: restoration acknowledges (the outage
# is over, the ticket is not), only the mutual ``resolved`` resolves it.
PAGERDUTY_ACTION: dict[str, str] = {
    "opened": "trigger",
    "upgraded": "trigger",
    "reopened": "trigger",
    "clock_due": "trigger",
    "clock_breached": "trigger",
    "prober_unhealthy": "trigger",
    "restored": "acknowledge",
    "resolved": "resolve",
}
_HEADLINES: dict[str, str] = {
    "opened": "incident opened",
    "upgraded": "incident upgraded",
    "restored": "service restored",
    "reopened": "incident reopened",
    "resolved": "incident resolved",
    "clock_due": "SLA clock due soon",
    "clock_breached": "SLA clock breached",
    "prober_unhealthy": "prober unhealthy",
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one channel, as the outbox keeps it.

    ``document`` is the channel-independent body (the generic webhook JSON without
    ``sent_at``, which is stamped at each try); every channel's payload is built from it.
    """

    key: str
    channel: str
    event: str
    created_at: float
    document: Mapping[str, Any]
    incident: str | None = None
    # Assigned by the store, in enqueue order: the delivery order of each channel.
    seq: int | None = None
    state: OutboxState = "pending"
    # Tries made so far, and when the next may start (a restarted worker waits for it).
    tries: int = 0
    next_at: float | None = None
    last_error: str = ""
    # When it was delivered or dead-lettered.
    done_at: float | None = None


def links(base_url: str, incident_id: str) -> dict[str, str]:
    """The incident page and its Markdown evidence under the daemon's public URL."""
    base = base_url.rstrip("/")
    return {
        "incident": f"{base}/api/v1/incidents/{incident_id}",
        "evidence": f"{base}/api/v1/incidents/{incident_id}/evidence?format=md",
    }


def incident_json(incident: Incident) -> dict[str, Any]:
    """The ``incident`` object of the documented payload (times RFC 3339 UTC)."""
    return {
        "id": incident.id,
        "service": incident.service,
        "state": incident.state,
        "severity": incident.severity,
        "provider_severity": incident.provider_severity,
        "started_at": format_utc(incident.started_at),
        "detected_at": format_utc(incident.detected_at),
        "restored_at": None if incident.restored_at is None else format_utc(incident.restored_at),
        "resolved_at": None if incident.resolved_at is None else format_utc(incident.resolved_at),
        "channels": list(incident.channels),
        "ticket": incident.ticket,
    }


def _escalation(incident: Incident) -> str | None:
    policy = incident.terms.policy
    if not policy:
        return None
    path = policy.get("escalation")
    return None if path is None else str(path)


def _wants(channel: NotifyChannel, event: str, service: str | None, severity: int | None) -> bool:
    """The channel's filters: every one must let the notification through."""
    if event not in channel.events:
        return False
    if channel.services is not None and service is not None and service not in channel.services:
        return False
    # Prober notifications have no severity: the severity filter does not apply to them.
    return severity is None or severity in channel.severities


@dataclass(slots=True)
class _Health:
    """What is known of one prober check (a target's configuration, the launch lag)."""

    unhealthy: bool = False


@dataclass(slots=True)
class NotifyRules:
    """Which notifications each incident event, clock state and prober fault produces."""

    channels: Sequence[NotifyChannel]
    base_url: str
    prober: str = ""
    due_lead: float = DUE_SOON_S
    # Clock notifications already queued, by cause (the outbox ignores repeats anyway;
    # this spares building them every second).
    _seen: set[str] = field(default_factory=set)
    # Notifications waiting for the daemon's next batch.
    _queued: list[Notification] = field(default_factory=list)
    _health: dict[str, _Health] = field(default_factory=dict)

    def configure(self, channels: Sequence[NotifyChannel], *, base_url: str) -> None:
        """Switch to a reloaded config's channels; what was already queued stays queued."""
        self.channels = channels
        self.base_url = base_url

    # -- incident events (called by the store, inside the event's transaction) ------

    def for_event(
        self, incident: Incident, events: Sequence[EventRecord], event: EventRecord
    ) -> list[Notification]:
        """Notifications of one newly recorded event; ``incident`` and ``events`` include it."""
        name = _EVENT_KINDS.get(event.kind)
        if name is None:
            return []
        wanted = [c for c in self.channels if _wants(c, name, incident.service, incident.severity)]
        if not wanted:
            return []
        # The clocks as they stood when the event was written down.
        now = max(event.at, event.recorded_at)
        clocks, error = _clocks(incident, events, now)
        cause = event.key or f"{event.kind}@{event.at:.3f}"
        document: dict[str, Any] = {
            "event": name,
            "at": format_utc(event.at),
            "incident": incident_json(incident),
            "clocks": clocks,
            "links": links(self.base_url, incident.id),
            "escalation": _escalation(incident),
        }
        if error:
            document["clocks_error"] = error
        if event.kind in ("upgraded", "reopened") and "from" in event.data:
            document["previous_severity"] = event.data["from"]
            document["previous_provider_severity"] = incident.terms.name_of(int(event.data["from"]))
        if event.note:
            document["note"] = event.note
        return [
            _note(document, channel.name, f"{incident.id}:{cause}", incident.id, now)
            for channel in wanted
        ]

    # -- clocks (called by the daemon each second) ---------------------------------

    def clocks(
        self, incident: Incident, states: Mapping[ClockName, ClockState], now: float
    ) -> None:
        """Queue ``clock_due`` (within ``due_lead`` of a deadline) and ``clock_breached``."""
        for name, state in states.items():
            if state.breaches:
                mark = f"#{state.breaches}"
                self._clock(
                    incident, states, clock=name, event="clock_breached", mark=mark, now=now
                )
            if (
                state.state == "running"
                and state.deadline is not None
                and 0 < state.deadline - now <= self.due_lead
            ):
                mark = f"@{state.deadline:.0f}"
                self._clock(incident, states, clock=name, event="clock_due", mark=mark, now=now)

    def _clock(
        self,
        incident: Incident,
        states: Mapping[ClockName, ClockState],
        *,
        clock: str,
        event: NotifyEvent,
        mark: str,
        now: float,
    ) -> None:
        cause = f"{incident.id}:{event}:{clock}{mark}"
        if cause in self._seen:
            return
        self._seen.add(cause)
        wanted = [c for c in self.channels if _wants(c, event, incident.service, incident.severity)]
        document: dict[str, Any] = {
            "event": event,
            "at": format_utc(now),
            "incident": incident_json(incident),
            "clock": clock,
            "clocks": {name: state.to_json() for name, state in states.items()},
            "links": links(self.base_url, incident.id),
            "escalation": _escalation(incident),
        }
        self._queued.extend(_note(document, c.name, cause, incident.id, now) for c in wanted)

    def forget(self, incident_ids: Iterable[str]) -> None:
        """Drop the clock memory of incidents no longer open (it only saves work)."""
        gone = {f"{i}:" for i in incident_ids}
        self._seen = {s for s in self._seen if not any(s.startswith(g) for g in gone)}

    # -- prober health (called by the daemon as it learns) --------------------------

    def prober_health(
        self,
        check: str,
        *,
        healthy: bool,
        now: float,
        detail: str = "",
        service: str | None = None,
        target: str | None = None,
    ) -> None:
        """Queue ``prober_unhealthy`` when a check turns unhealthy (once until it recovers).

        ``check`` names what is judged, e.g. ``misconfigured:sparkpost/send`` or
        ``launch_lag``; it recovers when a later report says healthy.
        """
        state = self._health.setdefault(check, _Health())
        if healthy or state.unhealthy:
            state.unhealthy = not healthy
            return
        state.unhealthy = True
        event: NotifyEvent = "prober_unhealthy"
        wanted = [c for c in self.channels if _wants(c, event, service, None)]
        document: dict[str, Any] = {
            "event": event,
            "at": format_utc(now),
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
        self._queued.extend(_note(document, c.name, cause, None, now) for c in wanted)

    # -- handing over to the store --------------------------------------------------

    def take(self) -> list[Notification]:
        """The queued clock and prober notifications (emptied)."""
        queued, self._queued = self._queued, []
        return queued

    def fill(self, batch: Batch) -> Batch:
        """Attach the rules and the queued notifications to a batch about to be committed."""
        batch.notify = self
        batch.notifications.extend(self.take())
        return batch


def _clocks(
    incident: Incident, events: Sequence[EventRecord], now: float
) -> tuple[dict[str, Any], str]:
    try:
        states = incident_clocks(incident, events, now)
    except ValueError as exc:
        # A policy that no longer resolves still notifies, saying why there are no clocks.
        return {}, str(exc)
    return {name: state.to_json() for name, state in states.items()}, ""


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


# -- payloads ------------------------------------------------------------------------


def webhook_body(note: Notification, *, sent_at: float) -> dict[str, Any]:
    """The generic webhook JSON of DESIGN.md §10: the document stamped with ``sent_at``."""
    return {**note.document, "sent_at": format_utc(sent_at)}


def headline(document: Mapping[str, Any]) -> str:
    """One line naming the event, the service, the provider's severity and the incident."""
    event = str(document["event"])
    what = _HEADLINES.get(event, event)
    incident = document.get("incident")
    if incident is None:
        prober = document.get("prober") or {}
        where = "/".join(str(x) for x in (prober.get("service"), prober.get("target")) if x)
        return f"[slawatch] {what}: {prober.get('check')}" + (f" ({where})" if where else "")
    clock = f" {document['clock']}" if document.get("clock") else ""
    return (
        f"[slawatch] {incident['service']}: {what}{clock} ({incident['provider_severity']}, "
        f"severity {incident['severity']}) incident {incident['id']}"
    )


def detail_lines(document: Mapping[str, Any]) -> list[str]:
    """The essentials as short lines: times, clocks, escalation, links."""
    incident = document.get("incident")
    if incident is None:
        prober = document.get("prober") or {}
        return [
            f"Prober: {prober.get('id') or '-'}",
            f"Check: {prober.get('check')}",
            f"Detail: {prober.get('detail') or '-'}",
            f"At: {document['at']}",
        ]
    lines = [
        f"Service: {incident['service']}",
        f"Severity: {incident['provider_severity']} (level {incident['severity']})",
        f"State: {incident['state']}",
        f"Started: {incident['started_at']}",
        f"Detected: {incident['detected_at']}",
        f"Restored: {incident['restored_at'] or 'not yet'}",
    ]
    for name, clock in (document.get("clocks") or {}).items():
        lines.append(
            f"Clock {name}: {clock['state']}, deadline {clock['deadline'] or 'none'}"
            f" (target {clock['target'] or 'tracked'})"
        )
    if document["event"] == "clock_breached":
        path = document.get("escalation")
        lines.append(f"Escalate now{': ' + path if path else ''}.")
    lines_links = document.get("links") or {}
    lines.append(f"Incident: {lines_links.get('incident')}")
    lines.append(f"Evidence: {lines_links.get('evidence')}")
    return lines


def slack_body(note: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message: a fallback text and blocks with the essentials."""
    document = note.document
    title = headline(document)
    lines = detail_lines(document)
    fields = [{"type": "mrkdwn", "text": line} for line in lines[:10]]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "fields": fields},
    ]
    incident_links = document.get("links") or {}
    if incident_links.get("incident"):
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"<{incident_links['incident']}|incident> · "
                        f"<{incident_links['evidence']}|evidence> · key {note.key}",
                    }
                ],
            }
        )
    return {"text": title, "blocks": blocks}


def pagerduty_body(note: Notification, *, routing_key: str, sent_at: float) -> dict[str, Any]:
    """A PagerDuty Events API v2 event; one ``dedup_key`` per incident (or prober check)."""
    document = note.document
    incident = document.get("incident")
    action = PAGERDUTY_ACTION.get(note.event, "trigger")
    if incident is None:
        prober = document.get("prober") or {}
        dedup = f"slawatch/prober/{prober.get('id')}/{prober.get('check')}"
        severity, source, component = "warning", str(prober.get("id") or "slawatch"), None
    else:
        dedup = f"slawatch/{incident['id']}"
        severity = PAGERDUTY_SEVERITY.get(int(incident["severity"]), "error")
        source, component = str(incident["service"]), str(incident["service"])
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup,
    }
    if action != "trigger":
        return body
    payload: dict[str, Any] = {
        "summary": headline(document)[:1024],
        "source": source,
        "severity": severity,
        "timestamp": format_utc(sent_at),
        "class": note.event,
        "custom_details": {**document, "sent_at": format_utc(sent_at)},
    }
    if component is not None:
        payload["component"] = component
    body["payload"] = payload
    page_links = document.get("links") or {}
    body["links"] = [
        {"href": href, "text": name} for name, href in sorted(page_links.items()) if href
    ]
    body["client"] = "slawatch"
    return body


def alertmanager_body(note: Notification, *, sent_at: float) -> list[dict[str, Any]]:
    """Alerts for ``POST /api/v2/alerts``: firing while the incident is, resolved after."""
    document = note.document
    incident = document.get("incident")
    now = format_utc(sent_at)
    hold = format_utc(sent_at + ALERT_HOLD_S)
    annotations = {
        "summary": headline(document),
        "description": "\n".join(detail_lines(document)),
        "idempotency_key": note.key,
    }
    if incident is None:
        prober = document.get("prober") or {}
        labels = {
            "alertname": "SlawatchProberUnhealthy",
            "prober": str(prober.get("id") or ""),
            "check": str(prober.get("check") or ""),
        }
        return [{"labels": labels, "annotations": annotations, "startsAt": now, "endsAt": hold}]
    base = {
        "alertname": "SlawatchIncident",
        "service": str(incident["service"]),
        "incident": str(incident["id"]),
    }
    page = (document.get("links") or {}).get("incident")
    over = note.event in ("restored", "resolved")
    alert: dict[str, Any] = {
        "labels": {
            **base,
            "severity": str(incident["severity"]),
            "provider_severity": str(incident["provider_severity"]),
        },
        "annotations": {
            **annotations,
            "evidence": str((document.get("links") or {}).get("evidence")),
        },
        "startsAt": str(incident["detected_at"]),
        "endsAt": now if over else hold,
    }
    if page:
        alert["generatorURL"] = page
    alerts = [alert]
    previous = document.get("previous_severity")
    if previous is not None and previous != incident["severity"]:
        # The label set of the old severity is another alert: resolve it.
        alerts.append(
            {
                "labels": {
                    **base,
                    "severity": str(previous),
                    "provider_severity": str(document.get("previous_provider_severity", "")),
                },
                "annotations": annotations,
                "startsAt": str(incident["detected_at"]),
                "endsAt": now,
            }
        )
    for name in document.get("clocks") or {}:
        clock_alert = {
            "labels": {**base, "alertname": "SlawatchSlaClock", "clock": name},
            "annotations": annotations,
            "startsAt": now,
        }
        if over:
            alerts.append({**clock_alert, "endsAt": now})
        elif document.get("clock") == name:
            alerts.append({**clock_alert, "endsAt": hold})
    return alerts


def email_subject(note: Notification, *, ticket_draft: bool) -> str:
    """The subject; a ticket draft leads with the provider's own severity name."""
    document = note.document
    incident = document.get("incident")
    if not ticket_draft or incident is None:
        return headline(document)
    return (
        f"{incident['provider_severity']}: {incident['service']} unavailable since "
        f"{incident['started_at']} (incident {incident['id']})"
    )


def email_text(note: Notification) -> str:
    """The plain-text body of an ordinary notification e-mail."""
    return "\n".join([headline(note.document), "", *detail_lines(note.document), ""])


def is_ticket_draft(note: Notification) -> bool:
    """Whether a ``ticket_draft`` channel sends this one as a ticket draft (incident raised)."""
    return note.incident is not None and note.event in ("opened", "upgraded", "reopened")
