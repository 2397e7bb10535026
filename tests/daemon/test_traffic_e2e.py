"""The customer's own calls as evidence: the real OpenTelemetry SDK exporting to `slawatch run`.

An application makes its calls to a loopback fake provider with two real aiohttp
clients, instrumented by opentelemetry-instrumentation-aiohttp-client. One exports its
spans with the SDK's OTLP/HTTP exporter (protobuf, gzip), the other with an exporter
writing OTLP JSON. The provider fails every call for 20 s; the daemon (no probes of its
own) opens an incident starting at the first failing second, restores it, and its
evidence shows the traffic source.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from tests.support.daemon import Daemon, wait_for, write_config
from tests.support.servers import HOST, free_port

TOKEN = "traffic-e2e-token-0042"
FAIL_S = 20
CALLS_PER_SECOND = 4


class JsonOtlpExporter(SpanExporter):
    """OTLP/HTTP with the JSON encoding (the Python SDK's exporter speaks protobuf only)."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.endpoint = endpoint
        self.token = token
        self.statuses: list[int] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        document = json_format.MessageToDict(encode_spans(spans))
        # OTLP JSON writes ids in hex, not protobuf JSON's base64.
        for resource in document.get("resourceSpans", []):
            for scope in resource.get("scopeSpans", []):
                for item in scope.get("spans", []):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in item:
                            item[key] = _base64_to_hex(item[key])
        request = urllib.request.Request(  # noqa: S310  (a loopback URL)
            self.endpoint,
            data=json.dumps(document).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            self.statuses.append(response.status)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


def _base64_to_hex(text: str) -> str:
    return base64.b64decode(text).hex()


class Provider:
    """A fake Transmissions API on loopback that fails with 503 during [fail_from, fail_to)."""

    def __init__(self) -> None:
        self.fail_from = math.inf
        self.fail_to = math.inf

    async def handle(self, request: web.Request) -> web.Response:
        now = time.time()  # noqa: TID251  (the fake provider runs on real time)
        if self.fail_from <= now < self.fail_to:
            return web.Response(status=503, text="unavailable")
        return web.json_response({"results": {"id": "1"}})


def _provider(name: str, exporter: SpanExporter) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    return provider


async def _calls(
    sessions: Sequence[aiohttp.ClientSession], url: str, until: float
) -> dict[str, int]:
    """Calls at fixed offsets in each second (never near a boundary), until ``until``."""
    statuses: dict[str, int] = {}
    step = 1 / CALLS_PER_SECOND
    tick = math.floor(time.time()) + 1 + step / 2  # noqa: TID251
    while tick < until:
        await asyncio.sleep(max(0.0, tick - time.time()))  # noqa: TID251
        for session in sessions:
            async with session.post(url, json={"recipients": []}) as response:
                await response.read()
                statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
        tick += step
    return statuses


@pytest.mark.slow
async def test_sdk_spans_open_the_incident_at_the_first_failing_second(tmp_path: Path) -> None:
    """Spans of a 20 s outage open one incident at its first second; evidence shows traffic."""
    fake = Provider()
    app = web.Application()
    app.router.add_post("/api/v1/transmissions", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    provider_port = free_port()
    await web.TCPSite(runner, HOST, provider_port).start()
    port = free_port()
    write_config(
        tmp_path,
        {
            "prober": {"id": "traffic-e2e"},
            "server": {"listen": f"{HOST}:{port}", "token": TOKEN},
            "storage": {"path": "store.db"},
            "services": [
                {
                    "name": "sparkpost",
                    "sla": {"policy": "megaport", "calendar": "uk"},
                    "classifier": {"critical_after": "5s", "recover_after": "3s"},
                    "traffic": [
                        {
                            "match": {
                                "server.address": HOST,
                                "url.path": "^/api/v1/transmissions",
                            },
                            "target": "transmissions",
                        }
                    ],
                }
            ],
        },
    )
    daemon = Daemon(tmp_path, port)
    endpoint = f"http://{HOST}:{port}/v1/traces"
    protobuf = _provider(
        "checkout",
        OTLPSpanExporter(
            endpoint=endpoint,
            headers={"Authorization": f"Bearer {TOKEN}"},
            compression=Compression.Gzip,
        ),
    )
    as_json = JsonOtlpExporter(endpoint, TOKEN)
    json_provider = _provider("billing", as_json)
    url = f"http://{HOST}:{provider_port}/api/v1/transmissions"
    try:
        daemon.start()
        async with (
            aiohttp.ClientSession(
                trace_configs=[create_trace_config(tracer_provider=protobuf)]
            ) as checkout,
            aiohttp.ClientSession(
                trace_configs=[create_trace_config(tracer_provider=json_provider)]
            ) as billing,
        ):
            first_failing = math.floor(time.time()) + 5  # noqa: TID251
            fake.fail_from, fake.fail_to = first_failing, first_failing + FAIL_S
            statuses = await _calls([checkout, billing], url, first_failing + FAIL_S + 6)
        protobuf.force_flush()
        json_provider.force_flush()
        assert statuses["503"] == 2 * FAIL_S * CALLS_PER_SECOND
        assert set(as_json.statuses) == {200}

        def restored() -> Any:
            found = daemon.json("/api/v1/incidents")["incidents"]
            return found if found and found[0]["restored_at"] else None

        incidents = wait_for(restored, 40, "the incident restored", process=daemon.proc)
        assert len(incidents) == 1
        incident = incidents[0]
        assert incident["started_at"] == _rfc3339(first_failing)
        assert incident["channels"] == ["api"]
        _check_evidence(daemon, incident["id"])
    finally:
        protobuf.shutdown()
        json_provider.shutdown()
        daemon.stop()
        await runner.cleanup()


def _check_evidence(daemon: Daemon, incident: str) -> None:
    """The bundle's samples, records and summary show the traffic source; so does the ticket."""
    status, body = daemon.get(f"/api/v1/incidents/{incident}/evidence?format=json")
    assert status == 200
    bundle = json.loads(body)
    probers = {sample["prober"] for sample in bundle["samples"]}
    assert probers == {"traffic:checkout", "traffic:billing"}
    failing = [s for s in bundle["samples"] if s["outcome"] == "server_error"]
    assert failing
    assert {(s["detail"], s["source"]) for s in failing} == {("HTTP 503", "traffic")}
    calls = 2 * FAIL_S * CALLS_PER_SECOND
    counted = bundle["summary"]["sources"]["api"]["unavailable"]
    assert counted["traffic"] == {"attempts": calls, "failed": calls}
    bad = [r for r in bundle["records"] if r["verdict"] == "unavailable"]
    assert len(bad) == FAIL_S
    assert {r["traffic_server_error"] for r in bad} == {2 * CALLS_PER_SECOND}
    markdown = daemon.get(f"/api/v1/incidents/{incident}/evidence?format=md")[1]
    assert markdown.decode().splitlines()[2] == (
        f"In each of these {FAIL_S} seconds, all {calls} of our production API calls "
        "failed (HTTP 503)."
    )
    metrics = daemon.get("/metrics")[1].decode()
    assert (
        'slawatch_ingested_attempts_total{channel="api",outcome="server_error",'
        'service="sparkpost",source="traffic"} '
        f"{float(2 * FAIL_S * CALLS_PER_SECOND)}"
    ) in metrics


def _rfc3339(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
