"""The push API (POST /api/v1/attempts), in process on a manual clock over a real SQLite store."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from config.timetext import format_time
from incidents.evidence import evidence_source, write_evidence
from tests.support.site import Site, open_site

NOW = 1_795_176_000  # 2026-11-20T12:00:00Z
TOKEN = "push-token-0042"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
# No probes: the horizon is the default timeout plus one second.
HORIZON = 11


async def _site(
    tmp_path: Path, server: dict[str, Any], ingest: dict[str, Any], **service: Any
) -> Site:
    config = {
        "prober": {"id": "push-1"},
        "server": {"listen": "127.0.0.1:9797", **server},
        "ingest": ingest,
        "services": [{"name": "sparkpost", **service}],
    }
    return await open_site(tmp_path, config, NOW)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """A daemon with a token and a late window of 30 s."""
    made = await _site(tmp_path, {"token": TOKEN}, {"max_behind": "30s", "max_body": 4096})
    try:
        yield made
    finally:
        await made.close()


def line(at: float, outcome: str = "server_error", **extra: Any) -> str:
    record = {
        "service": "sparkpost",
        "channel": "api",
        "target": "transmissions",
        "started_at": format_time(at, precision=3),
        "outcome": outcome,
        **extra,
    }
    return json.dumps(record)


def refused(site: Site, reason: str) -> float:
    value = site.daemon.registry.get_sample_value(
        "slawatch_ingest_refused_total", {"reason": reason}
    )
    assert value is not None
    return value


async def push(site: Site, body: str | bytes, headers: dict[str, str] | None = None) -> Any:
    response = await site.client.post(
        "/api/v1/attempts", data=body, headers=AUTH if headers is None else headers
    )
    return response.status, await response.json()


async def test_good_lines_are_kept_and_bad_ones_located(site: Site) -> None:
    """A bad line is refused with its line number and field; the lines around it are taken."""
    body = "\n".join(
        [line(NOW - 0.5), line(NOW - 0.4, "exploded"), "", line(NOW - 0.3, "timeout"), ""]
    )
    status, answer = await push(site, body)
    assert status == 200
    assert answer == {
        "accepted": 2,
        "late": 0,
        "refused": 1,
        "errors": ["line 2: outcome: unknown outcome 'exploded'"],
    }
    assert refused(site, "bad_line") == 1
    ingested = site.daemon.registry.get_sample_value(
        "slawatch_ingested_attempts_total",
        {"service": "sparkpost", "channel": "api", "source": "traffic", "outcome": "timeout"},
    )
    assert ingested == 1


async def test_pushed_traffic_is_judged_with_counts_by_source(site: Site) -> None:
    """Pushed failures make unavailable seconds whose runs keep the traffic counts."""
    body = "\n".join(line(NOW - 3 + i + 0.25) for i in range(3))
    probe = line(NOW - 3 + 0.5, "ok", source="probe", prober="eu-9")
    status, answer = await push(site, body + "\n" + probe)
    assert (status, answer["accepted"]) == (200, 4)
    site.clock.advance(HORIZON + 1.05)
    await site.daemon.tick(site.clock.time())
    runs = site.store.runs("sparkpost", "api", NOW - 3, NOW - 1)
    assert [(r.verdict, r.first, r.last) for r in runs] == [
        ("partial", NOW - 3, NOW - 3),
        ("unavailable", NOW - 2, NOW - 1),
    ]
    assert runs[0].counts[:3] == (1, 0, 1)
    assert runs[0].traffic[:3] == (0, 0, 1)
    samples = site.store.samples("sparkpost", NOW - 3, NOW - 3)
    assert {(s.prober, s.source.value) for s in samples} == {
        ("traffic:push", "traffic"),
        ("eu-9", "probe"),
    }


async def test_late_old_and_future_attempts(site: Site) -> None:
    """After its second is judged an attempt is late (counted, not judged); older or future ones are refused."""
    await push(site, line(NOW - 1.5, "ok"))
    site.clock.advance(HORIZON + 5)
    await site.daemon.tick(site.clock.time())
    before = site.store.runs("sparkpost", "api", NOW - 2, NOW - 2)
    status, answer = await push(
        site,
        "\n".join(
            [line(NOW - 1.5), line(NOW - 100), line(NOW + HORIZON + 5 + 6), line(NOW + HORIZON)]
        ),
    )
    assert status == 200
    assert (answer["accepted"], answer["late"], answer["refused"]) == (2, 1, 2)
    assert answer["errors"] == [
        "line 2: started_at: 2026-11-20T11:58:20.000Z is too old: its second was judged more than 30s ago",
        "line 3: started_at: 2026-11-20T12:00:22.000Z is more than 5s ahead of this instance's clock (2026-11-20T12:00:16.000Z)",
    ]
    assert (refused(site, "too_old"), refused(site, "too_new")) == (1, 1)
    late = site.daemon.registry.get_sample_value(
        "slawatch_ingest_late_attempts_total", {"service": "sparkpost", "source": "traffic"}
    )
    assert late == 1
    site.clock.advance(HORIZON)
    await site.daemon.tick(site.clock.time())
    assert site.store.runs("sparkpost", "api", NOW - 2, NOW - 2) == before


@pytest.mark.parametrize(
    ("body", "status", "reason", "message"),
    [
        pytest.param(
            "{}\n",
            400,
            "bad_line",
            "line 1: service: missing",
            id="all-bad",
        ),
        pytest.param(
            line(NOW, service="nope"),
            400,
            "unknown_service",
            "line 1: service: unknown service 'nope' (not in the configuration)",
            id="unknown-service",
        ),
        pytest.param(
            line(NOW, channel="control"),
            400,
            "bad_line",
            "line 1: channel: control attempts are not ingested",
            id="control",
        ),
    ],
)
async def test_lines_refused(site: Site, body: str, status: int, reason: str, message: str) -> None:
    """Each refused line names its reason; a request taking nothing is a 400."""
    got, answer = await push(site, body)
    assert (got, answer["errors"]) == (status, [message])
    assert refused(site, reason) == 1


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason", "message"),
    [
        pytest.param({}, "", 401, "unauthorized", "missing or wrong bearer token", id="no-token"),
        pytest.param(
            {**AUTH, "Authorization": "Bearer nope"},
            "",
            401,
            "unauthorized",
            "missing or wrong bearer token",
            id="wrong-token",
        ),
        pytest.param(
            {**AUTH, "Content-Type": "application/xml"},
            "",
            415,
            "content_type",
            "content type 'application/xml' is not JSON Lines (send application/x-ndjson)",
            id="content-type",
        ),
        pytest.param(
            AUTH, "x" * 5000, 413, "too_large", "body is larger than 4096 bytes", id="too-large"
        ),
        pytest.param(
            {**AUTH, "Content-Encoding": "gzip"},
            gzip.compress(b"\n" * 5000),
            413,
            "too_large",
            "body is larger than 4096 bytes",
            id="gzip-bomb",
        ),
    ],
)
async def test_requests_refused(  # noqa: PLR0917  (the parametrized table's columns)
    site: Site, headers: dict[str, str], body: str | bytes, status: int, reason: str, message: str
) -> None:
    """A request without the token, of another type or past the bound is refused whole."""
    got, answer = await push(site, body, headers)
    assert (got, answer) == (status, {"error": message})
    assert refused(site, reason) == 1


async def test_gzip_bodies_are_read(site: Site) -> None:
    """A gzip-encoded body is taken; a broken one is refused as malformed."""
    packed = gzip.compress(line(NOW - 0.5).encode())
    status, answer = await push(site, packed, {**AUTH, "Content-Encoding": "gzip"})
    assert (status, answer["accepted"]) == (200, 1)
    status, answer = await push(
        site, b"\x1f\x8b" + b"not gzip" * 10, {**AUTH, "Content-Encoding": "gzip"}
    )
    assert status == 400
    assert answer["error"].startswith("body cannot be read")
    assert refused(site, "malformed") == 1


async def test_no_token_configured_means_no_ingestion(tmp_path: Path) -> None:
    """Even on loopback, ingestion needs server.token: without it the answer is 403."""
    made = await _site(tmp_path, {}, {})
    try:
        status, answer = await push(made, line(NOW), {"Content-Type": "application/x-ndjson"})
        assert (status, answer) == (
            403,
            {"error": "ingestion is off: it always needs server.token"},
        )
    finally:
        await made.client.close()
        made.store.close()


async def test_late_attempts_are_noted_on_the_open_incident(tmp_path: Path) -> None:
    """Late attempts land as an event on the open incident, and its evidence counts them."""
    made = await _site(
        tmp_path,
        {"token": TOKEN},
        {"max_behind": "30s"},
        sla={"policy": "megaport", "calendar": "uk"},
        classifier={"critical_after": "3s"},
    )
    try:
        for offset in range(6):
            status, _ = await push(made, line(NOW + offset + 0.5))
            assert status == 200
            made.clock.advance(1)
            await made.daemon.tick(made.clock.time())
        made.clock.advance(HORIZON + 1)
        await made.daemon.tick(made.clock.time())
        (incident,) = made.store.incidents(state="open")
        status, answer = await push(made, line(NOW + 1.5) + "\n" + line(NOW + 2.5))
        assert (status, answer["late"]) == (200, 2)
        late = [e for e in made.store.events(incident.id) if e.kind == "attempts_late"]
        assert [e.data for e in late] == [
            {"count": 2, "source": "traffic", "first": NOW + 1, "last": NOW + 2}
        ]
        assert late[0].note == (
            "2 traffic attempts of 2026-11-20T12:00:01Z to 2026-11-20T12:00:02Z arrived after "
            "their second was judged (counted here, not in the verdicts)"
        )
        source = evidence_source(
            made.store, incident.id, made.daemon.loaded, now=made.clock.time(), version="t"
        )
        assert source is not None
        assert source.head["summary"]["late_attempts"] == 2
        out = io.StringIO()
        write_evidence(out, "md", source)
        assert (
            "- **Late attempts:** 2 ingested attempts arrived after their second" in out.getvalue()
        )
    finally:
        await made.client.close()
        made.store.close()
