"""The HTTP probe against real loopback servers: every status and every row of its exception table."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from config.model import HttpTarget, TlsOptions
from probe.attempt import Attempt, Channel, Outcome
from probe.base import ProbeContext
from probe.http import HTTP_ERRORS, HttpProbe
from tests.probe.probe_helpers import no_free_descriptors, table_matches_docstring
from tests.support.servers import free_port, hang_after_request, raw_server, read_request, reset

TIMEOUT = 0.4

# Both clients: fresh targets take probe/fresh.py, reuse targets aiohttp's pool.
CLIENTS = pytest.mark.parametrize(
    "connection", [pytest.param("fresh", id="fresh"), pytest.param("reuse", id="reuse")]
)


async def run(context: ProbeContext, **target: Any) -> Attempt:
    """One attempt of an HTTP probe built from ``target`` keys."""
    target.setdefault("name", "t")
    target.setdefault("timeout", TIMEOUT)
    probe = HttpProbe(HttpTarget(**target), service="svc", context=context)
    return await probe.attempt(deadline=context.clock.monotonic() + probe.timeout)


async def _status(request: web.Request) -> web.StreamResponse:
    code = int(request.match_info["code"])
    if code == 301:
        raise web.HTTPMovedPermanently(location="/status/200")
    return web.Response(status=code, text=f"status {code} body")


async def _echo_auth(request: web.Request) -> web.StreamResponse:
    # A misbehaving server that echoes the credential in its reason phrase.
    return web.Response(status=500, reason=request.headers.get("Authorization", "none"))


async def _slow_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"first")
    await asyncio.sleep(5)
    return response


@pytest.fixture
async def app_server() -> AsyncIterator[TestServer]:
    """An aiohttp server on 127.0.0.1 answering /status/{code}, /echo-auth and /slow-body."""
    app = web.Application()
    app.router.add_route("*", "/status/{code}", _status)
    app.router.add_get("/echo-auth", _echo_auth)
    app.router.add_get("/slow-body", _slow_body)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.mark.parametrize(
    ("code", "expect", "outcome", "detail"),
    [
        pytest.param(200, None, Outcome.OK, "HTTP 200 OK", id="200-ok"),
        pytest.param(301, None, Outcome.OK, "HTTP 301 Moved Permanently", id="301-default-ok"),
        pytest.param(301, [200], Outcome.CLIENT_ERROR, "HTTP 301 Moved", id="301-unexpected"),
        pytest.param(404, None, Outcome.CLIENT_ERROR, "HTTP 404 Not Found", id="404"),
        pytest.param(408, None, Outcome.TIMEOUT, "HTTP 408 Request Timeout", id="408"),
        pytest.param(429, None, Outcome.RATE_LIMITED, "HTTP 429 Too Many Requests", id="429"),
        pytest.param(500, None, Outcome.SERVER_ERROR, "HTTP 500 Internal Server Error", id="500"),
        pytest.param(503, None, Outcome.SERVER_ERROR, "HTTP 503 Service Unavailable", id="503"),
        pytest.param(504, None, Outcome.TIMEOUT, "HTTP 504 Gateway Timeout", id="504"),
    ],
)
async def test_status(
    *,
    context: ProbeContext,
    app_server: TestServer,
    code: int,
    expect: list[int] | None,
    outcome: Outcome,
    detail: str,
) -> None:
    """Each response status maps to the outcome of DESIGN.md §3, redirects unfollowed."""
    extra = {"expect_status": expect} if expect else {}
    attempt = await run(context, url=str(app_server.make_url(f"/status/{code}")), **extra)
    assert attempt.outcome is outcome
    assert attempt.detail.startswith(detail)
    assert attempt.phase == "done"
    assert attempt.channel is Channel.API
    assert (attempt.service, attempt.target, attempt.prober) == ("svc", "t", "test-1")
    assert set(attempt.timings) == {"connect", "ttfb", "total"}
    assert 0 < attempt.timings["ttfb"] <= attempt.timings["total"] <= attempt.duration_s + 1e-6


@pytest.mark.parametrize(
    ("method", "body", "expect_body", "outcome", "detail"),
    [
        pytest.param("GET", None, "status 200", Outcome.OK, "HTTP 200 OK", id="body-found"),
        pytest.param(
            "GET",
            None,
            "maintenance",
            Outcome.SERVER_ERROR,
            "HTTP 200 OK: body check failed",
            id="body-missing",
        ),
        pytest.param("POST", '{"a": 1}', None, Outcome.OK, "HTTP 200 OK", id="post-with-body"),
    ],
)
async def test_body(
    *,
    context: ProbeContext,
    app_server: TestServer,
    method: str,
    body: str | None,
    expect_body: str | None,
    outcome: Outcome,
    detail: str,
) -> None:
    """The optional body text must appear in an expected response for it to be ok."""
    attempt = await run(
        context,
        url=str(app_server.make_url("/status/200")),
        method=method,
        body=body,
        expect_body=expect_body,
    )
    assert (attempt.outcome, attempt.detail) == (outcome, detail)


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    reset(writer)


async def _close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)


async def _short_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    await writer.drain()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 abc not a status\r\n\r\n")
    await writer.drain()


async def _plaintext(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 4)
    await writer.drain()


@pytest.mark.parametrize(
    ("handler", "outcome", "phase", "detail"),
    [
        pytest.param(
            hang_after_request,
            Outcome.TIMEOUT,
            "response",
            f"deadline passed after {TIMEOUT}s in response",
            id="hang-before-headers",
        ),
        pytest.param(
            _reset,
            Outcome.CONNECTION_ERROR,
            "response",
            "connection error in response",
            id="reset-after-request",
        ),
        pytest.param(
            _close,
            Outcome.CONNECTION_ERROR,
            "response",
            "closed before a full response in response",
            id="closed-after-request",
        ),
        pytest.param(
            _short_body,
            Outcome.CONNECTION_ERROR,
            "body",
            "response body cut short in body",
            id="body-cut-short",
        ),
        pytest.param(
            _garbage,
            Outcome.SERVER_ERROR,
            "response",
            "malformed response in response",
            id="malformed-status-line",
        ),
    ],
)
@CLIENTS
async def test_raw_server_faults(
    *,
    context: ProbeContext,
    handler: Callable[..., Any],
    outcome: Outcome,
    phase: str,
    detail: str,
    connection: str,
) -> None:
    """Servers that hang, reset, close or garble map to their rows, with exactly one connection."""
    async with raw_server(handler) as server:
        attempt = await run(context, url=f"http://127.0.0.1:{server.port}/", connection=connection)
        assert server.connections == 1  # aiohttp's silent retry is off
    assert attempt.outcome is outcome
    assert attempt.phase == phase
    assert attempt.detail.startswith(detail)


@CLIENTS
async def test_slow_body_past_deadline(
    context: ProbeContext, app_server: TestServer, connection: str
) -> None:
    """A body still streaming at the deadline is a timeout in the body phase, on time."""
    url = str(app_server.make_url("/slow-body"))
    attempt = await run(context, url=url, connection=connection)
    assert (attempt.outcome, attempt.phase) == (Outcome.TIMEOUT, "body")
    assert attempt.detail == f"deadline passed after {TIMEOUT}s in body"
    assert TIMEOUT <= attempt.duration_s < TIMEOUT + 0.2


@pytest.mark.parametrize(
    "connection", [pytest.param("fresh", id="fresh"), pytest.param("reuse", id="reuse")]
)
async def test_connection_modes(
    context: ProbeContext, app_server: TestServer, connection: str
) -> None:
    """``fresh`` opens a connection for every attempt; ``reuse`` keeps one alive."""
    url = str(app_server.make_url("/status/200"))
    attempts = [await run(context, url=url, connection=connection) for _ in range(3)]
    assert [a.outcome for a in attempts] == [Outcome.OK] * 3
    measured_connect = ["connect" in a.timings for a in attempts]
    assert measured_connect == ([True] * 3 if connection == "fresh" else [True, False, False])


@pytest.mark.parametrize(
    ("connection", "detail"),
    [
        pytest.param(
            "fresh",
            r"connect failed in connect: ConnectFailed: \[Errno 111\] "
            r"cannot connect to 127\.0\.0\.1:\d+: Connection refused$",
            id="fresh",
        ),
        pytest.param("reuse", "connect failed in connect: ClientConnectorError", id="reuse"),
    ],
)
async def test_refused(context: ProbeContext, connection: str, detail: str) -> None:
    """A closed port is a connection error in the connect phase."""
    port = free_port()
    attempt = await run(context, url=f"http://127.0.0.1:{port}/", connection=connection)
    assert (attempt.outcome, attempt.phase) == (Outcome.CONNECTION_ERROR, "connect")
    assert re.match(detail, attempt.detail), attempt.detail


@pytest.mark.parametrize(
    ("connection", "error"),
    [
        pytest.param("fresh", "gaierror", id="fresh"),
        pytest.param("reuse", "ClientConnectorDNSError", id="reuse"),
    ],
)
async def test_unresolvable_name(context: ProbeContext, connection: str, error: str) -> None:
    """A name under the reserved .invalid TLD is a DNS error, timed in the dns phase."""
    attempt = await run(context, url="http://no-such-host.invalid/", connection=connection)
    assert (attempt.outcome, attempt.phase) == (Outcome.DNS_ERROR, "dns")
    assert attempt.detail.startswith(f"name did not resolve in dns: {error}")


async def test_name_resolved_each_attempt(context: ProbeContext, app_server: TestServer) -> None:
    """A fresh target named by host name resolves it on every attempt, timed apart."""
    url = f"http://localhost:{app_server.port}/status/200"
    attempts = [await run(context, url=url) for _ in range(2)]
    for attempt in attempts:
        assert attempt.outcome is Outcome.OK, attempt.detail
        assert set(attempt.timings) == {"dns", "connect", "ttfb", "total"}


@CLIENTS
async def test_local_exhaustion_is_probe_error(context: ProbeContext, connection: str) -> None:
    """Out of file descriptors, the prober reports its own fault, never the target's."""
    port = free_port()
    with no_free_descriptors():
        attempt = await run(context, url=f"http://127.0.0.1:{port}/", connection=connection)
    assert (attempt.outcome, attempt.phase) == (Outcome.PROBE_ERROR, "connect")
    assert attempt.detail.startswith("local resources exhausted in connect")


@pytest.mark.parametrize(
    ("connection", "detail"),
    [
        # The fresh client builds its request once, before any connection is opened.
        pytest.param("fresh", "bug in the probe in connect: ValueError: header", id="fresh"),
        pytest.param("reuse", "bug in the probe in response: ValueError", id="reuse"),
    ],
)
async def test_bug_is_probe_error(
    context: ProbeContext, app_server: TestServer, connection: str, detail: str
) -> None:
    """An exception outside the target's making (a header no client sends) is a probe error."""
    url = str(app_server.make_url("/status/200"))
    attempt = await run(context, url=url, headers={"X-A": "a\r\nb"}, connection=connection)
    assert attempt.outcome is Outcome.PROBE_ERROR
    assert attempt.detail.startswith(detail)


@pytest.mark.parametrize(
    ("connection", "outcome", "detail"),
    [
        pytest.param(
            "fresh",
            Outcome.PROBE_ERROR,
            "bug in the probe in connect: ValueError: not an http(s) URL",
            id="fresh",
        ),
        pytest.param(
            "reuse",
            Outcome.CONNECTION_ERROR,
            "client error in connect: NonHttpUrlClientError",
            id="reuse",
        ),
    ],
)
async def test_client_error_row(
    context: ProbeContext, connection: str, outcome: Outcome, detail: str
) -> None:
    """A URL no client can use (only reachable past validation) is reported, never raised."""
    target = HttpTarget.model_construct(
        name="t", url="ftp://127.0.0.1/", connection=connection, tls=TlsOptions()
    )
    probe = HttpProbe(target, service="svc", context=context)
    attempt = await probe.attempt(deadline=context.clock.monotonic() + 1)
    assert attempt.outcome is outcome
    assert attempt.detail.startswith(detail)


async def test_deadline_already_passed(context: ProbeContext, app_server: TestServer) -> None:
    """An attempt launched after its deadline is a timeout without touching the network."""
    probe = HttpProbe(
        HttpTarget(name="t", url=str(app_server.make_url("/status/200"))),
        service="svc",
        context=context,
    )
    attempt = await probe.attempt(deadline=context.clock.monotonic() - 1)
    assert (attempt.outcome, attempt.phase) == (Outcome.TIMEOUT, "connect")


async def test_secrets_redacted(context: ProbeContext, app_server: TestServer) -> None:
    """A credential echoed back by the server never reaches the attempt detail."""
    probe = HttpProbe(
        HttpTarget(
            name="t",
            url=str(app_server.make_url("/echo-auth")),
            headers={"Authorization": "Bearer s3cr3t-env"},
        ),
        service="svc",
        context=context,
    )
    attempt = await probe.attempt(deadline=context.clock.monotonic() + 1)
    assert attempt.outcome is Outcome.SERVER_ERROR
    assert attempt.detail == "HTTP 500 Bearer [redacted]"


# TLS ----------------------------------------------------------------------------------------


async def _tls_server(cert: trustme.LeafCert) -> TestServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    app = web.Application()
    app.router.add_route("*", "/status/{code}", _status)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=context)
    return server


# The exception each client raises for a rejected certificate and a failed handshake.
_CERT_ERROR = {"fresh": "SSLCertVerificationError", "reuse": "ClientConnectorCertificateError"}
_HANDSHAKE_ERROR = {"fresh": "SSLError", "reuse": "ClientConnectorSSLError"}


@CLIENTS
@pytest.mark.parametrize(
    ("expired", "trusted", "verify", "outcome", "detail"),
    [
        pytest.param(False, True, True, Outcome.OK, "HTTP 200 OK", id="trusted"),
        pytest.param(
            False,
            False,
            True,
            Outcome.TLS_ERROR,
            "certificate rejected in connect: {cert_error}",
            id="untrusted",
        ),
        pytest.param(
            True,
            True,
            True,
            Outcome.TLS_ERROR,
            "certificate rejected in connect: {cert_error}",
            id="expired",
        ),
        pytest.param(False, False, False, Outcome.OK, "HTTP 200 OK", id="verify-off"),
    ],
)
async def test_tls(
    *,
    context: ProbeContext,
    ca: trustme.CA,
    ca_file: str,
    expired: bool,
    trusted: bool,
    verify: bool,
    outcome: Outcome,
    detail: str,
    connection: str,
) -> None:
    """Certificates are verified by default: untrusted and expired ones are TLS errors."""
    not_after = dt.datetime(2020, 1, 1, tzinfo=dt.UTC) if expired else None
    not_before = dt.datetime(2019, 1, 1, tzinfo=dt.UTC) if expired else None
    cert = ca.issue_cert("127.0.0.1", not_before=not_before, not_after=not_after)
    server = await _tls_server(cert)
    try:
        tls = TlsOptions(verify=verify, ca_file=ca_file if trusted else None)
        url = f"https://127.0.0.1:{server.port}/status/200"
        attempt = await run(context, url=url, tls=tls, connection=connection)
    finally:
        await server.close()
    assert attempt.outcome is outcome
    assert attempt.detail.startswith(detail.format(cert_error=_CERT_ERROR[connection]))


@CLIENTS
async def test_tls_server_name(
    context: ProbeContext, ca: trustme.CA, ca_file: str, connection: str
) -> None:
    """``tls.server_name`` is the name the certificate is checked against, not the URL's host."""
    server = await _tls_server(ca.issue_cert("api.example.test"))
    try:
        url = f"https://127.0.0.1:{server.port}/status/200"
        named = TlsOptions(ca_file=ca_file, server_name="api.example.test")
        right = await run(context, url=url, tls=named, connection=connection)
        wrong = await run(context, url=url, tls=TlsOptions(ca_file=ca_file), connection=connection)
    finally:
        await server.close()
    assert (right.outcome, right.detail) == (Outcome.OK, "HTTP 200 OK")
    assert wrong.outcome is Outcome.TLS_ERROR


@CLIENTS
async def test_tls_handshake_failure(context: ProbeContext, connection: str) -> None:
    """A server that does not speak TLS is a handshake failure, not a certificate problem."""
    async with raw_server(_plaintext) as server:
        attempt = await run(context, url=f"https://127.0.0.1:{server.port}/", connection=connection)
    assert (attempt.outcome, attempt.phase) == (Outcome.TLS_ERROR, "connect")
    expected = f"TLS handshake failed in connect: {_HANDSHAKE_ERROR[connection]}"
    assert attempt.detail.startswith(expected)


def test_every_table_row_has_a_case() -> None:
    """The exception table is the one drawn in the module docstring, row for row."""
    import probe.http

    assert table_matches_docstring(HTTP_ERRORS, probe.http.__doc__)
