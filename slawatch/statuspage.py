"""The status page: one self-contained, self-refreshing HTML page rendered from the API's JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from config.timetext import format_time

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
.available{color:#17632a;font-weight:600}.unavailable{color:#a40000;font-weight:600}
.partial{color:#a35a00;font-weight:600}.no_data,.inconclusive,.unknown{color:#666}
.breached{color:#a40000;font-weight:600}.met{color:#17632a}
.sev1{background:#fde2e2}.sev2{background:#fff1d6}.sev3{background:#eef}
.muted{color:#666}
"""

# Counts every element with data-deadline down once a second; no external assets.
_SCRIPT = """
function tick(){var now=Date.now()/1000;
document.querySelectorAll('[data-deadline]').forEach(function(e){
var d=parseFloat(e.getAttribute('data-deadline'))-now,s=d<0?'-':'';d=Math.abs(Math.floor(d));
var h=Math.floor(d/3600),m=Math.floor(d%3600/60),x=d%60;
e.textContent=s+h+'h '+(m<10?'0':'')+m+'m '+(x<10?'0':'')+x+'s';});}
tick();setInterval(tick,1000);
"""


def _t(epoch: float | None) -> str:
    return format_time(epoch) if epoch is not None else "—"


def _clock_cells(clocks: Mapping[str, Any], now: float) -> str:
    if not clocks:
        return '<span class="muted">no SLA clocks</span>'
    parts = []
    for name, clock in clocks.items():
        state = str(clock.get("state", ""))
        deadline = clock.get("deadline_epoch")
        text = f'{escape(name)}: <span class="{escape(state)}">{escape(state)}</span>'
        if deadline is not None and state == "running":
            remaining = float(deadline) - now
            due = escape(_t(float(deadline)))
            text += (
                f' — due {due} (<span data-deadline="{float(deadline):.0f}">'
                f"{int(remaining)}s</span>)"
            )
        elif clock.get("deadline"):
            text += f" — deadline {escape(str(clock['deadline']))}"
        parts.append(text)
    return "<br>".join(parts)


def render_status_page(
    services: Sequence[Mapping[str, Any]],
    incidents: Sequence[Mapping[str, Any]],
    *,
    now: float,
    version: str,
    refresh_s: int = 10,
) -> str:
    """The HTML of the status page; every string from config or incidents is escaped."""
    rows = []
    for service in services:
        channels = service.get("channels", {})
        cells = []
        for channel, info in channels.items():
            verdict = str(info.get("verdict") or "unknown")
            streak = int(info.get("streak_s", 0))
            extra = f" ({streak}s)" if streak else ""
            label = f'<span class="{escape(verdict)}">{escape(verdict)}</span>'
            cells.append(f"{escape(channel)}: {label}{extra}")
        open_incident = service.get("open_incident")
        rows.append(
            "<tr>"
            f"<td>{escape(str(service.get('name', '')))}</td>"
            f"<td>{escape(str(service.get('environment', '')))}</td>"
            f"<td>{escape(str(service.get('policy') or '—'))}</td>"
            f"<td>{'<br>'.join(cells) or '—'}</td>"
            f"<td>{escape(str(open_incident)) if open_incident else '—'}</td>"
            "</tr>"
        )
    open_rows: list[str] = []
    past_rows: list[str] = []
    for incident in incidents:
        severity = int(incident.get("severity", 3))
        row = (
            f'<tr class="sev{severity}">'
            f"<td>{escape(str(incident.get('id', '')))}</td>"
            f"<td>{escape(str(incident.get('service', '')))}</td>"
            f"<td>{severity} — {escape(str(incident.get('provider_severity', '')))}</td>"
            f"<td>{escape(str(incident.get('state', '')))}</td>"
            f"<td>{escape(str(incident.get('started_at') or '—'))}</td>"
            f"<td>{escape(str(incident.get('restored_at') or '—'))}</td>"
            f"<td>{_clock_cells(incident.get('clocks') or {}, now)}</td>"
            "</tr>"
        )
        (open_rows if incident.get("state") == "open" else past_rows).append(row)
    head = (
        "<tr><th>incident</th><th>service</th><th>severity</th><th>state</th>"
        "<th>started</th><th>restored</th><th>SLA clocks</th></tr>"
    )
    none = '<tr><td colspan="7" class="muted">none</td></tr>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{int(refresh_s)}">'
        "<title>slawatch status</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>slawatch status</h1>"
        f'<p class="muted">as of {escape(_t(now))} · slawatch {escape(version)} · '
        '<a href="/metrics">metrics</a> · <a href="/api/v1/services">services API</a> · '
        '<a href="/api/v1/incidents">incidents API</a></p>'
        "<h2>Services</h2><table><tr><th>service</th><th>environment</th><th>policy</th>"
        "<th>last final second</th><th>open incident</th></tr>"
        f"{''.join(rows) or '<tr><td colspan=5 class=muted>no services</td></tr>'}</table>"
        f'<h2>Open incidents</h2><table id="open">{head}{"".join(open_rows) or none}</table>'
        f'<h2>Recent incidents</h2><table id="recent">{head}{"".join(past_rows) or none}</table>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
