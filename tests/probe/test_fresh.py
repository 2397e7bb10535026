"""The fresh-connection HTTP client against raw loopback peers: the bytes it sends, the responses it reads."""

from __future__ import annotations

import asyncio
import base64
import gc
import socket
from collections.abc import Callable
from typing import Any

import pytest
from yarl import URL

from config.model import HttpTarget
from probe.attempt import Attempt, Outcome
from probe.base import ProbeContext
from probe.fresh import ConnectFailed, NeedleScan, Request, _connect
from probe.http import HttpProbe
from tests.support.ci_tools import missing
from tests.support.servers import raw_server


async def run(context: ProbeContext, **target: Any) -> Attempt:
    """One attempt of a fresh-connection HTTP probe built from ``target`` keys."""
    target.setdefault("name", "t")
    target.setdefault("timeout", 0.5)
    probe = HttpProbe(HttpTarget(**target), service="svc", context=context)
    return await probe.attempt(deadline=context.clock.monotonic() + probe.timeout)


def answering(
    *pieces: bytes, seen: list[bytes] | None = None, hang: bool = False
) -> Callable[..., Any]:
    """A peer that reads the request (kept in ``seen``), writes ``pieces`` one by one, closes.

    With ``hang`` it keeps the connection open after the last piece instead.
    """

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        body = await reader.readexactly(length)
        if seen is not None:
            seen.append(head + body)
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0)
        if hang:
            await asyncio.Event().wait()

    return handler


async def request_of(context: ProbeContext, url_path: str = "/", **target: Any) -> bytes:
    """The bytes a probe of ``target`` sends (to a peer that answers 204)."""
    seen: list[bytes] = []
    async with raw_server(answering(b"HTTP/1.1 204 No Content\r\n\r\n", seen=seen)) as server:
        url = target.pop("url", f"http://127.0.0.1:{server.port}{url_path}")
        url = url.replace("PORT", str(server.port))
        attempt = await run(context, url=url, **target)
    assert attempt.outcome is Outcome.OK, attempt.detail
    return seen[0]


async def test_get_request(context: ProbeContext) -> None:
    """A GET: the path and query as configured, the authority, and one request per connection."""
    sent = await request_of(context, "/v1/ping?x=1%202")
    lines = sent.decode().split("\r\n")
    assert lines[0] == "GET /v1/ping?x=1%202 HTTP/1.1"
    assert lines[-2:] == ["", ""]
    port = sent.split(b"Host: 127.0.0.1:")[1].split(b"\r\n")[0]
    assert port.isdigit()
    assert {"User-Agent: slawatch", "Accept: */*", "Connection: close"} <= set(lines)
    assert not any(line.lower().startswith("content-length") for line in lines)


async def test_configured_headers_win(context: ProbeContext) -> None:
    """Configured headers replace the defaults of the same name, whatever their case."""
    sent = await request_of(context, headers={"user-agent": "probe/2", "X-Tenant": "a b"})
    lines = sent.decode().split("\r\n")
    assert "user-agent: probe/2" in lines
    assert "X-Tenant: a b" in lines
    assert not any(line.startswith("User-Agent:") for line in lines)


async def test_post_body(context: ProbeContext) -> None:
    """A body goes out with its length; a POST without one says it has none."""
    sent = await request_of(context, method="POST", body='{"a": "é"}')
    head, _, body = sent.partition(b"\r\n\r\n")
    assert body == '{"a": "é"}'.encode()
    assert f"Content-Length: {len(body)}".encode() in head.split(b"\r\n")
    assert b"Content-Type: application/octet-stream" in head.split(b"\r\n")
    empty = await request_of(context, method="POST")
    assert b"Content-Length: 0" in empty.split(b"\r\n")


async def test_credentials_in_url(context: ProbeContext) -> None:
    """A user and password in the URL are sent as Basic authorization, never in the path."""
    sent = await request_of(context, url="http://ops:pa%20ss@127.0.0.1:PORT/x")
    token = base64.b64encode(b"ops:pa ss").decode()
    assert f"Authorization: Basic {token}".encode() in sent.split(b"\r\n")
    assert sent.startswith(b"GET /x HTTP/1.1\r\n")


def _chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


OK_HEAD = b"HTTP/1.1 200 OK\r\n"


@pytest.mark.parametrize(
    ("pieces", "method", "expect_body", "outcome", "detail"),
    [
        pytest.param(
            [OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", _chunked(b"all sys", b"tems go")],
            "GET",
            "systems go",
            Outcome.OK,
            "HTTP 200 OK",
            id="chunked-text-across-chunks",
        ),
        pytest.param(
            [OK_HEAD + b"Content-Type: text/plain\r\n\r\nread to the close"],
            "GET",
            "the close",
            Outcome.OK,
            "HTTP 200 OK",
            id="body-ends-with-connection",
        ),
        pytest.param(
            [OK_HEAD + b"Content-Length: 100\r\n\r\n"],
            "HEAD",
            None,
            Outcome.OK,
            "HTTP 200 OK",
            id="head-has-no-body",
        ),
        pytest.param(
            [b"HTTP/1.1 100 Continue\r\n\r\n", OK_HEAD + b"Content-Length: 2\r\n\r\nok"],
            "GET",
            "ok",
            Outcome.OK,
            "HTTP 200 OK",
            id="interim-response-skipped",
        ),
        pytest.param(
            [bytes([b]) for b in b"HTTP/1.1 503 Busy Now\r\nContent-Length: 3\r\n\r\nnah"],
            "GET",
            None,
            Outcome.SERVER_ERROR,
            "HTTP 503 Busy Now",
            id="a-byte-at-a-time",
        ),
        pytest.param(
            [b"HTTP/1.0 200 OK\r\n\r\nold server"],
            "GET",
            "old",
            Outcome.OK,
            "HTTP 200 OK",
            id="http-1.0",
        ),
        pytest.param(
            [OK_HEAD + b"Content-Length: 5\r\n\r\nhello", b"HTTP/1.1 500 Extra\r\n\r\n"],
            "GET",
            "hello",
            Outcome.OK,
            "HTTP 200 OK",
            id="bytes-after-the-response-ignored",
        ),
    ],
)
async def test_response_shapes(
    *,
    context: ProbeContext,
    pieces: list[bytes],
    method: str,
    expect_body: str | None,
    outcome: Outcome,
    detail: str,
) -> None:
    """Chunked, close-delimited, header-only, interim and trickled responses all read whole."""
    async with raw_server(answering(*pieces)) as server:
        attempt = await run(
            context,
            url=f"http://127.0.0.1:{server.port}/",
            method=method,
            expect_body=expect_body,
        )
    assert (attempt.outcome, attempt.detail, attempt.phase) == (outcome, detail, "done")
    assert 0 < attempt.timings["ttfb"] <= attempt.timings["total"]


@pytest.mark.parametrize(
    ("pieces", "outcome", "phase", "detail"),
    [
        pytest.param(
            [OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel"],
            Outcome.CONNECTION_ERROR,
            "body",
            "response body cut short in body: BodyCutShort",
            id="chunked-cut-short",
        ),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\nContent-Le"],
            Outcome.CONNECTION_ERROR,
            "response",
            "closed before a full response in response: ServerClosed",
            id="headers-cut-short",
        ),
        pytest.param(
            [OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"],
            Outcome.SERVER_ERROR,
            "body",
            "malformed response in body: HttpParserError",
            id="bad-chunk-size",
        ),
        pytest.param(
            [b"SMTP/1.1 220 hello\r\n\r\n"],
            Outcome.SERVER_ERROR,
            "response",
            "malformed response in response",
            id="not-http",
        ),
    ],
)
async def test_cut_and_broken(
    context: ProbeContext, pieces: list[bytes], outcome: Outcome, phase: str, detail: str
) -> None:
    """A response the server does not finish, or that is not HTTP, maps to its table row."""
    async with raw_server(answering(*pieces)) as server:
        attempt = await run(context, url=f"http://127.0.0.1:{server.port}/")
    assert (attempt.outcome, attempt.phase) == (outcome, phase)
    assert attempt.detail.startswith(detail)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_ipv6_literal(context: ProbeContext) -> None:
    """An IPv6 literal is connected to as such and sent bracketed in the Host header."""
    if not _has_ipv6_loopback():
        missing("an IPv6 loopback (::1)")
    seen: list[bytes] = []
    handler = answering(OK_HEAD + b"Content-Length: 0\r\n\r\n", seen=seen)

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handler(reader, writer)
        writer.close()

    server = await asyncio.start_server(session, "::1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        attempt = await run(context, url=f"http://[::1]:{port}/")
    finally:
        server.close()
        await server.wait_closed()
    assert attempt.outcome is Outcome.OK, attempt.detail
    assert f"Host: [::1]:{port}".encode() in seen[0].split(b"\r\n")


async def test_next_address_after_a_refusal() -> None:
    """A name's addresses are tried one at a time until one takes the connection."""
    loop = asyncio.get_running_loop()
    async with raw_server(answering(OK_HEAD + b"Content-Length: 0\r\n\r\n")) as server:
        url = URL(f"http://127.0.0.1:{server.port}/")
        request = Request(url, method="GET", headers={}, body=None, tls=None, server_name=None)
        # Nothing listens on 127.0.0.2 at that port: refused, then the next address.
        transport = await _connect(loop, request, ["127.0.0.2", "127.0.0.1"], asyncio.Protocol)
        assert transport.get_extra_info("peername")[0] == "127.0.0.1"
        transport.close()
        with pytest.raises(ConnectFailed, match="Connection refused"):
            await _connect(loop, request, ["127.0.0.2", "127.0.0.3"], asyncio.Protocol)


async def test_abandoned_exchange_leaves_nothing(context: ProbeContext) -> None:
    """An exchange abandoned at its deadline closes its socket and leaves no stray error."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    slow = answering(OK_HEAD + b"Content-Length: 10\r\n\r\nslo", hang=True)
    async with raw_server(slow) as server:
        attempt = await run(context, url=f"http://127.0.0.1:{server.port}/", timeout=0.2)
        await asyncio.sleep(0.05)  # let the closed transport's callbacks run
        gc.collect()
        await asyncio.sleep(0)
        assert errors == []  # before the test's own server shuts its sessions down
    assert (attempt.outcome, attempt.phase) == (Outcome.TIMEOUT, "body")


@pytest.mark.parametrize("split", range(1, 9))
def test_needle_scan_across_any_split(split: int) -> None:
    """The body text is found wherever the chunks divide it, and never where it is not."""
    body = b"xxstatus okxx"
    scan = NeedleScan(b"status ok")
    for start in range(0, len(body), split):
        scan.feed(body[start : start + split])
    assert scan.found
    miss = NeedleScan(b"status ok")
    for start in range(0, len(body), split):
        miss.feed(body.replace(b"ok", b"no")[start : start + split])
    assert not miss.found
