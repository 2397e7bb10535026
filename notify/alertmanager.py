"""The Alertmanager channel (``type: alertmanager``): alerts firing while the incident is."""

from __future__ import annotations

from typing import Any

from config.model import AlertmanagerNotify
from config.timetext import format_time
from incidents.outbox import Notification
from notify.sender import HttpSender, Sender, SenderContext
from notify.text import detail_lines, headline

# Alertmanager resolves an alert nobody re-sends after its resolve_timeout; slawatch sends
# each event once, so firing alerts say for how long they hold (refreshed by later events).
ALERT_HOLD_S = 86_400.0


def alertmanager_body(note: Notification, *, sent_at: float) -> list[dict[str, Any]]:
    """Alerts for ``POST /api/v2/alerts``: firing while the incident is, resolved after."""
    document = note.document
    incident = document.get("incident")
    now = format_time(sent_at)
    hold = format_time(sent_at + ALERT_HOLD_S)
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


def make_sender(channel: AlertmanagerNotify, context: SenderContext) -> Sender:
    """POST alerts to ``/api/v2/alerts`` under the channel's URL."""
    url = channel.url.rstrip("/")
    if not url.endswith("/api/v2/alerts"):
        url += "/api/v2/alerts"
    return HttpSender(
        url,
        lambda note, at: alertmanager_body(note, sent_at=at),
        context=context,
        timeout=channel.timeout,
    )
