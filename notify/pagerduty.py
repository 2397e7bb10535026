"""The PagerDuty channel (``type: pagerduty``): Events API v2, one dedup key per incident."""

from __future__ import annotations

from typing import Any

from config.model import PagerDutyNotify
from config.timetext import format_time
from incidents.outbox import Notification
from notify.sender import HttpSender, Sender, SenderContext
from notify.text import headline

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
        "timestamp": format_time(sent_at),
        "class": note.event,
        "custom_details": {**document, "sent_at": format_time(sent_at)},
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


def make_sender(channel: PagerDutyNotify, context: SenderContext) -> Sender:
    """POST events to the Events API URL with the channel's routing key."""
    key = channel.routing_key.get_secret_value()
    return HttpSender(
        channel.url,
        lambda note, at: pagerduty_body(note, routing_key=key, sent_at=at),
        context=context,
        timeout=channel.timeout,
    )
