"""The incident page (``/incidents/{id}``): facts, timeline, clocks, events, failures, a form.

Rendered from :func:`slawatch.pagedata.incident_document` (the incident's API view plus one
hour of its timeline and its sample failures). The page's script polls the incident's API
and re-renders the clocks and events; its form posts events to the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from config.timetext import format_time
from incidents.evidence import FORMATS
from slawatch.pagekit import esc, layout, legend, pager, path_segment, timelines

# The provider events the form records (severity changes stay with the CLI and the API).
FORM_KINDS = {
    "ticket_opened": "ticket opened (give its id or URL)",
    "provider_responded": "provider responded",
    "provider_updated": "provider updated",
    "awaiting_customer": "awaiting customer",
    "customer_replied": "customer replied",
    "resolved": "resolved",
}
_FACTS = (
    ("service", "service"),
    ("state", "state"),
    ("severity", "severity"),
    ("provider_severity", "provider severity"),
    ("started_at", "started (first bad second)"),
    ("detected_at", "detected"),
    ("restored_at", "restored"),
    ("resolved_at", "resolved"),
    ("ticket", "ticket"),
    ("ticket_opened_at", "ticket opened"),
)


def _facts(incident: Mapping[str, Any]) -> str:
    rows = "".join(
        f'<dt>{escape(label)}</dt><dd data-fact="{key}">{esc(incident.get(key))}</dd>'
        for key, label in _FACTS
    )
    sla = incident.get("sla") or {}
    rows += (
        f"<dt>channels</dt><dd>{esc(', '.join(incident.get('channels') or []))}</dd>"
        f"<dt>SLA policy</dt><dd>{esc(sla.get('policy'))} "
        f"(calendar {esc(sla.get('calendar'))})</dd>"
    )
    return f'<dl class="facts">{rows}</dl>'


def _clocks(incident: Mapping[str, Any], now: float) -> str:
    rows = []
    for name, clock in (incident.get("clocks") or {}).items():
        state = str(clock.get("state", ""))
        deadline = clock.get("deadline_epoch")
        if state == "running" and deadline is not None:
            left = (
                f'<span data-deadline="{float(deadline):.0f}">{int(float(deadline) - now)}s</span>'
            )
        else:
            breaches = int(clock.get("breaches") or 0)
            left = f"{breaches} breach(es)" if breaches else "—"
        local = clock.get("deadline_local")
        zoned = f"{local} ({clock.get('time_zone')})" if local else None
        rows.append(
            f'<tr data-clock="{escape(name)}" data-state="{escape(state)}">'
            f'<td>{escape(name)}</td><td class="{escape(state)}">{escape(state)}</td>'
            f"<td>{esc(clock.get('target') or 'tracked, no target')}</td>"
            f"<td>{esc(clock.get('deadline'))}</td>"
            f"<td>{esc(zoned)}</td>"
            f"<td>{left}</td></tr>"
        )
    empty = esc(incident.get("clocks_error") or "no SLA clocks")
    body = "".join(rows) or f'<tr><td colspan="6" class="muted">{empty}</td></tr>'
    return (
        '<div class="scroll"><table id="clocks"><thead><tr><th>clock</th><th>state</th>'
        "<th>target</th><th>deadline (UTC)</th><th>deadline (policy calendar)</th>"
        f"<th>remaining</th></tr></thead><tbody>{body}</tbody></table></div>"
    )


def _event_text(event: Mapping[str, Any]) -> str:
    text = f"{event.get('at')} {event.get('kind')} ({event.get('source')})"
    if event.get("severity"):
        text += f" severity {event['severity']}"
    if event.get("ticket"):
        text += f" ticket {event['ticket']}"
    if event.get("next_update_at"):
        text += f" next update by {event['next_update_at']}"
    if event.get("note"):
        text += f": {event['note']}"
    return text


def _events(incident: Mapping[str, Any]) -> str:
    items = "".join(
        f'<li data-kind="{esc(e.get("kind"))}">{escape(_event_text(e))}</li>'
        for e in incident.get("events") or []
    )
    changes = "".join(
        f"<tr><td>{esc(c.get('at'))}</td><td>{esc(c.get('from'))}</td><td>{esc(c.get('to'))}</td>"
        f"<td>{esc(c.get('source'))}</td></tr>"
        for c in incident.get("severity_changes") or []
    )
    table = (
        '<div class="scroll"><table id="severity-changes"><thead><tr><th>at</th><th>from</th>'
        f"<th>to</th><th>by</th></tr></thead><tbody>{changes}</tbody></table></div>"
        if changes
        else '<p class="muted">No severity changes.</p>'
    )
    return (
        f'<h3>Severity changes</h3>{table}<h3>Events, in order</h3><ol class="events" '
        f'id="events">{items}</ol>'
    )


def _samples(incident: Mapping[str, Any]) -> str:
    samples: Sequence[Mapping[str, Any]] = incident.get("samples") or []
    if not samples:
        return '<p class="muted">No failed attempts were sampled in the window.</p>'
    rows = "".join(
        f"<tr><td>{esc(s.get('started_at'))}</td><td>{esc(s.get('channel'))}</td>"
        f'<td>{esc(s.get("target"))}</td><td class="wide">{esc(s.get("prober"))}</td>'
        f"<td>{esc(s.get('outcome'))}</td><td>{esc(s.get('detail'))}</td>"
        f"<td>{float(s.get('duration_s') or 0):.3f} s</td></tr>"
        for s in samples
    )
    total = int(incident.get("samples_total") or len(samples))
    return (
        f'<p class="small muted">The first {len(samples)} of {total} failed attempts; the '
        "evidence bundle holds them all.</p>"
        '<div class="scroll"><table id="samples"><thead><tr><th>time (UTC)</th><th>channel</th>'
        '<th>target</th><th class="wide">prober</th><th>outcome</th><th>detail</th>'
        f"<th>duration</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _downloads(ident: str) -> str:
    path = f"/api/v1/incidents/{path_segment(ident)}/evidence"
    links = "".join(
        f'<li><a href="{escape(path)}?format={fmt}" download="{escape(ident)}.{fmt}" '
        f'data-format="{fmt}">evidence as {fmt.upper()}</a></li>'
        for fmt in FORMATS
    )
    return f'<ul id="downloads">{links}</ul>'


def _form(incident: Mapping[str, Any]) -> str:
    writable = incident.get("writable") or {}
    if not writable.get("allowed"):
        return (
            '<p class="muted">Recording events is disabled here: the server listens on a '
            "non-loopback address without <code>server.token</code>.</p>"
        )
    ident = str(incident.get("id", ""))
    options = "".join(f'<option value="{k}">{escape(v)}</option>' for k, v in FORM_KINDS.items())
    token = (
        '<label>Bearer token (server.token)<input name="token" type="password" '
        'autocomplete="current-password" required></label>'
        if writable.get("token_required")
        else ""
    )
    return (
        f'<form id="event-form" class="event" method="post" '
        f'action="/api/v1/incidents/{escape(path_segment(ident))}/events">'
        f'<label>Event<select name="kind">{options}</select></label>'
        "<label>When (RFC 3339, e.g. 2026-11-21T10:05:00Z; empty: now)"
        '<input name="at" type="text" inputmode="text" placeholder="now"></label>'
        '<label>Ticket id or URL (ticket opened only)<input name="ticket" type="text"></label>'
        "<label>Promised next update (provider responded or updated; RFC 3339, optional)"
        '<input name="next_update_at" type="text"></label>'
        '<label>Note<textarea name="note" rows="2"></textarea></label>'
        f'{token}<button type="submit">Record event</button>'
        '<p id="event-result" class="alert" role="alert" aria-live="assertive"></p>'
        "</form><noscript><p>The form needs JavaScript; without it use "
        "<code>slawatch incidents event</code>.</p></noscript>"
    )


def render_incident_page(incident: Mapping[str, Any], *, now: float, version: str) -> str:
    """The HTML of one incident's page; every string from the store or config is escaped."""
    ident = str(incident.get("id", ""))
    timeline = incident["timeline"]
    hour, hours = int(timeline["hour"]), int(timeline["hours"])
    live = incident.get("state") == "open" and hour == hours
    link = f"/incidents/{path_segment(ident)}?hour={{page}}"
    # The script appends the seconds after the last shown only while they can still come.
    live_attr = f' data-live-timeline="{esc(incident.get("service"))}"' if live else ""
    content = (
        f'<h2 id="incident-title">Incident {escape(ident)}</h2>'
        f'<section class="card" aria-label="facts">{_facts(incident)}</section>'
        '<section aria-labelledby="h-clocks"><h2 id="h-clocks">SLA clocks</h2>'
        f"{_clocks(incident, now)}</section>"
        '<section aria-labelledby="h-timeline"><h2 id="h-timeline">Timeline</h2>'
        f'<p class="small muted">The incident window {esc(timeline["window_from"])} to '
        f"{esc(timeline['window_to'])}, an hour at a time: this is {esc(timeline['from'])} to "
        f"{esc(timeline['to'])}.</p>{legend()}{pager(hour, hours, link)}"
        f"<div{live_attr}>"
        f"{timelines(timeline, str(incident.get('service', '')))}</div></section>"
        '<section aria-labelledby="h-events"><h2 id="h-events">What happened</h2>'
        f"{_events(incident)}</section>"
        '<section aria-labelledby="h-samples"><h2 id="h-samples">Sample failures</h2>'
        f"{_samples(incident)}</section>"
        '<section aria-labelledby="h-evidence"><h2 id="h-evidence">Evidence</h2>'
        f"{_downloads(ident)}</section>"
        '<section aria-labelledby="h-record"><h2 id="h-record">Record a provider event</h2>'
        f"{_form(incident)}</section>"
    )
    return layout(
        f"slawatch incident {ident}",
        content,
        version=version,
        as_of=format_time(now, 0),
        attrs={"data-page": "incident", "data-incident": ident},
    )
