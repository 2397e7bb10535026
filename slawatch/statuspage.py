"""The status page (``/``): services (an hour of seconds, 90 days, the month), incidents, probers.

Rendered from the documents of :mod:`slawatch.pagedata` (what ``/api/v1/status`` serves);
the page's script polls that endpoint and updates the page in place. Without JavaScript
the page is the same, only static.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from config.timetext import format_time
from slawatch.pagekit import (
    day_legend,
    esc,
    incident_table,
    layout,
    legend,
    pager,
    path_segment,
    timelines,
)


def _day_class(day: Mapping[str, Any], commitment: float | None) -> str:
    share = day.get("availability")
    if share is None:
        return "d-none"
    if share >= 1:
        return "d-full"
    return "d-missed" if commitment is not None and share * 100 < commitment else "d-met"


def _days(service: Mapping[str, Any]) -> str:
    days = service.get("days") or []
    if not days:
        return ""
    bars = "".join(
        f'<i class="{_day_class(day, service.get("commitment"))}" data-day="{esc(day["day"])}" '
        f'data-availability="{"" if day["availability"] is None else day["availability"]}" '
        f'title="{esc(day["day"])}: {esc(day["availability_text"])} '
        f'({int(day["unavailable"])} s unavailable of {int(day["observed"])} s observed)"></i>'
        for day in days
    )
    return (
        f'<div class="days" role="img" aria-label="daily availability, last {len(days)} days, '
        f'{esc(days[0]["day"])} to {esc(days[-1]["day"])}">{bars}</div>'
    )


def _month(service: Mapping[str, Any]) -> str:
    month = service.get("month")
    if not month:
        return ""
    combined = month["combined"]
    share = combined["availability"]
    commitment = month.get("commitment")
    text = (
        f'<p class="figures">{esc(month["month"])} by the contract: '
        f'<strong data-field="month" data-availability="{"" if share is None else share}">'
        f"{esc(month['availability_text'])}</strong> "
        f'<span class="muted" data-field="month-detail">({int(combined["unavailable"])} s '
        "unavailable of "
        f"{int(combined['observed'])} s judged)</span>"
    )
    if commitment is None:
        text += ' · <span class="muted">no commitment configured</span>'
    else:
        remaining = commitment["remaining_seconds"]
        state = "bad" if remaining is not None and remaining < 0 else "ok"
        text += (
            f" · commitment {float(commitment['percent']):g} % · error budget: "
            f'<span data-field="budget" class="{state}">{esc(remaining)} s of '
            f"{esc(commitment['budget_seconds'])} s left (used {esc(commitment['used_seconds'])} s)"
            "</span>"
        )
    return text + "</p>"


def _service(service: Mapping[str, Any]) -> str:
    name = str(service.get("name", ""))
    verdicts = []
    for channel, info in (service.get("channels") or {}).items():
        verdict = str(info.get("verdict") or "unknown")
        streak = int(info.get("streak_s", 0))
        extra = f" ({streak}s)" if streak else ""
        verdicts.append(
            f'{escape(channel)}: <span class="{escape(verdict)}" '
            f'data-last-verdict="{escape(channel)}">{escape(verdict)}</span>{extra}'
        )
    open_incident = service.get("open_incident")
    link = ""
    if open_incident:
        ident = str(open_incident)
        link = (
            f'open incident: <a href="/incidents/{escape(path_segment(ident))}">{escape(ident)}</a>'
        )
    timeline = service.get("timeline")
    return (
        f'<article class="service card" id="service-{escape(path_segment(name))}" '
        f'data-service="{escape(name)}">'
        f"<h3>{escape(name)} "
        f'<span class="muted small">{esc(service.get("environment"))} · '
        f"policy {esc(service.get('policy'))}</span></h3>"
        f'<p class="small">last final second: {" · ".join(verdicts) or "—"} '
        f'<span data-field="open-incident">{link}</span></p>'
        f"{_month(service)}{_days(service)}"
        f"{timelines(timeline, name) if timeline else ''}"
        "</article>"
    )


def _probers(probers: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for prober in probers:
        checks = "<br>".join(
            f'<span class="{"ok" if c["ok"] else "bad"}">{"ok" if c["ok"] else "failing"}</span> '
            f"{esc(c['name'])}: {esc(c['detail'])}"
            for c in prober.get("checks", [])
        )
        for item in prober.get("misconfigured", []):
            checks += f"<br>{esc(item['service'])}/{esc(item['target'])}: {esc(item['detail'])}"
        healthy = bool(prober.get("healthy"))
        own = " (this instance)" if prober.get("this_instance") else ""
        rows.append(
            f'<tr data-prober="{esc(prober.get("id"))}">'
            f"<td>{esc(prober.get('id'))}{own}</td>"
            f'<td class="{"ok" if healthy else "bad"}">{"healthy" if healthy else "unhealthy"}</td>'
            f"<td>{checks}</td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan="3" class="muted">none</td></tr>'
    return (
        '<div class="scroll"><table id="probers"><thead><tr><th>prober</th><th>health</th>'
        f"<th>checks</th></tr></thead><tbody>{body}</tbody></table></div>"
    )


def render_status_page(
    services: Sequence[Mapping[str, Any]],
    incidents: Sequence[Mapping[str, Any]],
    *,
    now: float,
    version: str,
    probers: Sequence[Mapping[str, Any]] = (),
    page: int = 1,
    pages: int = 1,
    services_total: int | None = None,
) -> str:
    """The HTML of the status page; every string from config or incidents is escaped.

    ``incidents`` holds the open incidents and the recent ones (told apart by state).
    """
    open_now = [i for i in incidents if i.get("state") == "open"]
    recent = [i for i in incidents if i.get("state") != "open"]
    total = len(services) if services_total is None else services_total
    content = (
        '<section aria-labelledby="h-open"><h2 id="h-open">Open incidents</h2>'
        f"{incident_table('open', open_now, now)}</section>"
        f'<section aria-labelledby="h-services"><h2 id="h-services">Services ({total})</h2>'
        '<p class="small muted">The last hour, one cell per second (a row per minute), per '
        "channel and combined by the contract's and/or; the bar above it is the last 90 days "
        "of daily availability.</p>"
        f"{legend()}{day_legend()}{pager(page, pages, '/?page={page}')}"
        + ("".join(_service(s) for s in services) or '<p class="muted">no services</p>')
        + f"{pager(page, pages, '/?page={page}')}</section>"
        '<section aria-labelledby="h-probers"><h2 id="h-probers">Probers</h2>'
        f"{_probers(probers)}</section>"
        '<section aria-labelledby="h-recent"><h2 id="h-recent">Recent incidents</h2>'
        f"{incident_table('recent', recent, now)}"
        '<p class="small"><a href="/reports">Every month\'s incidents and availability</a></p>'
        "</section>"
    )
    return layout(
        "slawatch status",
        content,
        version=version,
        as_of=format_time(now, 0),
        attrs={"data-page": "status", "data-poll": f"/api/v1/status?page={int(page)}"},
    )
