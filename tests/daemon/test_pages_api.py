"""The pages and their JSON endpoints, in process over a real SQLite store: 50 services, 1,000 incidents.

A daemon on a manual clock serves a store filled with two days of runs per service (an
outage in each) and twenty incidents per service. The pages paginate, the timelines are
built from runs and cover every second, and the figures are those of `slawatch report`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from classifier.signals import Opened, Restored
from classifier.verdict import OUTCOMES
from config import LoadedConfig
from incidents.lifecycle import signal_event
from incidents.model import Run
from incidents.report import render_csv, report_for
from incidents.sqlite_store import SqliteStore
from incidents.store import Batch
from probe.attempt import Attempt, Channel, Outcome
from probe.clock import ManualClock
from sla.terms import freeze_terms
from slawatch.daemon import Daemon
from slawatch.pagedata import SERVICES_PER_PAGE
from slawatch.web import make_app
from tests.support.configs import config_from_yaml

NOW = 1_795_176_000  # 2026-11-20T12:00:00Z
SERVICES = 50
PER_SERVICE = 20
OK = (1,) + (0,) * (len(OUTCOMES) - 1)
DOWN = (0, 0, 1) + (0,) * (len(OUTCOMES) - 3)
TOKEN = "pages-token-0042"
PAGES = SERVICES // SERVICES_PER_PAGE


@dataclass
class Site:
    """The daemon and a client of its web app."""

    daemon: Daemon
    client: TestClient
    store: SqliteStore


def _config() -> dict[str, object]:
    services = [
        {
            "name": f"svc{index:02d}",
            "sla": {"policy": "megaport", "calendar": "uk", "commitment": 99.9},
            "api": [{"name": "send", "url": "http://127.0.0.1:9/", "timeout": "1s"}]
            if index == 0
            else [],
        }
        for index in range(SERVICES)
    ]
    return {
        "prober": {"id": "pages-1"},
        "server": {"listen": "127.0.0.1:9797", "token": TOKEN},
        "services": services,
    }


def _fill(store: SqliteStore, loaded: LoadedConfig) -> None:
    """Two days of runs per service with a 5-minute outage, and 20 incidents each."""
    events = []
    runs = []
    for index in range(SERVICES):
        name = f"svc{index:02d}"
        service = loaded.config.service(name)
        down = NOW - 1800 - index
        for channel in ("api", "combined"):
            runs += [
                Run(name, channel, "available", NOW - 2 * 86_400, down - 1, OK),
                Run(name, channel, "unavailable", down, down + 299, DOWN),
                Run(name, channel, "available", down + 300, NOW - 1, OK),
            ]
        for number in range(PER_SERVICE):
            started = NOW - (number + 1) * 4 * 3600 - index
            incident = f"{name}-{number:02d}"
            terms = freeze_terms(service, loaded.catalog, loaded.calendars(), at=started)
            opened = Opened(name, incident, 1, "Severity 1", started, started + 60, ("api",))
            events.append(signal_event(opened, terms, source="replay"))
            if (index, number) != (0, 0):
                restored = Restored(name, incident, 1, started + 600, started + 720, ("api",))
                events.append(signal_event(restored, terms, source="replay"))
    store.commit(Batch(events=events, runs=runs))


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """A daemon over a filled SQLite store, its web app on a loopback test server."""
    loaded = config_from_yaml(_config(), path=tmp_path / "slawatch.yaml")
    store = SqliteStore(tmp_path / "store.db")
    _fill(store, loaded)
    daemon = Daemon(loaded, clock=ManualClock(NOW), registry=CollectorRegistry(), store=store)
    await daemon.open_store()
    client = TestClient(TestServer(make_app(daemon)))
    await client.start_server()
    try:
        yield Site(daemon, client, store)
    finally:
        await client.close()
        store.close()


async def test_status_api_paginates_services_with_full_timelines(site: Site) -> None:
    """/api/v1/status pages 50 services; each timeline covers every second of the window
    from runs, and the month figure is the one `slawatch report` computes."""
    response = await site.client.get("/api/v1/status")
    assert response.status == 200
    doc = await response.json()
    assert (doc["page"], doc["pages"], doc["services_total"]) == (1, PAGES, SERVICES)
    assert len(doc["services"]) == SERVICES_PER_PAGE
    first = doc["services"][0]
    timeline = first["timeline"]
    assert timeline["first"] == NOW - 3600
    assert timeline["end"] == NOW
    for spans in timeline["channels"].values():
        assert sum(s["seconds"] for s in spans) == 3600
    assert [s["verdict"] for s in timeline["channels"]["combined"]] == [
        "available",
        "unavailable",
        "available",
    ]
    report = report_for(
        site.store, "svc00", start=1_793_491_200, end=1_796_083_200, commitment=99.9, now=NOW
    )
    assert first["month"]["combined"] == report.to_json()["combined"]
    assert first["month"]["commitment"] == report.to_json()["commitment"]
    assert len(first["days"]) == 90
    assert first["days"][-1]["unavailable"] == 300
    assert first["days"][0]["availability"] is None
    assert [i["id"] for i in doc["open_incidents"]] == ["svc00-00"]
    assert doc["probers"][0]["id"] == "pages-1"
    last = await (await site.client.get(f"/api/v1/status?page={PAGES}")).json()
    assert [s["name"] for s in last["services"]][-1] == "svc49"
    since = await (await site.client.get(f"/api/v1/status?since={NOW - 11}")).json()
    assert since["services"][0]["timeline"]["first"] == NOW - 10


@pytest.mark.parametrize(
    ("path", "message"),
    [
        pytest.param("/api/v1/status?page=0", "page must be a positive integer", id="page-zero"),
        pytest.param("/api/v1/status?page=six", "page must be a positive integer", id="page-text"),
        pytest.param(
            f"/api/v1/status?page={PAGES + 1}", f"past the last page ({PAGES})", id="page-past"
        ),
        pytest.param("/api/v1/status?since=yesterday", "since: invalid RFC 3339", id="since"),
        pytest.param(
            "/api/v1/services/svc00/timeline?from=2026-11-20T13:00:00Z&to=2026-11-20T12:00:00Z",
            "empty",
            id="reversed",
        ),
        pytest.param(
            "/api/v1/services/svc00/timeline?from=2026-11-19T00:00:00Z",
            "at most 21600 s",
            id="too-long",
        ),
        pytest.param(
            "/api/v1/services/svc00/availability?month=2026-13", "month: invalid month", id="month"
        ),
        pytest.param("/api/v1/reports?format=xlsx", "format must be json or csv", id="format"),
        pytest.param("/api/v1/incidents?page=21", "past the last page (20)", id="incidents-page"),
    ],
)
async def test_bad_queries_get_a_clear_400(site: Site, path: str, message: str) -> None:
    """A malformed or out-of-range query parameter is a 400 that says which and why."""
    response = await site.client.get(path)
    assert response.status == 400
    assert message in (await response.json())["error"]


async def test_unknown_service_is_404(site: Site) -> None:
    """A timeline of a service that is not configured is a 404."""
    response = await site.client.get("/api/v1/services/nope/timeline")
    assert response.status == 404


async def test_timeline_endpoint_and_availability_match_the_report(site: Site) -> None:
    """A service's timeline over a chosen period, and its month report as `slawatch report`."""
    response = await site.client.get(
        "/api/v1/services/svc01/timeline?from=2026-11-20T11:29:00Z&to=2026-11-20T11:40:00Z"
    )
    body = await response.json()
    spans = body["channels"]["combined"]
    assert sum(s["seconds"] for s in spans) == 660
    assert spans[0]["from"] == "2026-11-20T11:29:00Z"
    assert spans[1] == {
        "from": "2026-11-20T11:29:59Z",
        "first": NOW - 1801,
        "seconds": 300,
        "verdict": "unavailable",
    }
    month = await (
        await site.client.get("/api/v1/services/svc01/availability?month=2026-11")
    ).json()
    report = report_for(
        site.store, "svc01", start=1_793_491_200, end=1_796_083_200, commitment=99.9, now=NOW
    )
    assert month == report.to_json()


async def test_incident_list_pages_keep_the_old_answer(site: Site) -> None:
    """Without ?page the incident list is every incident as before; ?page=N gives 50 of them."""
    everything = (await (await site.client.get("/api/v1/incidents")).json())["incidents"]
    assert len(everything) == SERVICES * PER_SERVICE
    assert set(everything[0]) >= {"id", "clocks", "links"}
    page = await (await site.client.get("/api/v1/incidents?page=2&state=restored")).json()
    assert (page["page"], page["pages"], page["total"]) == (2, 20, SERVICES * PER_SERVICE - 1)
    assert len(page["incidents"]) == 50


async def test_status_page_renders_one_page_of_services(site: Site) -> None:
    """/ renders one page of services, each with a labelled cell per second of its hour, and a pager."""
    response = await site.client.get("/?page=2")
    assert response.status == 200
    assert response.headers.get("Content-Encoding") in ("gzip", "deflate")
    html = await response.text()
    assert html.count('<article class="service card"') == SERVICES_PER_PAGE
    assert f'data-service="svc{SERVICES_PER_PAGE:02d}"' in html
    assert f'data-service="svc{SERVICES_PER_PAGE - 1:02d}"' not in html
    cells = re.findall(r'<i data-verdict="(\w+)" data-second="([^"]+)" title="[^"]+"></i>', html)
    # Each service an hour of combined seconds (only svc00, on page 1, has an api probe).
    assert len(cells) == SERVICES_PER_PAGE * 3600
    assert {v for v, _ in cells} == {"available", "unavailable"}
    assert 'rel="prev"' in html
    assert 'rel="next"' in html
    assert "http://" not in html.replace("http://127.0.0.1", "")  # nothing fetched from elsewhere
    assert (await site.client.get(f"/?page={PAGES + 1}")).status == 400


async def test_incident_page_and_its_hours(site: Site) -> None:
    """An incident page shows an hour of its window, its clocks with local deadlines, the
    form (with a token field, the token never in the page) and the evidence links."""
    response = await site.client.get("/incidents/svc01-03")
    assert response.status == 200
    html = await response.text()
    assert 'data-fact="state">restored<' in html
    # Sixteen hours after opening, with no response recorded, the 15-minute target is missed.
    assert '<tr data-clock="first_response" data-state="breached">' in html
    assert "(UTC)" in html
    assert 'name="token" type="password"' in html
    assert TOKEN not in html
    for fmt in ("json", "csv", "md", "html"):
        assert f'evidence?format={fmt}" download="svc01-03.{fmt}"' in html
    # From the start of the minute before the first bad second (at :59) to the restore;
    # svc01 has no probes, so the board knows only its combined channel.
    assert html.count('data-verdict="') == 119 + 600
    assert (await site.client.get("/incidents/svc01-03?hour=2")).status == 400
    assert (await site.client.get("/incidents/nope")).status == 404


async def test_reports_page_lists_the_month_and_its_csv(site: Site) -> None:
    """The reports page shows every service for the month and pages its 1,000 incidents;
    the CSV is render_csv over the same reports `slawatch report` builds."""
    html = await (await site.client.get("/reports?month=2026-11&page=3")).text()
    assert "Incidents of 2026-11 (1000)" in html
    assert "page 3 of 20" in html
    assert html.count('<tr class="sev1" data-incident=') == 50
    month = re.search(r'<table id="month">.*?</table>', html, re.S)
    assert month is not None
    assert month.group(0).count("<tr data-service=") == SERVICES
    text = await (await site.client.get("/api/v1/reports?month=2026-11&format=csv")).text()
    expected = render_csv(
        report_for(
            site.store,
            f"svc{index:02d}",
            start=1_793_491_200,
            end=1_796_083_200,
            commitment=99.9,
            now=NOW,
        )
        for index in range(SERVICES)
    )
    assert text == expected
    rows = list(csv.DictReader(io.StringIO(text)))
    combined = next(r for r in rows if r["service"] == "svc00" and r["channel"] == "combined")
    assert combined["unavailable"] == "300"
    assert (await site.client.get("/reports?month=November")).status == 400


async def test_probers_show_misconfigured_targets(site: Site) -> None:
    """A target failing by its own configuration shows on this instance's prober row."""
    attempt = Attempt(
        "svc00",
        Channel.API,
        "send",
        "pages-1",
        NOW - 0.5,
        0.01,
        Outcome.CLIENT_ERROR,
        detail="HTTP 401",
        misconfigured=True,
    )
    site.daemon._on_attempt(attempt)
    [prober] = (await (await site.client.get("/api/v1/probers")).json())["probers"]
    assert prober["healthy"] is False
    assert prober["misconfigured"] == [{"service": "svc00", "target": "send", "detail": "HTTP 401"}]
    html = await (await site.client.get("/")).text()
    assert "svc00/send: HTTP 401" in html
