"""What the pages show, as JSON: the same documents the API serves and the pages' scripts poll.

Every figure comes from one home: timelines from the store's runs (:mod:`incidents.timeline`),
availability from :mod:`incidents.report` (what ``slawatch report`` prints), incidents
through :func:`incidents.view.incident_view`, live open incidents from the daemon's
event-log follower, the last verdict per channel from its board. The HTML renderers
take these documents and nothing else, so a page cannot show what the API does not say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from classifier.verdict import COMBINED
from config.model import ServiceConfig
from config.timetext import format_time, parse_time
from incidents.evidence import MAX_LISTED_SAMPLES, sample_json
from incidents.lifecycle import fold
from incidents.model import Incident
from incidents.report import (
    DAY_S,
    Report,
    ReportError,
    build_report,
    daily,
    figures_for,
    month_range,
    overlaps,
    percent_text,
)
from incidents.store import IncidentStore, StoreError
from incidents.timeline import spans
from incidents.view import incident_view
from probe.attempt import Outcome
from slawatch import __version__
from slawatch.daemon import Daemon
from slawatch.server import is_loopback
from slawatch.status import HEALTHY_LAG_S

# Services per status page (timelines are an hour of cells each: bounded per page).
SERVICES_PER_PAGE = 5
# Incidents per page of a list (recent incidents, a month's incidents).
INCIDENTS_PER_PAGE = 50
# Recent (no longer open) incidents on the status page.
RECENT_SHOWN = 20
# Open incidents shown on the status page (more are a paginated list away).
OPEN_SHOWN = 100
# The status timeline: this many minute rows, the last one the current minute.
WINDOW_MINUTES = 60
# Days of the daily-availability bar.
DAYS = 90
# The longest timeline the API returns in one answer (six hours of cells).
MAX_TIMELINE_S = 6 * 3600
# Months of the reports page's month-by-month table.
REPORT_MONTHS = 6


class PageError(ValueError):
    """A query parameter that cannot be used; the message names it (the API answers 400)."""


def page_number(text: str | None) -> int:
    """A ``?page=`` value (1 when absent); PageError unless a positive integer."""
    if text is None:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise PageError(f"page must be a positive integer, got {text!r}")
    return int(text)


def pages(total: int, per_page: int) -> int:
    """How many pages ``total`` items fill (at least one, even when empty)."""
    return max(1, math.ceil(total / per_page))


def status_window(last_second: int) -> tuple[int, int]:
    """[first, end) of the status timeline: whole minutes up to the last final second."""
    return (last_second // 60 - (WINDOW_MINUTES - 1)) * 60, last_second + 1


def month_of(epoch: float) -> str:
    """The UTC month holding ``epoch``, as ``YYYY-MM``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m")


def months_before(month: str, count: int) -> list[str]:
    """``month`` and the ``count - 1`` months before it, newest first."""
    year, number = (int(part) for part in month.split("-"))
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{number:02d}")
        year, number = (year, number - 1) if number > 1 else (year - 1, 12)
    return out


def service_json(daemon: Daemon, service: ServiceConfig) -> dict[str, Any]:
    """One service's configuration facts, last final verdict per channel and open incident."""
    channels = daemon.status.of(service.name)
    open_ids = [
        kept.incident.id
        for kept in daemon.follower.open.values()
        if kept.incident.service == service.name
    ]
    return {
        "name": service.name,
        "environment": service.environment,
        "policy": service.sla.policy,
        "calendar": service.sla.calendar,
        "channels": {
            name: {
                "verdict": status.verdict,
                "second": None if status.second is None else format_time(status.second),
                "streak_s": status.streak,
            }
            for name, status in channels.items()
        },
        "open_incident": open_ids[-1] if open_ids else None,
    }


def _store(daemon: Daemon) -> IncidentStore:
    store = daemon.store
    if store is None:
        raise StoreError("the store is not open")
    return store


def _channels(daemon: Daemon, service: str) -> list[str]:
    """The service's channels, ``combined`` first (the board knows the configured ones)."""
    names = [c for c in daemon.status.of(service) if c != COMBINED]
    return [COMBINED, *sorted(names)]


def last_second(daemon: Daemon, service: str, now: float) -> int:
    """The service's last final second (the second before now when it has none yet)."""
    second = daemon.status.of(service).get(COMBINED)
    if second is not None and second.second is not None:
        return second.second
    return math.floor(now) - 1


def timeline_json(
    runs: Sequence[Any], channels: Sequence[str], first: int, end: int
) -> dict[str, Any]:
    """The spans of every channel over [first, end), as the API shows a timeline."""
    return {
        "from": format_time(first),
        "to": format_time(end),
        "first": first,
        "end": end,
        "channels": {c: [s.to_json() for s in spans(runs, c, first, end)] for c in channels},
    }


async def timeline(daemon: Daemon, service: str, first: int, end: int) -> dict[str, Any]:
    """A service's per-second timeline over [first, end) from its stored runs."""
    store = _store(daemon)
    runs = await daemon.read(store.runs, service, None, first, end - 1)
    body = timeline_json(runs, _channels(daemon, service), first, end)
    return {"service": service, **body}


async def service_status(
    daemon: Daemon, service: ServiceConfig, now: float, *, since: int | None = None
) -> dict[str, Any]:
    """One service as the status page shows it: last verdicts, timeline, month, daily bars.

    ``since`` (epoch seconds) limits the timeline to the seconds after it: what a page
    that already shows the earlier ones needs.
    """
    store = _store(daemon)
    first, end = status_window(last_second(daemon, service.name, now))
    shown_from = first if since is None else min(end, max(first, since + 1))
    month = month_of(now)
    month_start, month_end = month_range(month)
    first_day = int(now // DAY_S * DAY_S) - (DAYS - 1) * DAY_S
    # The timeline needs every channel for a few minutes or an hour; the month and the days
    # only the service's own (combined) runs, over months.
    runs = await daemon.read(store.runs, service.name, None, shown_from, end - 1)
    earliest = min(month_start, first_day)
    combined = await daemon.read(
        store.runs, service.name, COMBINED, earliest, max(end, month_end) - 1
    )
    report = build_report(
        service.name,
        combined,
        [],
        start=month_start,
        end=month_end,
        commitment=service.sla.commitment,
    )
    body = service_json(daemon, service)
    body["commitment"] = service.sla.commitment
    body["timeline"] = {
        **timeline_json(runs, _channels(daemon, service.name), shown_from, end),
        "window_from": format_time(first),
        "window_first": first,
    }
    body["month"] = {"month": month, **month_json(report)}
    body["days"] = [
        {
            "day": format_time(first_day + index * DAY_S)[:10],
            "availability": figures.ratio,
            "availability_text": percent_text(figures.availability),
            "observed": figures.observed,
            "unavailable": figures.unavailable,
        }
        for index, figures in enumerate(daily(combined, COMBINED, first_day, DAYS))
    ]
    return body


def open_incidents(daemon: Daemon, now: float) -> list[dict[str, Any]]:
    """The open incidents as the event-log follower derives them, newest first, with clocks."""
    kept = sorted(
        daemon.follower.open.values(),
        key=lambda item: (item.incident.started_at, item.incident.id),
        reverse=True,
    )
    base = daemon.loaded.config.server.base_url
    return [incident_view(k.incident, k.events, now, base_url=base) for k in kept[:OPEN_SHOWN]]


def probers(daemon: Daemon, now: float) -> list[dict[str, Any]]:
    """The probers and their health: this instance's row, and in a fleet every other member's."""
    health = daemon.health
    config = daemon.loaded.config
    targets = {(s.name, t.name) for s in config.services for t in s.api} | {
        (s.name, t.name) for s in config.services for t in s.smtp
    }
    misconfigured = [
        {"service": service, "target": target, "detail": detail}
        for (service, target), detail in sorted(health.misconfigured.items())
        if (service, target) in targets
    ]
    ticking = bool(health.last_tick) and now - health.last_tick <= 5
    checks = [
        {
            "name": "launch_lag",
            "ok": health.last_lag <= HEALTHY_LAG_S,
            "detail": f"{health.last_lag:.3f} s (healthy up to {HEALTHY_LAG_S:g} s)",
        },
        {
            "name": "ticking",
            "ok": ticking,
            "detail": "last tick "
            + (format_time(health.last_tick, 0) if health.last_tick else "not yet"),
        },
        {
            "name": "store_writable",
            "ok": health.store_open and health.store_writable,
            "detail": daemon.loaded.redact(health.store_error) or "ok",
        },
        {
            "name": "targets",
            "ok": not misconfigured,
            "detail": f"{len(targets)} configured, {len(misconfigured)} misconfigured",
        },
    ]
    fleet = daemon.fleet
    if fleet is not None:
        checks.append(_clock_check(fleet.clock_offset, config.cluster.max_clock_offset))
    own = {
        "id": config.prober.id,
        "this_instance": True,
        "healthy": all(check["ok"] for check in checks),
        "last_tick": format_time(health.last_tick, 0) if health.last_tick else None,
        "launch_lag_s": round(health.last_lag, 3),
        "checks": checks,
        "misconfigured": misconfigured,
    }
    if fleet is None:
        return [own]
    own["group"] = config.prober.group
    others = []
    for member in fleet.probers:
        if member.id == config.prober.id:
            continue
        member_checks = [
            {
                "name": "heartbeat",
                "ok": member.live,
                "detail": f"{member.heartbeat_age_s:.1f} s ago, group {member.group}",
            },
            _clock_check(member.clock_offset_s, config.cluster.max_clock_offset),
        ]
        others.append(
            {
                "id": member.id,
                "this_instance": False,
                "group": member.group,
                "healthy": all(check["ok"] for check in member_checks),
                "checks": member_checks,
                "misconfigured": [],
            }
        )
    return [own, *others]


def _clock_check(offset: float | None, limit: float) -> dict[str, Any]:
    """A fleet member's clock offset to the database, judged against ``max_clock_offset``."""
    if offset is None:
        return {"name": "clock_offset", "ok": True, "detail": "not measured yet"}
    return {
        "name": "clock_offset",
        "ok": abs(offset) <= limit,
        "detail": f"{offset:+.3f} s to the database (set aside beyond {limit:g} s)",
    }


async def status_document(
    daemon: Daemon, now: float, *, page: int = 1, since: int | None = None
) -> dict[str, Any]:
    """What the status page shows and polls: a page of services, open incidents, probers."""
    services = daemon.loaded.config.services
    count = pages(len(services), SERVICES_PER_PAGE)
    if page > count:
        raise PageError(f"page {page} is past the last page ({count})")
    shown = services[(page - 1) * SERVICES_PER_PAGE : page * SERVICES_PER_PAGE]
    return {
        "as_of": format_time(now),
        "as_of_epoch": now,
        "version": __version__,
        "page": page,
        "pages": count,
        "per_page": SERVICES_PER_PAGE,
        "services_total": len(services),
        "services": [await service_status(daemon, s, now, since=since) for s in shown],
        "open_incidents": open_incidents(daemon, now),
        "probers": probers(daemon, now),
    }


def sort_newest(found: Sequence[Incident]) -> list[Incident]:
    """Incidents newest first (the store lists the oldest first)."""
    return sorted(found, key=lambda item: (item.started_at, item.id), reverse=True)


async def incident_views(
    daemon: Daemon, found: Sequence[Incident], now: float
) -> list[dict[str, Any]]:
    """The views of these incidents, with their clocks as of ``now``, in the order given."""
    store = _store(daemon)
    base = daemon.loaded.config.server.base_url
    out = []
    for item in found:
        events = await daemon.read(store.events, item.id)
        out.append(incident_view(item, events, now, base_url=base))
    return out


def page_of(items: Sequence[Incident], page: int, per_page: int) -> list[Incident]:
    """One page of a list; PageError past the last page (an empty list has one empty page)."""
    count = pages(len(items), per_page)
    if page > count:
        raise PageError(f"page {page} is past the last page ({count})")
    return list(items[(page - 1) * per_page : page * per_page])


def incident_window(incident: dict[str, Any], now: float) -> tuple[int, int]:
    """[first, end) of the incident page's timeline: a minute before the start to the restore."""
    started = int(parse_time(incident["started_at"]))
    restored = incident.get("restored_at")
    end = int(parse_time(restored)) if restored else math.floor(now)
    first = (started - 60) // 60 * 60
    return first, max(end, started + 1)


async def incident_document(
    daemon: Daemon, incident_id: str, now: float, *, hour: int = 1
) -> dict[str, Any] | None:
    """Everything the incident page shows: the incident, one hour of its timeline, failures."""
    store = _store(daemon)
    events = await daemon.read(store.events, incident_id)
    found = fold(events)
    if found is None:
        return None
    base = daemon.loaded.config.server.base_url
    body = incident_view(found, events, now, base_url=base, with_events=True)
    first, end = incident_window(body, now)
    hours = pages(end - first, 3600)
    if hour > hours:
        raise PageError(f"hour {hour} is past the incident window's last hour ({hours})")
    shown_first = first + (hour - 1) * 3600
    shown_end = min(end, shown_first + 3600)
    body["timeline"] = {
        **(await timeline(daemon, found.service, shown_first, shown_end)),
        "hour": hour,
        "hours": hours,
        "window_from": format_time(first),
        "window_to": format_time(end),
    }
    samples = await daemon.read(store.samples, found.service, found.started_at, end - 1)
    failures = [sample_json(a) for a in samples if a.outcome is not Outcome.OK]
    body["samples"] = daemon.loaded.redact.tree(failures[:MAX_LISTED_SAMPLES])
    body["samples_total"] = len(failures)
    body["writable"] = writes_allowed(daemon)
    return body


def writes_allowed(daemon: Daemon) -> dict[str, bool]:
    """Whether the API takes events here, and whether it wants the bearer token for them."""
    server = daemon.loaded.config.server
    token = server.token is not None
    return {"allowed": token or is_loopback(server.listen), "token_required": token}


async def month_reports(daemon: Daemon, month: str) -> list[Report]:
    """Every service's report figures for one UTC month (no incidents: the page lists them)."""
    start, end = month_range(month)
    store = _store(daemon)
    out = []
    for service in daemon.loaded.config.services:
        out.append(
            await daemon.read(
                lambda name=service.name, goal=service.sla.commitment: figures_for(
                    store, name, start=start, end=end, commitment=goal
                )
            )
        )
    return out


def month_json(report: Report) -> dict[str, Any]:
    """A month's report figures as the reports page and ``/api/v1/reports`` show them."""
    body = report.to_json()
    body.pop("incidents", None)
    return {"availability_text": percent_text(report.combined.availability), **body}


async def reports_document(
    daemon: Daemon, now: float, *, month: str | None = None, page: int = 1
) -> dict[str, Any]:
    """The reports page: months by service, one month's figures, and that month's incidents."""
    current = month_of(now)
    chosen = month or current
    try:
        start, end = month_range(chosen)
    except ReportError as exc:
        raise PageError(f"month: {exc}") from None
    store = _store(daemon)
    months = months_before(current, REPORT_MONTHS)
    oldest, _ = month_range(months[-1])
    _, newest = month_range(months[0])
    overview = []
    for service in daemon.loaded.config.services:
        runs = await daemon.read(store.runs, service.name, COMBINED, oldest, newest - 1)
        cells = {}
        for name in months:
            first, stop = month_range(name)
            report = build_report(
                service.name, runs, [], start=first, end=stop, commitment=service.sla.commitment
            )
            cells[name] = {
                "availability": report.combined.ratio,
                "availability_text": percent_text(report.combined.availability),
                "met": report.met,
            }
        overview.append(
            {"service": service.name, "commitment": service.sla.commitment, "months": cells}
        )
    found = await daemon.read(store.incidents)
    in_month = sort_newest([i for i in found if overlaps(i, start, end)])
    return {
        "as_of": format_time(now),
        "month": chosen,
        "months": months,
        "overview": overview,
        "reports": [month_json(r) for r in await month_reports(daemon, chosen)],
        "incidents": await incident_views(daemon, page_of(in_month, page, INCIDENTS_PER_PAGE), now),
        "incidents_total": len(in_month),
        "page": page,
        "pages": pages(len(in_month), INCIDENTS_PER_PAGE),
    }
