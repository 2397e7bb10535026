"""Ingestion of attempts from outside: OTLP/HTTP traces and the push API, on the daemon's web app.

``POST /v1/traces`` takes OpenTelemetry trace exports (OTLP/HTTP, protobuf or JSON,
gzip or not): each client span a service's traffic rule matches becomes an attempt
(:mod:`probe.traffic`). ``POST /api/v1/attempts`` takes JSON Lines in the replay format
(DESIGN.md §9) plus an optional ``source`` (``traffic`` when absent: the customer's own
calls). Every ingested attempt joins the per-second pool of its service and channel, as
a probe's does.

Rules every ingestion endpoint keeps:

- a bearer token is always required (``server.token``; without one, ingestion is off);
- the body is bounded (``ingest.max_body``, decompressed size included);
- bad lines or spans are refused one by one with a located reason, the good ones kept;
- an attempt whose second was judged less than ``ingest.max_behind`` ago (default: the
  classifier's horizon) is *late*: counted (metric, replay-style late count), never
  judged, so no verdict is rewritten; older ones, and those more than
  ``ingest.max_ahead`` ahead of this instance's clock, are refused with the reason.

Push answers: 200 ``{"accepted", "late", "refused", "errors"}`` when at least one
attempt was taken (or the body held none), 400 with the same body when every line was
refused, 401 without the right token, 403 when no token is configured, 413 for a body
past the bound, 415 for a content type that is not JSON Lines. OTLP answers use the same
statuses with OTLP's bodies (:mod:`slawatch.otlp`): a partial success names the spans
refused (those no rule matches among them); a request none of whose spans was taken is a
400, so an exporter sending everything shows it needs a filter (docs/traffic.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from classifier.engine import UnknownServiceError
from classifier.replay import ReplayError, parse_line
from config import LoadedConfig
from config.durations import format_duration
from config.timetext import format_time
from incidents.model import EventRecord
from incidents.store import Batch
from probe.attempt import Attempt, Channel, Source
from probe.traffic import Span, TrafficRules
from slawatch import otlp
from slawatch.daemon import Daemon
from slawatch.metrics import IngestMetrics
from slawatch.server import bearer_matches

# Errors listed in one answer (the count of refused lines is always complete).
MAX_ERRORS = 20
# Read from the request in pieces of this size (the bound is checked after each).
_CHUNK = 64 * 1024
# Spans taken between two yields to the event loop: a large export must not delay the
# probes' launches by more than a few milliseconds.
YIELD_EVERY = 128
# Redacted details remembered (traffic repeats few: "HTTP 200", "HTTP 503").
_MAX_DETAILS = 4096
JSON_LINES_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/jsonl",
        "application/json-lines",
        "application/json",
        "text/plain",
    }
)


class IngestError(Exception):
    """A whole request refused: its HTTP status, the metric reason and a message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


@dataclasses.dataclass
class Tally:
    """What one request's attempts came to."""

    accepted: int = 0
    late: int = 0
    refused: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    # Accepted attempts by (service, channel, source, outcome), and late ones by (service,
    # source): the metrics move once per request, not once per attempt.
    taken: Counter[tuple[str, str, str, str]] = dataclasses.field(default_factory=Counter)
    late_by: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    # (service, source) → the first and last second of its late attempts.
    late_seconds: dict[tuple[str, str], tuple[int, int]] = dataclasses.field(default_factory=dict)

    def refuse(self, message: str) -> None:
        """Count one refused item, keeping the first MAX_ERRORS messages."""
        self.refused += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)

    def to_json(self) -> dict[str, Any]:
        """The answer's body."""
        return {
            "accepted": self.accepted,
            "late": self.late,
            "refused": self.refused,
            "errors": self.errors,
        }


class Ingest:
    """Takes ingested attempts into the daemon's classifier and recorder, within the skew."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.metrics = IngestMetrics(daemon.metrics.core)
        # The traffic rules of the config they were compiled from (rebuilt after a reload).
        self._rules_of: LoadedConfig | None = None
        self._rules = TrafficRules([])
        # detail → redacted detail, for the config in ``_details_of``.
        self._details: dict[str, str] = {}
        self._details_of: LoadedConfig | None = None

    @property
    def rules(self) -> TrafficRules:
        """The traffic rules of the running config."""
        loaded = self.daemon.loaded
        if loaded is not self._rules_of:
            self._rules, self._rules_of = TrafficRules(loaded.config.services), loaded
        return self._rules

    def authorize(self, request: web.Request) -> None:
        """Refuse a request without the bearer token (always required for ingestion)."""
        token = self.daemon.loaded.config.server.token
        if token is None:
            raise IngestError(403, "unauthorized", "ingestion is off: it always needs server.token")
        if not bearer_matches(request.headers.get("Authorization", ""), token.get_secret_value()):
            raise IngestError(401, "unauthorized", "missing or wrong bearer token")

    def content_type(self, request: web.Request, accepted: frozenset[str], what: str) -> None:
        """Refuse a request whose content type is not one of ``accepted`` (``what`` names them)."""
        if request.content_type not in accepted:
            raise IngestError(
                415, "content_type", f"content type {request.content_type!r} is not {what}"
            )

    async def read_body(self, request: web.Request) -> bytes:
        """The request body (gzip already undone by the server), at most ``ingest.max_body``."""
        limit = self.daemon.loaded.config.ingest.max_body
        too_large = IngestError(413, "too_large", f"body is larger than {limit} bytes")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        body = bytearray()
        chunks = request.content.iter_chunked(_CHUNK)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return bytes(body)
            except Exception as exc:  # noqa: BLE001  (a broken gzip stream or a cut-off body)
                raise IngestError(400, "malformed", f"body cannot be read: {exc}") from None
            body += chunk
            if len(body) > limit:
                raise too_large

    def _redacted(self, detail: str) -> str:
        loaded = self.daemon.loaded
        if loaded is not self._details_of or len(self._details) >= _MAX_DETAILS:
            self._details, self._details_of = {}, loaded
        done = self._details.get(detail)
        if done is None:
            done = self._details[detail] = loaded.redact(detail)
        return done

    def take(self, attempt: Attempt, now: float, tally: Tally, where: str) -> None:
        """Pool one attempt, count it late, or refuse it with its reason (``where``: its line)."""
        daemon = self.daemon
        settings = daemon.loaded.config.ingest
        if attempt.channel is Channel.CONTROL:
            self._refuse(tally, "bad_line", f"{where}: channel: control attempts are not ingested")
            return
        if attempt.started_at > now + settings.max_ahead:
            self._refuse(
                tally,
                "too_new",
                f"{where}: started_at: {format_time(attempt.started_at, precision=3)} is more "
                f"than {format_duration(settings.max_ahead)} ahead of this instance's clock "
                f"({format_time(now, precision=3)})",
            )
            return
        horizon = daemon.classifier.buckets.horizon
        behind = horizon if settings.max_behind is None else settings.max_behind
        judged_at = math.floor(attempt.started_at) + 1 + horizon
        if now - judged_at > behind:
            self._refuse(
                tally,
                "too_old",
                f"{where}: started_at: {format_time(attempt.started_at, precision=3)} is too "
                f"old: its second was judged more than {format_duration(behind)} ago",
            )
            return
        detail = self._redacted(attempt.detail) if attempt.detail else ""
        if detail != attempt.detail:
            attempt = dataclasses.replace(attempt, detail=detail)
        try:
            taken = daemon.pool(attempt)
        except UnknownServiceError as exc:
            self._refuse(tally, "unknown_service", f"{where}: service: {exc}")
            return
        source = attempt.source.value
        tally.taken[attempt.service, attempt.channel.value, source, attempt.outcome.value] += 1
        tally.accepted += 1
        if not taken:
            tally.late += 1
            key = (attempt.service, source)
            tally.late_by[key] += 1
            second = attempt.second
            low, high = tally.late_seconds.get(key, (second, second))
            tally.late_seconds[key] = (min(low, second), max(high, second))

    async def note_late(self, tally: Tally, now: float) -> None:
        """Record a request's late attempts on their service's open incidents (evidence)."""
        daemon = self.daemon
        store = daemon.store
        if not tally.late_by or store is None:
            return
        events = []
        for kept in list(daemon.follower.open.values()):
            incident = kept.incident
            for (service, source), count in sorted(tally.late_by.items()):
                if service != incident.service:
                    continue
                first, last = tally.late_seconds[service, source]
                events.append(
                    EventRecord(
                        incident=incident.id,
                        kind="attempts_late",
                        at=now,
                        source="api",
                        recorded_at=now,
                        note=f"{count} {source} attempts of {format_time(first)} to "
                        f"{format_time(last)} arrived after their second was judged "
                        "(counted here, not in the verdicts)",
                        data={"count": count, "source": source, "first": first, "last": last},
                        key=f"late:{source}:{uuid.uuid4().hex}",
                    )
                )
        if events:
            await daemon.writer.run(store.commit, Batch(events=events))
            await daemon.writer.run(daemon.follower.sync, store)

    def _refuse(self, tally: Tally, reason: str, message: str) -> None:
        self.metrics.refuse(reason)
        tally.refuse(message)

    def push(self, lines: Iterable[bytes], now: float) -> Tally:
        """Take the attempts of JSON Lines (source ``traffic`` unless a line says otherwise)."""
        tally = Tally()
        for number, line in enumerate(lines, 1):
            try:
                attempt = parse_line(line, number, default_source=Source.TRAFFIC)
            except ReplayError as exc:
                self._refuse(tally, "bad_line", f"line {exc.line}: {exc.message}")
                continue
            if attempt is not None:
                self.take(attempt, now, tally, f"line {number}")
        self.metrics.count(tally.taken, tally.late_by)
        return tally

    async def traces(self, found: Iterable[Span], now: float) -> Tally:
        """Take the attempts of the spans that match a traffic rule; refuse the others."""
        tally = Tally()
        rules = self.rules
        for number, span in enumerate(found, 1):
            if not number % YIELD_EVERY:
                await asyncio.sleep(0)
            attempt = rules.attempt(span)
            if attempt is None:
                self._refuse(
                    tally, "no_rule", f"span {number} ({span.name!r}): matches no traffic rule"
                )
                continue
            self.take(attempt, now, tally, f"span {number}")
        self.metrics.count(tally.taken, tally.late_by)
        return tally


INGEST = web.AppKey("ingest", Ingest)
# Refusals listed in an OTLP answer's message.
OTLP_ERRORS_SHOWN = 5


def add_ingest_routes(app: web.Application, daemon: Daemon) -> None:
    """Mount the ingestion endpoints on the daemon's web application."""
    app[INGEST] = Ingest(daemon)
    app.router.add_post("/api/v1/attempts", push_attempts)
    app.router.add_post("/v1/traces", export_traces)


def _answer(tally: Tally) -> web.Response:
    status = 400 if tally.refused and not tally.accepted else 200
    return web.json_response(tally.to_json(), status=status)


def _refusal(ingest: Ingest, exc: IngestError) -> web.Response:
    ingest.metrics.refuse(exc.reason)
    headers = {"WWW-Authenticate": 'Bearer realm="slawatch"'} if exc.status == 401 else None
    return web.json_response({"error": str(exc)}, status=exc.status, headers=headers)


async def push_attempts(request: web.Request) -> web.Response:
    """``POST /api/v1/attempts``: JSON Lines of attempts (see the module docstring)."""
    ingest = request.app[INGEST]
    try:
        ingest.authorize(request)
        ingest.content_type(request, JSON_LINES_TYPES, "JSON Lines (send application/x-ndjson)")
        body = await ingest.read_body(request)
    except IngestError as exc:
        return _refusal(ingest, exc)
    now = ingest.daemon.clock.time()
    tally = ingest.push(body.split(b"\n"), now)
    await ingest.note_late(tally, now)
    return _answer(tally)


async def export_traces(request: web.Request) -> web.Response:
    """``POST /v1/traces``: an OTLP/HTTP trace export (see the module docstring)."""
    ingest = request.app[INGEST]
    # Refusals are written in the request's encoding when it names one, else in protobuf.
    encoding = request.content_type if request.content_type in otlp.ENCODINGS else otlp.PROTOBUF
    try:
        ingest.authorize(request)
        ingest.content_type(
            request, otlp.ENCODINGS, f"an OTLP encoding ({otlp.PROTOBUF} or {otlp.JSON})"
        )
        body = await ingest.read_body(request)
        try:
            export = otlp.decode(body, encoding)
        except otlp.OtlpError as exc:
            raise IngestError(400, "malformed", str(exc)) from None
    except IngestError as exc:
        ingest.metrics.refuse(exc.reason)
        headers = {"WWW-Authenticate": 'Bearer realm="slawatch"'} if exc.status == 401 else None
        return web.Response(
            body=otlp.failure(encoding, str(exc)),
            status=exc.status,
            content_type=encoding,
            headers=headers,
        )
    now = ingest.daemon.clock.time()
    tally = await ingest.traces(otlp.spans(export), now)
    await ingest.note_late(tally, now)
    message = "; ".join(tally.errors[:OTLP_ERRORS_SHOWN])
    if tally.refused:
        message = f"{tally.refused} spans refused: {message}"
    if tally.refused and not tally.accepted:
        return web.Response(body=otlp.failure(encoding, message), status=400, content_type=encoding)
    return web.Response(body=otlp.success(encoding, tally.refused, message), content_type=encoding)
