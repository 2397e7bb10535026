"""The HTTP server: /metrics, health, the JSON API and the status page, over one Daemon."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import tempfile
from html import escape
from typing import Any, NoReturn

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from config import ConfigError
from config.model import ServiceConfig
from config.timetext import TimeTextError, parse_time
from incidents.evidence import evidence_source, write_evidence
from incidents.lifecycle import LifecycleError, fold, user_event
from incidents.model import EventRecord
from incidents.report import ReportError, month_range, render_csv, report_for
from incidents.signing import load_signer
from incidents.store import StoreError
from incidents.view import incident_view
from probe.attempt import AttemptFormatError
from slawatch import __version__, pagedata
from slawatch.daemon import Daemon
from slawatch.incidentpage import render_incident_page
from slawatch.ingest import add_ingest_routes
from slawatch.pagedata import (
    INCIDENTS_PER_PAGE,
    MAX_TIMELINE_S,
    RECENT_SHOWN,
    PageError,
    incident_document,
    incident_views,
    last_second,
    month_json,
    month_of,
    month_reports,
    page_number,
    page_of,
    pages,
    reports_document,
    service_json,
    sort_newest,
    status_document,
    status_window,
)
from slawatch.provider_poller import add_status_poller
from slawatch.reportspage import render_reports_page
from slawatch.server import bearer_matches, is_loopback
from slawatch.status import HEALTHY_LAG_S
from slawatch.statuspage import render_status_page

log = logging.getLogger("slawatch.web")
DAEMON = web.AppKey("daemon", Daemon)
# A request body larger than this is refused (an event is a few hundred bytes).
MAX_BODY = 64 * 1024
# Evidence is sent in pieces of this size.
EVIDENCE_CHUNK = 256 * 1024


def make_app(daemon: Daemon) -> web.Application:
    """The aiohttp application of the daemon's endpoints (DESIGN.md §9)."""
    app = web.Application(client_max_size=MAX_BODY)
    app[DAEMON] = daemon
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", status_page)
    app.router.add_get("/incidents/{id}", incident_page)
    app.router.add_get("/reports", reports_page)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/probers", probers)
    app.router.add_get("/api/v1/cluster", cluster)
    app.router.add_get("/api/v1/reports", reports)
    app.router.add_get("/api/v1/services", services)
    app.router.add_get("/api/v1/services/{name}/timeline", service_timeline)
    app.router.add_get("/api/v1/services/{name}/availability", service_availability)
    app.router.add_get("/api/v1/incidents", incidents)
    app.router.add_get("/api/v1/incidents/{id}", incident)
    app.router.add_get("/api/v1/incidents/{id}/evidence", evidence)
    app.router.add_post("/api/v1/incidents/{id}/events", post_event)
    add_ingest_routes(app, daemon)
    add_status_poller(app, daemon)
    return app


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, indent=2))


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


async def metrics(request: web.Request) -> web.StreamResponse:
    """The Prometheus exposition, built and written a slice at a time (launches go first)."""
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE_LATEST})
    await response.prepare(request)
    async for part in request.app[DAEMON].metrics.exposition_parts():
        await response.write(part)
    await response.write_eof()
    return response


async def healthz(request: web.Request) -> web.Response:
    """200 while the loop ticks and launches are not lagging beyond the bound."""
    daemon = request.app[DAEMON]
    now = daemon.clock.time()
    health = daemon.health
    problems = []
    if health.last_tick and now - health.last_tick > 5:
        problems.append(f"no tick for {now - health.last_tick:.1f}s")
    if health.last_lag > HEALTHY_LAG_S:
        problems.append(f"launch lag {health.last_lag:.3f}s")
    if problems:
        return _json({"status": "unhealthy", "problems": problems}, 503)
    return _json({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    """200 when the config is loaded, the store open and writable, and a fleet role settled."""
    daemon = request.app[DAEMON]
    health = daemon.health
    checks = {
        "config_loaded": health.config_loaded,
        "store_open": health.store_open,
        "store_writable": health.store_writable,
        "stopping": not health.stopping,
    }
    if daemon.fleet is not None:
        checks["cluster_role"] = daemon.fleet.ready
    ready = all(checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
    if health.store_error:
        body["store_error"] = health.store_error
    return _json(body, 200 if ready else 503)


async def services(request: web.Request) -> web.Response:
    """Per service and channel: last final verdict, current streak, open incident."""
    daemon = request.app[DAEMON]
    return _json({"services": [service_json(daemon, s) for s in daemon.loaded.config.services]})


async def incidents(request: web.Request) -> web.Response:
    """Incidents, newest first; ``?state=open|restored|resolved`` filters, ``?page=N`` pages."""
    state = request.query.get("state")
    if state not in (None, "open", "restored", "resolved", "all"):
        return _error(400, "state must be open, restored, resolved or all")
    daemon = request.app[DAEMON]
    store = daemon.store
    if store is None:
        return _error(503, "store not open")
    wanted = None if state == "all" else state
    found = sort_newest(await daemon.read(lambda: store.incidents(state=wanted)))
    now = daemon.clock.time()
    if "page" not in request.query:
        return _json({"incidents": await incident_views(daemon, found, now)})
    try:
        page = page_number(request.query["page"])
        shown = page_of(found, page, INCIDENTS_PER_PAGE)
    except PageError as exc:
        return _error(400, str(exc))
    return _json(
        {
            "incidents": await incident_views(daemon, shown, now),
            "page": page,
            "pages": pages(len(found), INCIDENTS_PER_PAGE),
            "total": len(found),
        }
    )


async def incident(request: web.Request) -> web.Response:
    """One incident with its events and clocks."""
    daemon = request.app[DAEMON]
    store = daemon.store
    if store is None:
        return _error(503, "store not open")
    events = await daemon.read(store.events, request.match_info["id"])
    found = fold(events)
    if found is None:
        return _error(404, "no such incident")
    now = daemon.clock.time()
    return _json(
        incident_view(
            found, events, now, base_url=daemon.loaded.config.server.base_url, with_events=True
        )
    )


def _authorized(request: web.Request, daemon: Daemon) -> web.Response | None:
    """None when the write may proceed, else the refusal."""
    token = daemon.loaded.config.server.token
    if token is None:
        if not is_loopback(daemon.loaded.config.server.listen):
            return _error(403, "writes are disabled: no server.token on a non-loopback address")
        return None
    if not bearer_matches(request.headers.get("Authorization", ""), token.get_secret_value()):
        return web.json_response(
            {"error": "missing or wrong bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="slawatch"'},
        )
    return None


_CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "md": "text/markdown",
    "html": "text/html",
}


async def evidence(request: web.Request) -> web.StreamResponse:
    """The incident's evidence bundle, ``?format=json|csv|md|html`` (default json).

    Written to a temporary file off the loop, then streamed: a long incident's bundle is
    never held in the daemon's memory.
    """
    daemon = request.app[DAEMON]
    fmt = request.query.get("format", "json")
    if fmt not in _CONTENT_TYPES:
        return _error(400, f"format must be one of {', '.join(_CONTENT_TYPES)}")
    store = daemon.store
    if store is None:
        return _error(503, "store not open")
    now = daemon.clock.time()
    loaded = daemon.loaded
    try:
        signer = load_signer(loaded)
    except ConfigError as exc:
        return _error(500, f"cannot sign evidence: {exc}")
    with tempfile.TemporaryFile() as raw:

        def write() -> bool:
            source = evidence_source(
                store, request.match_info["id"], loaded, now=now, version=__version__
            )
            if source is None:
                return False
            text = io.TextIOWrapper(raw, encoding="utf-8")
            try:
                write_evidence(text, fmt, source, signer)
                text.flush()
            finally:
                text.detach()
            return True

        if not await daemon.read(write):
            return _error(404, "no such incident")
        raw.seek(0)
        response = web.StreamResponse(
            headers={"Content-Type": f"{_CONTENT_TYPES[fmt]}; charset=utf-8"}
        )
        await response.prepare(request)
        while chunk := await asyncio.to_thread(raw.read, EVIDENCE_CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response


_ERRORS: dict[int, type[web.HTTPError]] = {
    400: web.HTTPBadRequest,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    503: web.HTTPServiceUnavailable,
}


def _abort(status: int, message: str) -> NoReturn:
    raise _ERRORS[status](text=json.dumps({"error": message}), content_type="application/json")


def _time_field(body: dict[str, Any], key: str, default: float | None = None) -> float:
    """``body[key]`` as epoch seconds (``default`` when absent); ValueError naming the key."""
    if key not in body and default is not None:
        return default
    try:
        return parse_time(body.get(key))
    except TimeTextError as exc:
        raise ValueError(f"{key}: {exc}") from None


async def _event_from(request: web.Request, incident_id: str, now: float) -> EventRecord:
    """The user event a POST body describes, or a 400."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        _abort(400, "body must be a JSON object")
    if not isinstance(body, dict):
        _abort(400, "body must be a JSON object")
    try:
        next_update = body.get("next_update_at")
        return user_event(
            incident_id,
            str(body.get("kind", "")),
            at=_time_field(body, "at", now),
            source="api",
            recorded_at=now,
            note=str(body.get("note", "")),
            ticket=body.get("ticket"),
            severity=body.get("severity"),
            next_update_at=None if next_update is None else _time_field(body, "next_update_at"),
        )
    except (AttemptFormatError, LifecycleError, ValueError, TypeError) as exc:
        _abort(400, str(exc))


async def post_event(request: web.Request) -> web.Response:
    """Record a user event: ``{"kind", "at", "note", "ticket", "severity", "next_update_at"}``."""
    daemon = request.app[DAEMON]
    refused = _authorized(request, daemon)
    if refused is not None:
        return refused
    store = daemon.store
    if store is None:
        _abort(503, "store not open")
    incident_id = request.match_info["id"]
    if await daemon.read(store.get, incident_id) is None:
        _abort(404, "no such incident")
    now = daemon.clock.time()
    event = await _event_from(request, incident_id, now)
    try:
        updated = await daemon.record_event(event)
    except LifecycleError as exc:
        _abort(400, str(exc))
    except StoreError as exc:
        _abort(503, str(exc))
    kept = daemon.follower.open.get(updated.id)
    events = kept.events if kept is not None else await daemon.read(store.events, updated.id)
    base = daemon.loaded.config.server.base_url
    return _json(incident_view(updated, events, now, base_url=base), 201)


def _page(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    # A page is an hour of cells per channel: compressed it is a tenth of the size.
    response.enable_compression()
    return response


def _refusal(exc: PageError | StoreError) -> web.Response:
    """A page's answer to a bad query (400) or a store that is not open (503)."""
    status, title = (400, "bad request") if isinstance(exc, PageError) else (503, "unavailable")
    return _page(f"<!DOCTYPE html><title>{title}</title><p>{escape(str(exc))}</p>", status)


def _since(request: web.Request) -> int | None:
    """``?since=`` as epoch seconds (an integer, or RFC 3339 text); PageError otherwise."""
    text = request.query.get("since")
    if text is None:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return math.floor(parse_time(text))
    except TimeTextError as exc:
        raise PageError(f"since: {exc}") from None


async def status(request: web.Request) -> web.Response:
    """What the status page shows and polls: ``?page=N`` of services, ``?since=T`` for less."""
    daemon = request.app[DAEMON]
    try:
        page, since = page_number(request.query.get("page")), _since(request)
        doc = await status_document(daemon, daemon.clock.time(), page=page, since=since)
    except PageError as exc:
        return _error(400, str(exc))
    except StoreError as exc:
        return _error(503, str(exc))
    response = _json(doc)
    # Polled every few seconds by every open status page: compressed it is a tenth.
    response.enable_compression()
    return response


async def probers(request: web.Request) -> web.Response:
    """Every prober and its health (this instance's, until a fleet adds the others)."""
    daemon = request.app[DAEMON]
    return _json({"probers": pagedata.probers(daemon, daemon.clock.time())})


async def cluster(request: web.Request) -> web.Response:
    """The fleet as this instance last read it: the lease's holder and epoch, every prober."""
    fleet = request.app[DAEMON].fleet
    if fleet is None:
        return _error(404, "not a fleet: storage.url is not set")
    return _json(fleet.cluster())


def _service(request: web.Request) -> ServiceConfig:
    daemon = request.app[DAEMON]
    try:
        return daemon.loaded.config.service(request.match_info["name"])
    except KeyError:
        _abort(404, "no such service")


def _period(request: web.Request, default: tuple[int, int]) -> tuple[int, int]:
    """``?from=&to=`` (RFC 3339) as whole seconds [first, end); ``default`` fills the gaps."""
    bounds = []
    for key, fallback in (("from", default[0]), ("to", default[1])):
        text = request.query.get(key)
        if text is None:
            bounds.append(fallback)
            continue
        try:
            bounds.append(math.ceil(parse_time(text)))
        except TimeTextError as exc:
            _abort(400, f"{key}: {exc}")
    first, end = bounds
    if end <= first:
        _abort(400, "the period is empty (to must be after from)")
    if end - first > MAX_TIMELINE_S:
        _abort(400, f"a timeline covers at most {MAX_TIMELINE_S} s; ask for less")
    return first, end


async def service_timeline(request: web.Request) -> web.Response:
    """A service's per-second verdicts as spans: ``?from=&to=`` (default: the last hour)."""
    daemon = request.app[DAEMON]
    service = _service(request)
    now = daemon.clock.time()
    window = status_window(last_second(daemon, service.name, now))
    first, end = _period(request, window)
    try:
        return _json(await pagedata.timeline(daemon, service.name, first, end))
    except StoreError as exc:
        return _error(503, str(exc))


async def service_availability(request: web.Request) -> web.Response:
    """A service's report for ``?month=YYYY-MM`` (default: this month), as ``slawatch report``."""
    daemon = request.app[DAEMON]
    service = _service(request)
    store = daemon.store
    if store is None:
        return _error(503, "store not open")
    now = daemon.clock.time()
    try:
        start, end = month_range(request.query.get("month") or month_of(now))
    except ReportError as exc:
        return _error(400, f"month: {exc}")
    report = await daemon.read(
        lambda: report_for(
            store, service.name, start=start, end=end, commitment=service.sla.commitment, now=now
        )
    )
    return _json(report.to_json())


async def reports(request: web.Request) -> web.Response:
    """Every service's figures for ``?month=YYYY-MM``; ``?format=csv`` for the CSV download."""
    daemon = request.app[DAEMON]
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        return _error(400, "format must be json or csv")
    now = daemon.clock.time()
    month = request.query.get("month") or month_of(now)
    try:
        month_range(month)
        found = await month_reports(daemon, month)
    except ReportError as exc:
        return _error(400, f"month: {exc}")
    except StoreError as exc:
        return _error(503, str(exc))
    if fmt == "csv":
        return web.Response(
            text=render_csv(found),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="slawatch-{month}.csv"'},
        )
    return _json({"month": month, "reports": [month_json(r) for r in found]})


async def status_page(request: web.Request) -> web.Response:
    """The human status page (``?page=N`` of services)."""
    daemon = request.app[DAEMON]
    now = daemon.clock.time()
    try:
        page = page_number(request.query.get("page"))
        doc = await status_document(daemon, now, page=page)
        store = daemon.store
        found = [] if store is None else await daemon.read(store.incidents)
        past = sort_newest([i for i in found if i.state != "open"])[:RECENT_SHOWN]
        recent = await incident_views(daemon, past, now)
    except (PageError, StoreError) as exc:
        return _refusal(exc)
    return _page(
        render_status_page(
            doc["services"],
            [*doc["open_incidents"], *recent],
            now=now,
            version=__version__,
            probers=doc["probers"],
            page=doc["page"],
            pages=doc["pages"],
            services_total=doc["services_total"],
        )
    )


async def incident_page(request: web.Request) -> web.Response:
    """One incident's page (``?hour=N`` of its window's timeline)."""
    daemon = request.app[DAEMON]
    now = daemon.clock.time()
    try:
        hour = page_number(request.query.get("hour"))
        doc = await incident_document(daemon, request.match_info["id"], now, hour=hour)
    except (PageError, StoreError) as exc:
        return _refusal(exc)
    if doc is None:
        return _page(
            "<!DOCTYPE html><title>not found</title><p>No such incident. "
            '<a href="/">Status</a></p>',
            404,
        )
    return _page(render_incident_page(doc, now=now, version=__version__))


async def reports_page(request: web.Request) -> web.Response:
    """The reports page (``?month=YYYY-MM``, ``?page=N`` of that month's incidents)."""
    daemon = request.app[DAEMON]
    now = daemon.clock.time()
    try:
        page = page_number(request.query.get("page"))
        doc = await reports_document(daemon, now, month=request.query.get("month"), page=page)
    except (PageError, StoreError) as exc:
        return _refusal(exc)
    return _page(render_reports_page(doc, now=now, version=__version__))
