"""The provider's status page beside the verdict: a scripted Statuspage server through an outage.

A loopback server in the Atlassian Statuspage format declares its ``Mail Send``
component operational, then (late) in a major outage, then operational again, and posts
one incident with three updates. The daemon, on a manual clock, measures a two-minute
outage; the poller records what the page declared on the open incident, and the evidence
sets it beside the unavailable seconds, with the exact times.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from config.timetext import format_time
from incidents.evidence import evidence_source, verify, write_evidence
from incidents.sqlite_store import SqliteStore
from probe.attempt import Attempt, Channel, Outcome
from probe.clock import ManualClock
from slawatch.daemon import Daemon
from slawatch.provider_poller import StatusPoller
from tests.support.configs import config_from_yaml

NOW = 1_795_176_000  # 2026-11-20T12:00:00Z
# The first failing second, and the outage's length.
S = NOW + 10
OUTAGE_S = 120


class Page:
    """A scripted status page: what it declares at the clock's time."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.fail = False

    def component(self) -> dict[str, Any]:
        now = self.clock.time()
        if now >= S + 125:
            status, since = "operational", S + 125
        elif now >= S + 90:
            status, since = "major_outage", S + 90
        else:
            status, since = "operational", NOW - 86_400
        return {"id": "c1", "name": "Mail Send", "status": status, "updated_at": format_time(since)}

    def updates(self) -> list[dict[str, Any]]:
        now = self.clock.time()
        script = [
            ("u1", "investigating", "We are investigating elevated errors.", S + 60),
            ("u2", "identified", "The cause is identified.", S + 100),
            ("u3", "resolved", "Resolved.", S + 130),
        ]
        return [
            {"id": uid, "status": status, "body": body, "created_at": format_time(at)}
            for uid, status, body, at in script
            if at <= now
        ]

    async def summary(self, _: web.Request) -> web.Response:
        if self.fail:
            return web.Response(status=502)
        other = {
            "id": "c2",
            "name": "Webhooks",
            "status": "operational",
            "updated_at": format_time(NOW),
        }
        group = {
            "id": "g",
            "name": "All",
            "status": "operational",
            "group": True,
            "updated_at": format_time(NOW),
        }
        return web.json_response({"components": [self.component(), other, group]})

    async def incidents(self, _: web.Request) -> web.Response:
        updates = self.updates()
        found = (
            [{"id": "i1", "name": "Elevated API errors", "incident_updates": updates}]
            if updates
            else []
        )
        return web.json_response({"incidents": found})


@pytest.fixture
async def setup(
    tmp_path: Path,
) -> AsyncIterator[tuple[Daemon, ManualClock, Page, str, SqliteStore]]:
    """The scripted page on loopback and a daemon whose service polls it."""
    clock = ManualClock(NOW)
    page = Page(clock)
    app = web.Application()
    app.router.add_get("/api/v2/summary.json", page.summary)
    app.router.add_get("/api/v2/incidents.json", page.incidents)
    server = TestServer(app)
    await server.start_server()
    url = str(server.make_url("/"))
    config = {
        "services": [
            {
                "name": "sparkpost",
                "sla": {"policy": "megaport", "calendar": "uk"},
                "classifier": {"critical_after": "10s", "recover_after": "5s"},
                "status_page": {"url": url, "components": ["Mail Send"], "interval": "10s"},
            }
        ]
    }
    loaded = config_from_yaml(config, path=tmp_path / "slawatch.yaml")
    store = SqliteStore(tmp_path / "store.db")
    daemon = Daemon(loaded, clock=clock, registry=CollectorRegistry(), store=store)
    await daemon.open_store()
    try:
        yield daemon, clock, page, url, store
    finally:
        await server.close()
        store.close()


async def test_an_outage_beside_the_status_page(setup: Any) -> None:
    """Declared changes and updates land on the incident; evidence says what the page showed when."""
    daemon, clock, _, _, store = setup
    poller = StatusPoller(daemon)
    polls = {S + 30, S + 70, S + 95, S + 105, S + 131}
    async with aiohttp.ClientSession() as session:
        for second in range(NOW, S + OUTAGE_S + 40):
            failing = S <= second < S + OUTAGE_S
            outcome = Outcome.TIMEOUT if failing else Outcome.OK
            daemon.classifier.add(
                Attempt("sparkpost", Channel.API, "t", "eu-1", second + 0.5, 0.1, outcome)
            )
            clock.advance(second + 1.05 - clock.time())
            await daemon.tick(clock.time())
            if second in polls:
                assert await poller.poll(daemon.loaded.config.services[0], session) is not None
    (incident,) = store.incidents()
    assert (incident.started_at, incident.restored_at is not None) == (S, True)
    noted = [
        (format_time(e.at), e.note, e.source)
        for e in store.events(incident.id)
        if e.kind == "provider_status_changed"
    ]
    assert noted == [
        (format_time(NOW - 86_400), "Mail Send: Operational", "status_page"),
        (
            format_time(S + 60),
            "Elevated API errors (investigating): We are investigating elevated errors.",
            "status_page",
        ),
        (format_time(S + 90), "Mail Send: Major Outage", "status_page"),
        (
            format_time(S + 100),
            "Elevated API errors (identified): The cause is identified.",
            "status_page",
        ),
        (format_time(S + 125), "Mail Send: Operational", "status_page"),
        (format_time(S + 130), "Elevated API errors (resolved): Resolved.", "status_page"),
    ]
    assert (
        daemon.registry.get_sample_value(
            "slawatch_provider_status",
            {"service": "sparkpost", "component": "Mail Send", "status": "operational"},
        )
        == 1
    )
    source = evidence_source(store, incident.id, daemon.loaded, now=clock.time(), version="test")
    assert source is not None
    assert source.head["provider_status"] == {
        "declared_during_unavailability": {"Mail Send": {"major_outage": 30, "operational": 90}},
        "first_provider_update_at": format_time(S + 60),
        "first_provider_update_after_s": 60,
    }
    out = _render(source, "md")
    assert (
        "During the 2 min of measured Unavailability, the status page showed Mail Send as: "
        "Operational for 1 min 30 s; Major Outage for 30 s."
    ) in out
    assert (
        f"The provider's incident was posted 1 min after our first failing second ({format_time(S + 60)})."
    ) in out
    assert f"| {format_time(S + 90)} | Mail Send: Major Outage |" in out
    assert verify(_render(source, "json")).ok
    assert "Operational for 1 min 30 s" in _render(source, "html")


def _render(source: Any, fmt: str) -> str:
    out = io.StringIO()
    write_evidence(out, fmt, source)
    return out.getvalue()


async def test_an_unreadable_page_is_counted_and_logged_once_a_minute(
    setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A page that fails never touches verdicts: an error count, one log line a minute."""
    daemon, clock, page, _, _ = setup
    poller = StatusPoller(daemon)
    page.fail = True
    service = daemon.loaded.config.services[0]
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            assert await poller.poll(service, session) is None
            clock.advance(10)
        clock.advance(60)
        assert await poller.poll(service, session) is None
    errors = daemon.registry.get_sample_value(
        "slawatch_provider_status_errors_total", {"service": "sparkpost"}
    )
    assert errors == 4
    logged = [r for r in caplog.records if r.getMessage() == "status page unreadable"]
    assert len(logged) == 2


async def test_the_poll_loop_runs_on_the_clock(setup: Any) -> None:
    """The poller's loop reads the page as soon as it starts, and counts no error."""
    daemon = setup[0]
    poller = StatusPoller(daemon)
    task = asyncio.create_task(poller.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0.01)
            if daemon.registry.get_sample_value(
                "slawatch_provider_status",
                {"service": "sparkpost", "component": "Mail Send", "status": "operational"},
            ):
                break
        assert (
            daemon.registry.get_sample_value(
                "slawatch_provider_status",
                {"service": "sparkpost", "component": "Mail Send", "status": "operational"},
            )
            == 1
        )
        assert (
            daemon.registry.get_sample_value(
                "slawatch_provider_status_errors_total", {"service": "sparkpost"}
            )
            is None
        )
    finally:
        task.cancel()
