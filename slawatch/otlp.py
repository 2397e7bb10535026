"""OTLP/HTTP trace exports decoded into spans, and the answers OTLP clients expect.

Decoding uses the OpenTelemetry project's generated protobuf classes
(``opentelemetry-proto``): the binary encoding (``application/x-protobuf``) with
``FromString``, the JSON encoding (``application/json``) with protobuf's JSON parser.
OTLP JSON writes trace and span ids in hex where protobuf's JSON mapping expects
base64; the ids are not needed here, so they are dropped before parsing, and unknown
fields are ignored, as the OTLP specification asks of receivers.

Answers: ``ExportTraceServiceResponse`` on success (``partial_success`` counting the
spans refused), a ``google.rpc.Status`` on refusal, each in the request's encoding.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as SpanStatusProto

from probe.traffic import Span, SpanStatus

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ENCODINGS = frozenset({PROTOBUF, JSON})
# gRPC's INVALID_ARGUMENT, the code of a Status refusing malformed input.
INVALID_ARGUMENT = 3
_IDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_STATUS: dict[int, SpanStatus] = {
    SpanStatusProto.STATUS_CODE_UNSET: "unset",
    SpanStatusProto.STATUS_CODE_OK: "ok",
    SpanStatusProto.STATUS_CODE_ERROR: "error",
}
_NANO = 1e-9


class OtlpError(ValueError):
    """The body is not an OTLP trace export in the encoding it claims."""


def decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """The export request of a body in ``content_type`` (one of ENCODINGS); OtlpError if not one."""
    if content_type == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(body)
        except DecodeError as exc:
            raise OtlpError(f"not an OTLP protobuf trace export: {exc}") from None
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OtlpError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OtlpError("not an OTLP JSON trace export: expected an object")
    _drop_ids(document)
    try:
        parsed = json_format.ParseDict(
            document, ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise OtlpError(f"not an OTLP JSON trace export: {exc}") from None
    assert isinstance(parsed, ExportTraceServiceRequest)  # noqa: S101  (ParseDict's own type)
    return parsed


def _drop_ids(document: dict[str, Any]) -> None:
    """Remove the (hex) ids of spans and links, which protobuf's JSON parser reads as base64."""
    for resource in _items(document, "resourceSpans", "resource_spans"):
        for scope in _items(resource, "scopeSpans", "scope_spans"):
            for span in _items(scope, "spans"):
                for key in _IDS:
                    span.pop(key, None)
                for link in _items(span, "links"):
                    for key in _IDS:
                        link.pop(key, None)


def _items(document: Any, *keys: str) -> Iterator[dict[str, Any]]:
    if not isinstance(document, dict):
        return
    for key in keys:
        values = document.get(key)
        if isinstance(values, list):
            yield from (value for value in values if isinstance(value, dict))


def spans(request: ExportTraceServiceRequest) -> Iterator[Span]:
    """Every span of an export, with its resource's service.name."""
    for resource_spans in request.resource_spans:
        service = _attributes(resource_spans.resource.attributes).get("service.name", "")
        service_name = service if isinstance(service, str) else str(service)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield _span(span, service_name)


def _span(span: ProtoSpan, service_name: str) -> Span:
    exceptions = []
    for event in span.events:
        if event.name == "exception":
            found = _attributes(event.attributes)
            kind = found.get("exception.type", "")
            message = found.get("exception.message", "")
            exceptions.append(f"{kind}: {message}" if message else str(kind))
    return Span(
        name=span.name,
        kind=span.kind,
        start=span.start_time_unix_nano * _NANO,
        end=span.end_time_unix_nano * _NANO,
        attributes=_attributes(span.attributes),
        status=_STATUS.get(span.status.code, "unset"),
        status_message=span.status.message,
        exceptions=tuple(exceptions),
        service_name=service_name,
    )


def _attributes(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """Scalar attributes by key (arrays, maps, bytes and empty values are left out)."""
    found: dict[str, Any] = {}
    for item in attributes:
        value = item.value
        kind = value.WhichOneof("value")
        if kind in _SCALARS:
            found[item.key] = getattr(value, kind)
    return found


_SCALARS = frozenset({"string_value", "int_value", "bool_value", "double_value"})


def success(content_type: str, refused: int, message: str) -> bytes:
    """The body of a 200 answer: an ExportTraceServiceResponse (partial success if ``refused``)."""
    response = ExportTraceServiceResponse()
    if refused:
        response.partial_success.rejected_spans = refused
        response.partial_success.error_message = message
    return _encode(response, content_type)


def failure(content_type: str, message: str, code: int = INVALID_ARGUMENT) -> bytes:
    """The body of a 4xx answer: a ``google.rpc.Status`` naming what was wrong."""
    return _encode(Status(code=code, message=message), content_type)


def _encode(message: Message, content_type: str) -> bytes:
    if content_type == JSON:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()
