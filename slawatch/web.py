"""The HTTP server: /metrics, health, the JSON API and the status page, over one Daemon."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
from typing import Any, NoReturn

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config import ConfigError
from config.model import ServiceConfig
from config.timetext import TimeTextError, format_time, parse_time
from incidents.evidence import render_evidence
from incidents.lifecycle import LifecycleError, fold, user_event
from incidents.model import EventRecord, Incident
from incidents.signing import load_signer
from incidents.store import StoreError
from incidents.view import incident_view
from probe.attempt import AttemptFormatError
from slawatch import __version__
from slawatch.daemon import Daemon
from slawatch.status import HEALTHY_LAG_S
from slawatch.statuspage import render_status_page

log = logging.getLogger("slawatch.web")
DAEMON = web.AppKey("daemon", Daemon)
# A request body larger than this is refused (an event is a few hundred bytes).
MAX_BODY = 64 * 1024


def is_loopback(listen: str) -> bool:
    """True when ``host:port`` binds only loopback addresses."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_app(daemon: Daemon) -> web.Application:
    """The aiohttp application of the daemon's endpoints (DESIGN.md §9)."""
    app = web.Application(client_max_size=MAX_BODY)
    app[DAEMON] = daemon
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", status_page)
    app.router.add_get("/api/v1/services", services)
    app.router.add_get("/api/v1/incidents", incidents)
    app.router.add_get("/api/v1/incidents/{id}", incident)
    app.router.add_get("/api/v1/incidents/{id}/evidence", evidence)
    app.router.add_post("/api/v1/incidents/{id}/events", post_event)
    return app


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, indent=2))


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus exposition, built off the event loop.

    At hundreds of targets the page is megabytes and takes a few hundred milliseconds to
    build; on the loop that would delay launches, so a worker thread builds it.
    """
    registry = request.app[DAEMON].registry
    body = await asyncio.to_thread(generate_latest, registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


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
    """200 when the config is loaded and the store is open and writable."""
    health = request.app[DAEMON].health
    checks = {
        "config_loaded": health.config_loaded,
        "store_open": health.store_open,
        "store_writable": health.store_writable,
        "stopping": not health.stopping,
    }
    ready = all(checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
    if health.store_error:
        body["store_error"] = health.store_error
    return _json(body, 200 if ready else 503)


def _service_json(daemon: Daemon, service: ServiceConfig) -> dict[str, Any]:
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


async def services(request: web.Request) -> web.Response:
    """Per service and channel: last final verdict, current streak, open incident."""
    daemon = request.app[DAEMON]
    return _json({"services": [_service_json(daemon, s) for s in daemon.loaded.config.services]})


def _incident_json(
    daemon: Daemon, incident: Incident, events: list[EventRecord], now: float
) -> dict[str, Any]:
    return incident_view(incident, events, now, base_url=daemon.loaded.config.server.base_url)


async def _load(
    daemon: Daemon, state: str | None, limit: int | None = None
) -> list[dict[str, Any]]:
    store = daemon.store
    if store is None:
        raise web.HTTPServiceUnavailable(text="store not open")
    now = daemon.clock.time()
    found = await daemon.read(lambda: store.incidents(state=state))
    # The store lists oldest first; the API and the page show the newest first.
    found.sort(key=lambda item: (item.started_at, item.id), reverse=True)
    out = []
    for item in found[:limit]:
        events = await daemon.read(store.events, item.id)
        out.append(_incident_json(daemon, item, events, now))
    return out


async def incidents(request: web.Request) -> web.Response:
    """Incidents, newest first; ``?state=open|restored|resolved`` filters."""
    state = request.query.get("state")
    if state not in (None, "open", "restored", "resolved", "all"):
        return _error(400, "state must be open, restored, resolved or all")
    daemon = request.app[DAEMON]
    return _json({"incidents": await _load(daemon, None if state == "all" else state)})


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
    header = request.headers.get("Authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    if not hmac.compare_digest(header.encode(), expected.encode()):
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


async def evidence(request: web.Request) -> web.Response:
    """The incident's evidence bundle, ``?format=json|csv|md|html`` (default json)."""
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
    text = await daemon.read(
        lambda: render_evidence(
            store,
            request.match_info["id"],
            loaded,
            fmt,
            now=now,
            version=__version__,
            signer=signer,
        )
    )
    if text is None:
        return _error(404, "no such incident")
    return web.Response(text=text, content_type=_CONTENT_TYPES[fmt], charset="utf-8")


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
    return _json(_incident_json(daemon, updated, events, now), 201)


async def status_page(request: web.Request) -> web.Response:
    """The human status page."""
    daemon = request.app[DAEMON]
    now = daemon.clock.time()
    services_json = [_service_json(daemon, s) for s in daemon.loaded.config.services]
    recent = await _load(daemon, None, limit=50) if daemon.store is not None else []
    page = render_status_page(services_json, recent, now=now, version=__version__)
    return web.Response(text=page, content_type="text/html", charset="utf-8")
