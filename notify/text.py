"""What a notification says in words: one headline and short detail lines, for every channel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    page_links = document.get("links") or {}
    lines.append(f"Incident: {page_links.get('incident')}")
    lines.append(f"Evidence: {page_links.get('evidence')}")
    return lines
