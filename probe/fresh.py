"""One HTTP/1.1 exchange on a new connection: resolve, connect, TLS, request, response.

This is the client of ``connection: fresh`` targets, where every attempt opens its own
connection and closes it after the response, as a new client would. It does only that,
for about 40 % less CPU per attempt than aiohttp's general client on the same loop
(docs/performance.md). The request's bytes are built once per target; the response is
parsed by httptools (llhttp, the parser of Node.js), chunked and length-delimited bodies
alike; the body is read to its end and searched for the expected text on the way.

What it raises, for the probe's exception table (probe/http.py): ``socket.gaierror`` for a
name that did not resolve, ``ConnectFailed`` (an OSError with the errno) for a connection
that could not be opened, ``ssl`` errors from the handshake, ``ServerClosed`` and
``BodyCutShort`` for a response the server did not finish, ``httptools.HttpParserError``
for one that is not HTTP, and the OSError of a connection reset. A request that cannot be
written (not an http(s) URL, a header with a line break) is a ``ValueError`` when the
``Request`` is built.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httptools
from yarl import URL

_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 9110 field names are tokens; values may not hold CR, LF or NUL.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
# Methods whose request carries a Content-Length even with no body (as other clients do).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ConnectFailed(OSError):
    """The connection could not be opened (refused, unreachable, out of sockets); errno kept."""


class ServerClosed(ConnectionError):
    """The server closed the connection before a whole status line and headers."""


class BodyCutShort(ConnectionError):
    """The server closed the connection before the end of the body its headers announced."""


@dataclass(slots=True)
class Trace:
    """How far one request got and when each phase ended (monotonic seconds).

    Both HTTP clients fill it: this one directly, aiohttp through its trace hooks (which
    receive it as ``trace_request_ctx``).
    """

    mono: float
    clock: Callable[[], float]
    phase: str = "connect"
    marks: dict[str, float] = field(default_factory=dict)


class NeedleScan:
    """Looks for a text in a body fed a chunk at a time, holding only the last few bytes."""

    __slots__ = ("_needle", "_tail", "found")

    def __init__(self, needle: bytes) -> None:
        self._needle = needle
        self._tail = b""
        self.found = not needle

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the body."""
        if self.found:
            return
        needle = self._needle
        window = self._tail + chunk
        self.found = needle in window
        # Keep len(needle)-1 bytes, so a text split across two chunks is still found.
        self._tail = window[-(len(needle) - 1) :] if len(needle) > 1 else b""


class Request:
    """What one target's fresh exchange sends, built once: address, TLS and the request bytes.

    Raises ValueError for a URL that is not http(s) or a header that cannot be sent.
    """

    def __init__(
        self,
        url: URL,
        *,
        method: str,
        headers: Mapping[str, str],
        body: bytes | None,
        tls: ssl.SSLContext | None,
        server_name: str | None,
    ) -> None:
        if url.scheme not in _DEFAULT_PORTS or not url.raw_host:
            raise ValueError(f"not an http(s) URL: {url.scheme}://")
        self.host = url.raw_host
        self.port = url.port or _DEFAULT_PORTS[url.scheme]
        self.head = method == "HEAD"
        self.tls = tls
        # TLS checks the certificate against this name (the URL's host unless configured).
        self.server_name = (server_name or self.host) if tls is not None else None
        try:
            ipaddress.ip_address(self.host)
            self.literal = True
        except ValueError:
            self.literal = False
        self.data = _request_bytes(url, method, headers, body)


def _request_bytes(url: URL, method: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """The request line, headers and body; the configured headers win over the defaults."""
    host = url.raw_host or ""
    authority = f"[{host}]" if ":" in host else host
    if url.explicit_port is not None and url.port != _DEFAULT_PORTS.get(url.scheme):
        authority += f":{url.port}"
    fields: dict[str, tuple[str, str]] = {}

    def put(name: str, value: str) -> None:
        fields.setdefault(name.lower(), (name, value))

    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise ValueError(f"header {name!r} cannot be sent: a line break or a bad name")
        put(name, value)
    put("Host", authority)
    put("User-Agent", "slawatch")
    put("Accept", "*/*")
    if url.user is not None:
        token = f"{url.user}:{url.password or ''}".encode()
        put("Authorization", "Basic " + base64.b64encode(token).decode("ascii"))
    if body is not None:
        put("Content-Type", "application/octet-stream")
    # Always this exchange's own: the length of what is sent, and one request per connection.
    if body is not None or method in _BODY_METHODS:
        fields["content-length"] = ("Content-Length", str(len(body or b"")))
    fields["connection"] = ("Connection", "close")
    lines = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in fields.values()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


class _Response(asyncio.Protocol):
    """Receives one response: feeds httptools, and settles ``done`` once it is whole or cut."""

    __slots__ = (
        "_clock",
        "_delimited",
        "_done",
        "_head",
        "_parser",
        "_scan",
        "headers_at",
        "reason",
        "status",
    )

    def __init__(
        self,
        done: asyncio.Future[None],
        scan: NeedleScan,
        *,
        head: bool,
        clock: Callable[[], float],
    ) -> None:
        self._done = done
        self._scan = scan
        self._head = head
        self._clock = clock
        self._parser = httptools.HttpResponseParser(self)
        # When the status line and headers were whole (0.0 before).
        self.headers_at = 0.0
        # Whether the body's end is announced (a length or chunks) rather than the close.
        self._delimited = False
        self.status = 0
        self.reason = b""

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        if self._done.done():
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self._done.done():  # bytes after a whole response are not its fault
                self._done.set_exception(exc)

    def eof_received(self) -> bool:
        return False  # close: a half-closed peer has said all it will

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done.done():
            return
        if exc is not None and self.headers_at:
            cut = BodyCutShort(f"connection lost in the body: {exc}")
            cut.__cause__ = exc  # a reset mid-body is a body cut short, as other clients say
            self._done.set_exception(cut)
        elif exc is not None:
            self._done.set_exception(exc)
        elif not self.headers_at:
            self._done.set_exception(ServerClosed("closed before the status line and headers"))
        elif self._delimited:
            self._done.set_exception(BodyCutShort("closed before the end of the body"))
        else:
            self._done.set_result(None)  # a body that ends with the connection

    # httptools callbacks. Once the response is whole, whatever follows it in the same
    # read is ignored.

    def on_status(self, reason: bytes) -> None:
        if not self._done.done():
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._delimited = True

    def on_headers_complete(self) -> None:
        if self._done.done():
            return
        status = self._parser.get_status_code()
        if status < 200:
            return  # an interim response (100 Continue, 103 Early Hints): the real one follows
        self.status = status
        self.headers_at = self._clock()
        if self._head:
            self._done.set_result(None)  # a HEAD response has headers only

    def on_body(self, body: bytes) -> None:
        self._scan.feed(body)

    def on_message_complete(self) -> None:
        if self._done.done():
            return
        if self.status:
            self._done.set_result(None)
        else:
            # The interim response is over; the next message on the wire is the answer.
            self.reason = b""
            self._delimited = False


async def exchange(request: Request, scan: NeedleScan, trace: Trace) -> tuple[int, str]:
    """Make the request on a new connection; the status and reason phrase of the response.

    ``trace.phase`` names the step under way (dns, connect, response, body) and
    ``trace.marks`` gets the time at which each step began or ended, so a caller that
    abandons the exchange at its deadline knows how far it got.
    """
    loop = asyncio.get_running_loop()
    clock = trace.clock
    marks = trace.marks
    marks["connect_start"] = clock()
    addresses: list[str]
    if request.literal:
        addresses = [request.host]
    else:
        trace.phase = "dns"
        marks["dns_start"] = clock()
        infos = await loop.getaddrinfo(
            request.host, request.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        trace.phase = "connect"
        marks["dns_end"] = clock()
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    done: asyncio.Future[None] = loop.create_future()
    protocol = _Response(done, scan, head=request.head, clock=clock)
    transport = await _connect(loop, request, addresses, lambda: protocol)
    try:
        marks["connect_end"] = clock()
        trace.phase = "response"  # a request fits the socket's buffer: it is sent at once
        transport.write(request.data)
        try:
            await done  # cancelled with the task at the deadline, so the close settles nothing
        finally:
            if protocol.headers_at:
                marks["headers"] = protocol.headers_at
                trace.phase = "body"
    finally:
        transport.close()
    return protocol.status, protocol.reason.decode("latin-1").strip()


async def _connect(
    loop: asyncio.AbstractEventLoop,
    request: Request,
    addresses: list[str],
    factory: Callable[[], asyncio.Protocol],
) -> asyncio.Transport:
    """A connection to the first address that takes one, its TLS handshake done."""
    *others, last = addresses
    for address in others:
        with contextlib.suppress(ConnectFailed):  # try the next address
            return await _open(loop, request, address, factory)
    return await _open(loop, request, last, factory)


async def _open(
    loop: asyncio.AbstractEventLoop,
    request: Request,
    address: str,
    factory: Callable[[], asyncio.Protocol],
) -> asyncio.Transport:
    """A connection to one address; an OSError other than TLS's becomes ConnectFailed."""
    try:
        transport, _ = await loop.create_connection(
            factory,
            host=address,
            port=request.port,
            ssl=request.tls,
            server_hostname=request.server_name,
        )
    except ssl.SSLError:
        raise  # the peer answered: a handshake problem, not a failed connect
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        where = f"{request.host}:{request.port}"
        raise ConnectFailed(exc.errno, f"cannot connect to {where}: {reason}") from exc
    return transport
