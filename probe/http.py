"""The HTTP probe: one request per attempt, timed per phase, failures mapped to outcomes.

A ``fresh`` target's attempt opens its own connection with the lean client of
probe/fresh.py; a ``reuse`` target's attempts share aiohttp's keep-alive pool.

Exception table (first match wins, subclasses first; one test case per row; the rows
marked aiohttp come from ``reuse`` targets, the fresh ones from ``fresh`` targets)::

    exception                        condition  outcome           detail
    -------------------------------  ---------  ----------------  -----------------------------
    ClientConnectorCertificateError             tls_error         certificate rejected
    ClientConnectorSSLError                     tls_error         TLS handshake failed
    ClientConnectorDNSError                     dns_error         name did not resolve
    ClientConnectorError             EMFILE...  probe_error       local resources exhausted
    ClientConnectorError                        connection_error  connect failed
    TimeoutError (ServerTimeout...)  phase dns  dns_error         resolver did not answer
    TimeoutError (ServerTimeout...)             timeout           deadline passed
    ServerDisconnectedError                     connection_error  closed before a full response
    ClientPayloadError                          connection_error  response body cut short
    ClientOSError                               connection_error  connection error
    ClientResponseError                         server_error      malformed response
    ClientError                                 connection_error  client error
    SSLCertVerificationError                    tls_error         certificate rejected
    SSLError                                    tls_error         TLS handshake failed
    gaierror                                    dns_error         name did not resolve
    ConnectFailed                    EMFILE...  probe_error       local resources exhausted
    ConnectFailed                               connection_error  connect failed
    ServerClosed                                connection_error  closed before a full response
    BodyCutShort                                connection_error  response body cut short
    HttpParserError                             server_error      malformed response
    OSError                                     connection_error  connection error
    Exception                                   probe_error       bug in the probe

The aiohttp rows come first (its exceptions are OSErrors too); the fresh client's own
are in probe/fresh.py. A response is judged by its status: an expected status (default
200-399) with the body check passing is ``ok``; 504 and 408 are ``timeout``; 429
``rate_limited``; other 5xx ``server_error``; anything else ``client_error``; an expected
status whose body lacks the ``expect_body`` text is ``server_error`` (the service
answered, but not with the content). Redirects are not followed: the configured URL is
the call being measured.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
from collections.abc import Hashable
from types import SimpleNamespace

import aiohttp
import httptools
from yarl import URL

from config.model import HttpTarget, ServiceConfig
from probe.attempt import Attempt, Channel, Outcome
from probe.base import ErrorRow, ProbeContext, exception_text, local_exhaustion, match_error
from probe.fresh import (
    BodyCutShort,
    ConnectFailed,
    NeedleScan,
    Request,
    ServerClosed,
    Trace,
    exchange,
)

# Outcome mapping of exceptions, in order: see the module docstring.
HTTP_ERRORS: tuple[ErrorRow, ...] = (
    ErrorRow(aiohttp.ClientConnectorCertificateError, Outcome.TLS_ERROR, "certificate rejected"),
    ErrorRow(aiohttp.ClientConnectorSSLError, Outcome.TLS_ERROR, "TLS handshake failed"),
    ErrorRow(aiohttp.ClientConnectorDNSError, Outcome.DNS_ERROR, "name did not resolve"),
    ErrorRow(
        aiohttp.ClientConnectorError,
        Outcome.PROBE_ERROR,
        "local resources exhausted",
        when=local_exhaustion,
    ),
    ErrorRow(aiohttp.ClientConnectorError, Outcome.CONNECTION_ERROR, "connect failed"),
    ErrorRow(TimeoutError, Outcome.TIMEOUT, "deadline passed"),
    ErrorRow(
        aiohttp.ServerDisconnectedError,
        Outcome.CONNECTION_ERROR,
        "closed before a full response",
    ),
    ErrorRow(aiohttp.ClientPayloadError, Outcome.CONNECTION_ERROR, "response body cut short"),
    ErrorRow(aiohttp.ClientOSError, Outcome.CONNECTION_ERROR, "connection error"),
    ErrorRow(aiohttp.ClientResponseError, Outcome.SERVER_ERROR, "malformed response"),
    ErrorRow(aiohttp.ClientError, Outcome.CONNECTION_ERROR, "client error"),
    ErrorRow(ssl.SSLCertVerificationError, Outcome.TLS_ERROR, "certificate rejected"),
    ErrorRow(ssl.SSLError, Outcome.TLS_ERROR, "TLS handshake failed"),
    ErrorRow(socket.gaierror, Outcome.DNS_ERROR, "name did not resolve"),
    ErrorRow(
        ConnectFailed, Outcome.PROBE_ERROR, "local resources exhausted", when=local_exhaustion
    ),
    ErrorRow(ConnectFailed, Outcome.CONNECTION_ERROR, "connect failed"),
    ErrorRow(ServerClosed, Outcome.CONNECTION_ERROR, "closed before a full response"),
    ErrorRow(BodyCutShort, Outcome.CONNECTION_ERROR, "response body cut short"),
    ErrorRow(httptools.HttpParserError, Outcome.SERVER_ERROR, "malformed response"),
    ErrorRow(OSError, Outcome.CONNECTION_ERROR, "connection error"),
    ErrorRow(Exception, Outcome.PROBE_ERROR, "bug in the probe"),
)

_CHUNK = 64 * 1024


def status_outcome(status: int, expected: frozenset[int]) -> Outcome:
    """The outcome of a complete response with this status (body check aside)."""
    if status in expected:
        return Outcome.OK
    if status in (504, 408):
        return Outcome.TIMEOUT
    if status == 429:
        return Outcome.RATE_LIMITED
    if 500 <= status <= 599:
        return Outcome.SERVER_ERROR
    return Outcome.CLIENT_ERROR


def _trace_config() -> aiohttp.TraceConfig:
    """Trace hooks that record phases and timings into the request's ``Trace``."""
    config = aiohttp.TraceConfig()

    def hook(phase: str, mark: str) -> object:
        async def on_signal(
            session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object
        ) -> None:
            trace = ctx.trace_request_ctx
            if isinstance(trace, Trace):
                trace.phase = phase
                trace.marks[mark] = trace.clock()

        return on_signal

    config.on_connection_create_start.append(hook("connect", "connect_start"))  # type: ignore[arg-type]
    config.on_dns_resolvehost_start.append(hook("dns", "dns_start"))  # type: ignore[arg-type]
    config.on_dns_resolvehost_end.append(hook("connect", "dns_end"))  # type: ignore[arg-type]
    config.on_connection_create_end.append(hook("request", "connect_end"))  # type: ignore[arg-type]
    config.on_connection_reuseconn.append(hook("request", "reused"))  # type: ignore[arg-type]
    config.on_request_headers_sent.append(hook("response", "sent"))  # type: ignore[arg-type]
    config.on_request_end.append(hook("body", "headers"))  # type: ignore[arg-type]
    return config


def reuse_session(context: ProbeContext) -> aiohttp.ClientSession:
    """The context's shared keep-alive session (``reuse`` targets), created on first use."""
    session = context.http_session
    if session is None:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            # Timeouts of 5 s and more are rounded up to whole seconds unless this is raised.
            timeout=aiohttp.ClientTimeout(total=None, ceil_threshold=math.inf),
            trace_configs=[_trace_config()],
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )
        # aiohttp (>= 3.10) silently retries an idempotent request once after a
        # disconnect; every try must be one attempt, so switch it off (as its TestClient does).
        session._retry_connection = False
        context.http_session = session
    return session


class HttpProbe:
    """Probes one HTTP call: method, URL, headers, body, expected statuses and body text."""

    def __init__(
        self,
        target: HttpTarget,
        *,
        service: str,
        context: ProbeContext,
        channel: Channel = Channel.API,
    ) -> None:
        self.service = service
        self.target = target.name
        self.timeout = target.timeout
        self.rate = target.rate
        self.max_in_flight = target.max_in_flight
        self.channel = channel
        self.fingerprint: Hashable = target
        self._config = target
        self._context = context
        self._expected = frozenset(target.expect_status)
        self._needle = target.expect_body.encode() if target.expect_body else b""
        self._body = target.body.encode() if target.body is not None else None
        self._tls = context.tls_context(target.tls) if target.url.startswith("https:") else None
        # Parsed once: aiohttp would parse the text again on every request.
        self._url = URL(target.url)
        # A fresh target's request, built once (None for reuse targets; the error if the
        # request cannot be built).
        self._fresh: Request | ValueError | None = None
        if target.connection == "fresh":
            try:
                self._fresh = Request(
                    self._url,
                    method=target.method,
                    headers=target.headers,
                    body=self._body,
                    tls=self._tls,
                    server_name=target.tls.server_name,
                )
            except ValueError as exc:
                self._fresh = exc  # kept: every attempt reports it as the probe's fault

    @classmethod
    def from_config(
        cls, target: HttpTarget, *, service: ServiceConfig | None, context: ProbeContext
    ) -> HttpProbe:
        """The probe of an ``api`` target of ``service``."""
        return cls(target, service=service.name if service else "", context=context)

    async def attempt(self, *, deadline: float) -> Attempt:
        """One request, finished (or abandoned as ``timeout``) by ``deadline``."""
        clock = self._context.clock
        started_at = clock.time()
        trace = Trace(clock.monotonic(), clock.monotonic)
        remaining = deadline - trace.mono
        try:
            if remaining <= 0:
                raise TimeoutError("deadline passed before the attempt started")  # noqa: TRY301
            outcome, detail = await self._exchange(remaining, trace)
            phase = "done"
        except Exception as exc:  # noqa: BLE001  (every failure becomes an outcome)
            row = match_error(HTTP_ERRORS, exc)
            outcome = row.outcome or Outcome.PROBE_ERROR
            phase = trace.phase
            detail = f"{row.label} in {phase}: {exception_text(exc)}"
            if row.kind is TimeoutError:
                detail = f"{row.label} after {self.timeout:g}s in {phase}"
                if phase == "dns":
                    # The prober's resolver hung: the provider was never asked, so this
                    # must not count against it as a server-side timeout would.
                    outcome = Outcome.DNS_ERROR
                    detail = f"resolver did not answer within {self.timeout:g}s"
        return self._context.finish(
            service=self.service,
            channel=self.channel,
            target=self.target,
            started_at=started_at,
            started_mono=trace.mono,
            outcome=outcome,
            phase=phase,
            detail=detail,
            timings=self._timings(trace),
        )

    async def _exchange(self, remaining: float, trace: Trace) -> tuple[Outcome, str]:
        scan = NeedleScan(self._needle)
        fresh = self._fresh
        if fresh is None:
            status, reason = await self._reuse_exchange(remaining, trace, scan)
        elif isinstance(fresh, ValueError):
            raise fresh
        else:
            async with asyncio.timeout(remaining):
                status, reason = await exchange(fresh, scan, trace)
        text = f"HTTP {status} {reason}".rstrip()
        outcome = status_outcome(status, self._expected)
        if outcome is Outcome.OK and not scan.found:
            return Outcome.SERVER_ERROR, f"{text}: body check failed"
        return outcome, text

    async def _reuse_exchange(
        self, remaining: float, trace: Trace, scan: NeedleScan
    ) -> tuple[int, str]:
        """The request on aiohttp's shared pool; the status and reason phrase."""
        async with reuse_session(self._context).request(
            self._config.method,
            self._url,
            headers=self._config.headers,
            data=self._body,
            allow_redirects=False,
            ssl=self._tls if self._tls is not None else True,
            server_hostname=self._config.tls.server_name,
            # The deadline, exactly: aiohttp rounds only timeouts above ceil_threshold.
            timeout=aiohttp.ClientTimeout(total=remaining, ceil_threshold=math.inf),
            trace_request_ctx=trace,
        ) as response:
            async for chunk in response.content.iter_chunked(_CHUNK):
                scan.feed(chunk)
            return response.status, response.reason or ""

    def _timings(self, trace: Trace) -> dict[str, float]:
        marks = trace.marks
        out: dict[str, float] = {}
        dns = 0.0
        if "dns_start" in marks and "dns_end" in marks:
            dns = marks["dns_end"] - marks["dns_start"]
            out["dns"] = dns
        if "connect_start" in marks and "connect_end" in marks:
            out["connect"] = max(0.0, marks["connect_end"] - marks["connect_start"] - dns)
        if "headers" in marks:
            out["ttfb"] = marks["headers"] - trace.mono
        out["total"] = self._context.clock.monotonic() - trace.mono
        return out
