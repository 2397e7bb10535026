"""What every HTML page shares: the layout with its inlined style and script, legend, timelines.

The pages are self-contained (no external fonts, scripts or CDNs): the stylesheet and the
script are package files inlined into each page. Every string from the config, the store
or the API is escaped here or by the caller with :func:`esc`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from config.timetext import format_time
from incidents.evidence import COLOURS

# What each verdict means, for the legend (colour is never the only carrier).
VERDICT_MEANING = {
    "available": "available: no attempt failed by a cause that counts",
    "partial": "partial: some attempts failed, not all (not Unavailability)",
    "unavailable": "unavailable: every attempt failed by a timeout or internal error",
    "inconclusive": "inconclusive: the prober's own network was down",
    "no_data": "no data: no attempt was judged in this second",
}
# Daily bars: a whole day available, at or above the commitment, below it, nothing observed.
DAY_COLOURS = {"d-full": "#2ca02c", "d-met": "#98d98e", "d-missed": "#d62728", "d-none": "#c7c7c7"}
DAY_MEANING = {
    "d-full": "100 % available",
    "d-met": "at or above the commitment",
    "d-missed": "below the commitment",
    "d-none": "nothing observed",
}
_STATIC = files("slawatch") / "static"
STYLE = (
    (_STATIC / "pages.css").read_text(encoding="utf-8")
    + "".join(
        f"[data-verdict={name}],[data-legend={name}]{{background:{colour}}}"
        for name, colour in COLOURS.items()
    )
    + "".join(f".{name}{{background:{colour}}}" for name, colour in DAY_COLOURS.items())
)
SCRIPT = (_STATIC / "pages.js").read_text(encoding="utf-8")


def esc(value: object) -> str:
    """Text for HTML content or a quoted attribute value; None shows as a dash."""
    return "—" if value is None or value == "" else escape(str(value))


def layout(
    title: str,
    content: str,
    *,
    version: str,
    as_of: str,
    attrs: Mapping[str, str] | None = None,
) -> str:
    """A whole page: header with navigation, the content, the inlined style and script."""
    body_attrs = "".join(f' {escape(k)}="{escape(v)}"' for k, v in (attrs or {}).items())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body{body_attrs}>"
        '<a class="skip" href="#main">Skip to content</a>'
        '<header class="top"><h1>slawatch</h1><nav aria-label="pages">'
        '<a href="/">Status</a><a href="/reports">Reports</a>'
        '<a href="/metrics">Metrics</a><a href="/api/v1/status">API</a></nav>'
        f'<span class="small">as of <span id="as-of">{escape(as_of)}</span> · '
        f"slawatch {escape(version)}</span></header>"
        f'<main id="main">{content}</main>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def legend() -> str:
    """The verdict legend: a swatch and the meaning of every colour."""
    items = "".join(
        f'<li><i data-legend="{name}" aria-hidden="true"></i> {escape(text)}</li>'
        for name, text in VERDICT_MEANING.items()
    )
    return f'<ul class="legend" aria-label="timeline legend">{items}</ul>'


def day_legend() -> str:
    """The legend of the daily-availability bars."""
    items = "".join(
        f'<li><i class="{name}" aria-hidden="true"></i> {escape(text)}</li>'
        for name, text in DAY_MEANING.items()
    )
    return f'<ul class="legend" aria-label="daily bar legend">{items}</ul>'


def timeline_grid(timeline: Mapping[str, Any], channel: str, *, label: str) -> str:
    """One channel's per-second grid: a row per minute (newest first), a cell per second.

    Every cell carries ``data-verdict``, ``data-second`` (RFC 3339) and a title, so the
    grid reads without its colours; the grid's ``data-last`` is the last second shown
    (the page script appends the seconds after it). An hour is 3,600 cells: the text of
    each minute is formatted once, not per cell.
    """
    minutes: dict[int, list[str]] = {}
    last: int | None = None
    for span in timeline["channels"].get(channel, []):
        verdict = escape(str(span["verdict"]))
        first = int(span["first"])
        for second in range(first, first + int(span["seconds"])):
            minute = second - second % 60
            cells = minutes.get(minute)
            if cells is None:
                cells = minutes[minute] = []
                stamp = format_time(minute)
                day, clock = stamp[:17], stamp[11:17]
            offset = second - minute
            cells.append(
                f'<i data-verdict="{verdict}" data-second="{day}{offset:02d}Z" '
                f'title="{clock}{offset:02d} UTC {verdict}"></i>'
            )
            last = second
    # The newest minute on top, where a person looks first.
    rows = [
        f'<div class="tl-row" data-minute="{minute}">'
        f"<b>{format_time(minute)[11:16] if minute % 600 == 0 else ''}</b>"
        f"<span>{''.join(cells)}</span></div>"
        for minute, cells in sorted(minutes.items(), reverse=True)
    ]
    shown = "" if last is None else str(last)
    return (
        f'<figure class="tl-wrap"><figcaption>{escape(label)}</figcaption>'
        f'<div class="tl" data-channel="{escape(channel)}" data-last="{shown}"'
        f' role="group" aria-label="{escape(label)}: one cell per second, '
        f'{esc(timeline.get("from"))} to {esc(timeline.get("to"))}">'
        f"{''.join(rows)}</div></figure>"
    )


def timelines(timeline: Mapping[str, Any], name: str) -> str:
    """The grids of every channel of a timeline, ``combined`` first."""
    return (
        '<div class="timelines">'
        + "".join(
            timeline_grid(timeline, channel, label=f"{name} — {channel}")
            for channel in timeline["channels"]
        )
        + "</div>"
    )


def clock_cells(clocks: Mapping[str, Any], now: float) -> str:
    """The clocks of an incident in one table cell, running ones counting down."""
    if not clocks:
        return '<span class="muted">no SLA clocks</span>'
    parts = []
    for name, clock in clocks.items():
        state = str(clock.get("state", ""))
        deadline = clock.get("deadline_epoch")
        text = f'{escape(name)}: <span class="{escape(state)}">{escape(state)}</span>'
        if deadline is not None and state == "running":
            remaining = float(deadline) - now
            due = escape(format_time(float(deadline)))
            text += (
                f' — due {due} (<span data-deadline="{float(deadline):.0f}">'
                f"{int(remaining)}s</span>)"
            )
        elif clock.get("deadline"):
            text += f" — deadline {escape(str(clock['deadline']))}"
        parts.append(text)
    return "<br>".join(parts)


def incident_rows(incidents: Sequence[Mapping[str, Any]], now: float) -> str:
    """Table rows of incidents, each linked to its page."""
    rows = []
    for incident in incidents:
        severity = int(incident.get("severity", 3))
        ident = str(incident.get("id", ""))
        rows.append(
            f'<tr class="sev{severity}" data-incident="{escape(ident)}">'
            f'<td data-label="incident"><a href="/incidents/{escape(path_segment(ident))}">'
            f"{escape(ident)}</a></td>"
            f'<td data-label="service">{esc(incident.get("service"))}</td>'
            f'<td data-label="severity">{severity} — {esc(incident.get("provider_severity"))}</td>'
            f'<td data-label="state">{esc(incident.get("state"))}</td>'
            f'<td data-label="started">{esc(incident.get("started_at"))}</td>'
            f'<td class="wide" data-label="restored">{esc(incident.get("restored_at"))}</td>'
            f'<td data-label="SLA clocks">{clock_cells(incident.get("clocks") or {}, now)}</td>'
            "</tr>"
        )
    return "".join(rows)


INCIDENT_HEAD = (
    "<thead><tr><th>incident</th><th>service</th><th>severity</th><th>state</th>"
    '<th>started</th><th class="wide">restored</th><th>SLA clocks</th></tr></thead>'
)


def incident_table(table_id: str, incidents: Sequence[Mapping[str, Any]], now: float) -> str:
    """A table of incidents (``none`` when empty)."""
    rows = incident_rows(incidents, now) or '<tr><td colspan="7" class="muted">none</td></tr>'
    return (
        f'<div class="scroll"><table class="stack" id="{escape(table_id)}">{INCIDENT_HEAD}'
        f"<tbody>{rows}</tbody></table></div>"
    )


def pager(page: int, count: int, link: str) -> str:
    """Previous/next links of a paginated list; ``link`` has ``{page}`` where the number goes."""
    if count <= 1:
        return ""
    parts = []
    if page > 1:
        parts.append(f'<a href="{escape(link.format(page=page - 1))}" rel="prev">previous</a>')
    parts.append(f"<span>page {page} of {count}</span>")
    if page < count:
        parts.append(f'<a href="{escape(link.format(page=page + 1))}" rel="next">next</a>')
    return f'<nav class="pager" aria-label="pages">{"".join(parts)}</nav>'


def path_segment(text: str) -> str:
    """A URL path segment, percent-encoded (names and ids come from config and the store)."""
    return quote(text, safe="")
