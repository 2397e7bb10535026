"""The HTTP probe (aiohttp): one request per attempt, timed per phase, failures mapped to outcomes.

Exception table (first match wins, subclasses first; one test case per row)::

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
    Exception                                   probe_error       bug in the probe

A response is judged by its status: an expected status (default 200-399) with the body
check passing is ``ok``; 504 and 408 are ``timeout``; 429 ``rate_limited``; other 5xx
``server_error``; anything else ``client_error``; an expected status whose body lacks the
``expect_body`` text is ``server_error`` (the service answered, but not with the content).
Redirects are not followed: the configured URL is the call being measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Literal

import aiohttp
from yarl import URL

from config.model import HttpTarget, ServiceConfig
from probe.attempt import Attempt, Channel, Outcome
from probe.base import ErrorRow, ProbeContext, exception_text, local_exhaustion, match_error

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


@dataclass(slots=True)
class _Trace:
    """How far one request got and when each phase ended (monotonic seconds).

    It is also what the trace hooks receive (``trace_request_ctx``), with the clock to read.
    """

    mono: float
    clock: Callable[[], float]
    phase: str = "connect"
    marks: dict[str, float] = field(default_factory=dict)


def _trace_config() -> aiohttp.TraceConfig:
    """Trace hooks that record phases and timings into the request's ``_Trace``."""
    config = aiohttp.TraceConfig()

    def hook(phase: str, mark: str) -> object:
        async def on_signal(
            session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object
        ) -> None:
            trace = ctx.trace_request_ctx
            if isinstance(trace, _Trace):
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


def session_for(
    context: ProbeContext, connection: Literal["fresh", "reuse"]
) -> aiohttp.ClientSession:
    """The context's shared session for a connection mode, created on first use."""
    session = context.http_sessions.get(connection)
    if session is None:
        fresh = connection == "fresh"
        connector = aiohttp.TCPConnector(
            limit=0,
            # fresh: a new TCP (and TLS) connection per attempt, as a new client sees it.
            force_close=fresh,
            # fresh: resolve the name every attempt too; reuse keeps aiohttp's short cache.
            use_dns_cache=not fresh,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            # Timeouts of 5 s and more are rounded up to whole seconds unless this is raised.
            timeout=aiohttp.ClientTimeout(total=None, ceil_threshold=math.inf),
            trace_configs=[_trace_config()],
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )
        # aiohttp (>= 3.10) silently retries an idempotent request once after a
        # disconnect; every try must be one attempt, so switch it off (as its TestClient does).
        session._retry_connection = False
        context.http_sessions[connection] = session
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
        trace = _Trace(clock.monotonic(), clock.monotonic)
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

    async def _exchange(self, remaining: float, trace: _Trace) -> tuple[Outcome, str]:
        session = session_for(self._context, self._config.connection)
        tls = self._config.tls
        async with session.request(
            self._config.method,
            self._url,
            headers=self._config.headers,
            data=self._body,
            allow_redirects=False,
            ssl=self._tls if self._tls is not None else True,
            server_hostname=tls.server_name,
            # The deadline, exactly: aiohttp rounds only timeouts above ceil_threshold.
            timeout=aiohttp.ClientTimeout(total=remaining, ceil_threshold=math.inf),
            trace_request_ctx=trace,
        ) as response:
            found = await self._read_body(response)
            status = response.status
            text = f"HTTP {status} {response.reason or ''}".rstrip()
        outcome = status_outcome(status, self._expected)
        if outcome is Outcome.OK and not found:
            return Outcome.SERVER_ERROR, f"{text}: body check failed"
        return outcome, text

    async def _read_body(self, response: aiohttp.ClientResponse) -> bool:
        """Read the whole body; True when it holds ``expect_body`` (or none is asked for)."""
        needle = self._needle
        found = not needle
        # Keep only the last len(needle)-1 bytes, so the text is found across chunk borders
        # without holding the body.
        tail = b""
        async for chunk in response.content.iter_chunked(_CHUNK):
            if not found:
                window = tail + chunk
                found = needle in window
                tail = window[-(len(needle) - 1) :] if len(needle) > 1 else b""
        return found

    def _timings(self, trace: _Trace) -> dict[str, float]:
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
