"""The status-page poller: each service's provider page read every interval, beside the verdicts.

For every service with ``status_page``, ``/api/v2/summary.json`` and
``/api/v2/incidents.json`` are read every ``interval``; the named components' declared
statuses are exported as ``slawatch_provider_status{service,component,status}`` (1 for
the status in force, 0 for the others) and, while the service has an open incident,
recorded on it as ``provider_status_changed`` events (:mod:`incidents.provider_status`;
the store keeps each once). The poller never touches a verdict: a page that cannot be
read is counted (``slawatch_provider_status_errors_total``) and logged at most once a
minute per service.

It runs for the web application's lifetime (aiohttp ``cleanup_ctx``), beside the probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import Counter, Gauge

from config.model import ServiceConfig
from incidents.provider_status import (
    STATUS_LABELS,
    Reading,
    StatusPageError,
    read_components,
    read_updates,
    status_events,
)
from incidents.store import Batch
from slawatch.daemon import Daemon

log = logging.getLogger("slawatch.status_page")
# A page's problems are logged at most this often per service.
ERROR_LOG_INTERVAL = 60.0
# A status document is small; a larger answer is refused.
MAX_DOCUMENT = 4 * 1024 * 1024
PATHS = ("/api/v2/summary.json", "/api/v2/incidents.json")


class StatusPoller:
    """Reads the status pages of the daemon's services and records what they declare."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.status = Gauge(
            "slawatch_provider_status",
            "The status the provider's own status page declares for a component (1: in force).",
            ["service", "component", "status"],
            registry=daemon.metrics.core,
        )
        self.errors = Counter(
            "slawatch_provider_status_errors",
            "Status page reads that failed (network, HTTP status or format).",
            ["service"],
            registry=daemon.metrics.core,
        )
        # service → when its last error was logged (wall seconds).
        self._logged: dict[str, float] = {}

    async def poll(self, service: ServiceConfig, session: aiohttp.ClientSession) -> Reading | None:
        """Read one service's page, export and record what it declares; None when unreadable."""
        page = service.status_page
        if page is None:
            return None
        now = self.daemon.clock.time()
        try:
            summary, incidents = [
                await _document(session, page.url.rstrip("/") + path, page.timeout)
                for path in PATHS
            ]
            reading = Reading(read_components(summary, page.components), read_updates(incidents))
        except (aiohttp.ClientError, TimeoutError, StatusPageError, ValueError) as exc:
            self._failed(service.name, exc, now)
            return None
        for component in reading.components:
            for status in {*STATUS_LABELS, component.status}:
                self.status.labels(service.name, component.name, status).set(
                    int(status == component.status)
                )
        await self._record(service.name, reading, now)
        return reading

    async def _record(self, service: str, reading: Reading, now: float) -> None:
        daemon = self.daemon
        store = daemon.store
        events = [
            event
            for kept in list(daemon.follower.open.values())
            if kept.incident.service == service and kept.incident.state == "open"
            for event in status_events(kept.incident, reading, recorded_at=now)
        ]
        if not events or store is None:
            return
        try:
            await daemon.writer.run(store.commit, Batch(events=events))
            await daemon.writer.run(daemon.follower.sync, store)
        except Exception as exc:  # noqa: BLE001  (a store refusal must not stop the poller)
            self._failed(service, exc, now)

    def _failed(self, service: str, exc: BaseException, now: float) -> None:
        self.errors.labels(service).inc()
        if now - self._logged.get(service, -math.inf) >= ERROR_LOG_INTERVAL:
            self._logged[service] = now
            log.warning(
                "status page unreadable",
                extra={"service": service, "error": self.daemon.loaded.redact(str(exc))},
            )

    async def run(self) -> None:
        """Poll every configured page at its interval until cancelled."""
        clock = self.daemon.clock
        due: dict[str, float] = {}
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                now = clock.time()
                services = [s for s in self.daemon.loaded.config.services if s.status_page]
                for service in services:
                    page = service.status_page
                    assert page is not None  # noqa: S101  (filtered just above)
                    if due.get(service.name, -math.inf) <= now:
                        due[service.name] = now + page.interval
                        await self.poll(service, session)
                wake = min((due[s.name] for s in services), default=now + ERROR_LOG_INTERVAL)
                await clock.sleep_until(wake)


async def _document(session: aiohttp.ClientSession, url: str, limit_s: float) -> Any:
    """One JSON document of the page (ValueError for an HTTP error or a body that is not JSON)."""
    async with session.get(
        url, timeout=aiohttp.ClientTimeout(total=limit_s), allow_redirects=False
    ) as response:
        if response.status != 200:
            raise ValueError(f"{url}: HTTP {response.status}")
        body = await response.content.read(MAX_DOCUMENT + 1)
        if len(body) > MAX_DOCUMENT:
            raise ValueError(f"{url}: larger than {MAX_DOCUMENT} bytes")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{url}: not JSON: {exc}") from None


POLLER = web.AppKey("status_poller", StatusPoller)


def add_status_poller(app: web.Application, daemon: Daemon) -> None:
    """Poll the daemon's status pages for as long as ``app`` runs."""
    poller = app[POLLER] = StatusPoller(daemon)

    async def running(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(poller.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(running)
