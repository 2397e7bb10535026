"""OTLP/HTTP POST /v1/traces in process: both encodings, gzip, and every bad input of the issue."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.proto.trace.v1.trace_pb2 import Status as SpanStatus

from incidents.sqlite_store import SqliteStore
from probe.clock import ManualClock
from slawatch.daemon import Daemon
from tests.support.site import open_site

NOW = 1_795_176_000  # 2026-11-20T12:00:00Z
TOKEN = "otlp-token-0042"
PROTOBUF = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"}
JSON = {**PROTOBUF, "Content-Type": "application/json"}
HORIZON = 11


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    return AnyValue(string_value=value)


def span(
    at: float,
    status: int | None = 503,
    *,
    host: str = "api.sparkpost.com",
    kind: int = Span.SPAN_KIND_CLIENT,
    **extra: Any,
) -> Span:
    attributes = {"server.address": host, "url.path": "/api/v1/transmissions", **extra}
    if status is not None:
        attributes["http.response.status_code"] = status
    return Span(
        trace_id=bytes(range(16)),
        span_id=bytes(range(8)),
        name="POST",
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=int(at * 1e9),
        end_time_unix_nano=int((at + 0.2) * 1e9),
        attributes=[KeyValue(key=k, value=_value(v)) for k, v in attributes.items()],
    )


def export(*spans: Span, service: str = "checkout") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    resource.scope_spans.add().spans.extend(spans)
    return request


def as_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP JSON as the Collector writes it: lowerCamelCase, ids in hex."""
    document = json_format.MessageToDict(request)
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for item in scope["spans"]:
                item["traceId"] = bytes(range(16)).hex()
                item["spanId"] = bytes(range(8)).hex()
    return json.dumps(document).encode()


@pytest.fixture
async def site(
    tmp_path: Path,
) -> AsyncIterator[tuple[Daemon, ManualClock, TestClient, SqliteStore]]:
    """A daemon with a traffic rule for the Transmissions API, on a manual clock."""
    config = {
        "server": {"listen": "127.0.0.1:9797", "token": TOKEN},
        "ingest": {"max_body": 1024 * 1024},
        "services": [
            {
                "name": "sparkpost",
                "traffic": [
                    {
                        "match": {
                            "server.address": "api.sparkpost.com",
                            "url.path": "^/api/v1/transmissions",
                        },
                        "target": "transmissions",
                    },
                    {
                        "match": {"server.address": "smtp.sparkpost.com"},
                        "channel": "smtp",
                        "reply_code": "smtp.reply.code",
                    },
                ],
            }
        ],
    }
    made = await open_site(tmp_path, config, NOW)
    try:
        yield made.daemon, made.clock, made.client, made.store
    finally:
        await made.close()


async def post(client: TestClient, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
    # A large body goes as a stream (aiohttp warns about raw bytes that large).
    data: bytes | io.BytesIO = io.BytesIO(body) if len(body) > 1024 * 1024 else body
    response = await client.post("/v1/traces", data=data, headers=headers)
    return response.status, await response.read(), response.content_type


def refused(daemon: Daemon, reason: str) -> float:
    value = daemon.registry.get_sample_value("slawatch_ingest_refused_total", {"reason": reason})
    assert value is not None
    return value


def ingested(daemon: Daemon, channel: str, outcome: str) -> float | None:
    return daemon.registry.get_sample_value(
        "slawatch_ingested_attempts_total",
        {"service": "sparkpost", "channel": channel, "source": "traffic", "outcome": outcome},
    )


async def test_both_encodings_and_gzip_are_taken(site: Any) -> None:
    """Protobuf, OTLP JSON (hex ids) and gzip-compressed protobuf: each span an attempt."""
    daemon, clock, client, store = site
    body = export(span(NOW - 2.5), span(NOW - 2.4, 200)).SerializeToString()
    status, answer, ctype = await post(client, body, PROTOBUF)
    assert (status, ctype) == (200, "application/x-protobuf")
    assert ExportTraceServiceResponse.FromString(answer) == ExportTraceServiceResponse()
    status, answer, ctype = await post(client, as_otlp_json(export(span(NOW - 1.5))), JSON)
    assert (status, ctype, json.loads(answer)) == (200, "application/json", {})
    packed = gzip.compress(export(span(NOW - 0.5, 500)).SerializeToString())
    status, _, _ = await post(client, packed, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert status == 200
    assert (ingested(daemon, "api", "server_error"), ingested(daemon, "api", "ok")) == (3, 1)
    clock.advance(HORIZON + 1.05)
    await daemon.tick(clock.time())
    runs = store.runs("sparkpost", "api", NOW - 3, NOW - 1)
    assert [(r.verdict, r.first, r.last) for r in runs] == [
        ("partial", NOW - 3, NOW - 3),
        ("unavailable", NOW - 2, NOW - 1),
    ]
    assert all(r.traffic == r.counts for r in runs)
    samples = store.samples("sparkpost", NOW - 1, NOW - 1)
    assert [(s.prober, s.target, s.detail) for s in samples] == [
        ("traffic:checkout", "transmissions", "HTTP 500")
    ]


async def test_partial_success_names_the_refused_spans(site: Any) -> None:
    """Spans no rule matches are counted in partial_success; the matching ones are taken."""
    daemon, _, client, _ = site
    body = export(span(NOW - 1), span(NOW - 1, host="other.example"), span(NOW, kind=2))
    status, answer, _ = await post(client, body.SerializeToString(), PROTOBUF)
    assert status == 200
    partial = ExportTraceServiceResponse.FromString(answer).partial_success
    assert partial.rejected_spans == 2
    assert partial.error_message == (
        "2 spans refused: span 2 ('POST'): matches no traffic rule; "
        "span 3 ('POST'): matches no traffic rule"
    )
    assert refused(daemon, "no_rule") == 2


async def test_smtp_spans_and_error_spans(site: Any) -> None:
    """An SMTP client span maps by its reply code; an HTTP span without status by its error."""
    daemon, _, client, _ = site
    smtp = span(NOW - 1, None, host="smtp.sparkpost.com", **{"server.port": 587})
    smtp.attributes.append(KeyValue(key="smtp.reply.code", value=AnyValue(int_value=451)))
    broken = span(NOW - 1, None)
    broken.status.CopyFrom(SpanStatus(code=SpanStatus.STATUS_CODE_ERROR, message="timed out"))
    event = broken.events.add()
    event.name = "exception"
    event.attributes.append(
        KeyValue(key="exception.type", value=AnyValue(string_value="TimeoutError"))
    )
    status, _, _ = await post(client, export(smtp, broken).SerializeToString(), PROTOBUF)
    assert status == 200
    assert ingested(daemon, "smtp", "server_error") == 1
    assert ingested(daemon, "api", "timeout") == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason", "message"),
    [
        pytest.param(
            b"\xff\xff\xff",
            PROTOBUF,
            400,
            "malformed",
            "not an OTLP protobuf trace export",
            id="bad-protobuf",
        ),
        pytest.param(b"{nope", JSON, 400, "malformed", "not JSON", id="bad-json"),
        pytest.param(
            b'{"resourceSpans": 3}',
            JSON,
            400,
            "malformed",
            "not an OTLP JSON trace export",
            id="bad-otlp-json",
        ),
        pytest.param(
            b"[]",
            JSON,
            400,
            "malformed",
            "not an OTLP JSON trace export: expected an object",
            id="json-array",
        ),
        pytest.param(
            b"x",
            {**PROTOBUF, "Content-Type": "text/html"},
            415,
            "content_type",
            "content type 'text/html' is not an OTLP encoding (application/x-protobuf or application/json)",
            id="content-type",
        ),
        pytest.param(
            b"x",
            {"Content-Type": "application/x-protobuf"},
            401,
            "unauthorized",
            "missing or wrong bearer token",
            id="no-token",
        ),
        pytest.param(
            b"\0" * (50 * 1024 * 1024),
            PROTOBUF,
            413,
            "too_large",
            "body is larger than 1048576 bytes",
            id="50MB",
        ),
        pytest.param(
            export(span(NOW, host="other.example")).SerializeToString(),
            PROTOBUF,
            400,
            "no_rule",
            "1 spans refused: span 1 ('POST'): matches no traffic rule",
            id="no-rule",
        ),
        pytest.param(
            export(span(0.5)).SerializeToString(),
            PROTOBUF,
            400,
            "too_old",
            "1 spans refused: span 1: started_at: 1970-01-01T00:00:00.500Z is too old: its second was judged more than 11s ago",
            id="1970",
        ),
        pytest.param(
            export(span(NOW + 365 * 86_400)).SerializeToString(),
            PROTOBUF,
            400,
            "too_new",
            "1 spans refused: span 1: started_at: 2027-11-20T12:00:00.000Z is more than 5s ahead of this instance's clock (2026-11-20T12:00:00.000Z)",
            id="next-year",
        ),
    ],
)
async def test_bad_input_gets_a_clear_4xx(  # noqa: PLR0917  (the parametrized table's columns)
    site: Any, body: bytes, headers: dict[str, str], status: int, reason: str, message: str
) -> None:
    """Each bad input is a 4xx with a google.rpc.Status saying why; the counter moves; nothing is lost."""
    daemon, clock, client, store = site
    good, _, _ = await post(client, export(span(NOW - 1.5)).SerializeToString(), PROTOBUF)
    assert good == 200
    got, answer, ctype = await post(client, body, headers)
    assert got == status
    if ctype == "application/json":
        text = json.loads(answer)["message"]
    else:
        text = Status.FromString(answer).message
    assert text.startswith(message)
    assert refused(daemon, reason) == 1
    clock.advance(HORIZON + 1.05)
    await daemon.tick(clock.time())
    assert [r.verdict for r in store.runs("sparkpost", "api", NOW - 2, NOW - 2)] == ["unavailable"]
