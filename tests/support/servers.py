"""Loopback servers for the tests: free ports, raw TCP peers that misbehave on purpose, apps.

``raw_server`` is the ten-line asyncio server of the style guide, grown up a little: each
connection runs a handler (a scripted peer), the server counts connections and cancels
every session still running when the test leaves it. The scripted peers below are the
misbehaviours more than one test folder needs: silence after the request, a reset (RST,
not FIN), and an SMTP server reading its replies from a script. For the well-behaved
peers, real servers: aiosmtpd (``smtp_server``) and aiohttp applications (``serve_app``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

HOST = "127.0.0.1"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class RawServer:
    """A raw TCP server on 127.0.0.1: its port and the connections it accepted."""

    port: int = 0
    connections: int = 0
    # Sessions still running, cancelled when the server closes.
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@contextlib.asynccontextmanager
async def raw_server(handler: Handler, **server_options: Any) -> AsyncIterator[RawServer]:
    """Serve ``handler`` on a free loopback port; cancel every session on exit.

    ``server_options`` go to :func:`asyncio.start_server` (``ssl=`` for a TLS peer). A
    peer that disconnects mid-script ends its session quietly.
    """
    info = RawServer()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info.connections += 1
        task = asyncio.current_task()
        if task is not None:
            info.tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()
            if task is not None:
                info.tasks.discard(task)

    server = await asyncio.start_server(session, HOST, 0, **server_options)
    info.port = server.sockets[0].getsockname()[1]
    try:
        yield info
    finally:
        server.close()
        for task in list(info.tasks):
            task.cancel()
        await asyncio.gather(*info.tasks, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> None:
    """Read an HTTP request's head (the probes send no body on GET)."""
    await reader.readuntil(b"\r\n\r\n")


async def hang_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, read the request, never answer (until the server closes)."""
    await read_request(reader)
    await asyncio.Event().wait()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with a TCP reset (RST), not an orderly FIN."""
    sock = writer.get_extra_info("socket")
    # Linger 0: closing sends RST.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# A scripted SMTP peer -----------------------------------------------------------------------

# Script values that are not replies: never answer, close the connection, or answer the
# client's TLS hello after STARTTLS with plain text.
HANG = b"hang"
CLOSE = b"close"
NOT_TLS = b"HTTP/1.1 400 Bad Request\r\n\r\n" * 4
STARTTLS_NOT_TLS = b"220 go ahead\r\n"
SMTP_GREETING = b"220 raw.test ESMTP\r\n"
SMTP_EHLO = b"250-raw.test\r\n250 8BITMIME\r\n"


def scripted_smtp(greeting: bytes = SMTP_GREETING, **replies: bytes) -> Handler:
    """An SMTP server that greets with ``greeting`` and answers each verb from ``replies``.

    Verbs not listed get ``250 OK`` (EHLO gets :data:`SMTP_EHLO`); QUIT is answered and
    closes. A reply (or the greeting) may be :data:`HANG` (never answered), :data:`CLOSE`
    (the server hangs up) or :data:`STARTTLS_NOT_TLS` (go ahead, then plain text instead of
    a TLS handshake).
    """
    script = {"EHLO": SMTP_EHLO, "QUIT": b"221 Bye\r\n", **replies}

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reply = greeting
        while True:
            if reply == HANG:
                await asyncio.Event().wait()
            if reply == CLOSE:
                return
            writer.write(reply)
            await writer.drain()
            if reply == STARTTLS_NOT_TLS:
                # Answer the client's TLS hello with plain text.
                await reader.read(1)
                writer.write(NOT_TLS)
                await writer.drain()
                return
            words = (await reader.readline()).split()
            if not words:
                return
            verb = words[0].decode().upper()
            reply = script.get(verb, b"250 OK\r\n")
            if verb == "QUIT":
                if reply not in (HANG, CLOSE):
                    writer.write(reply)
                    await writer.drain()
                return

    return session


# A real SMTP server ------------------------------------------------------------------------


@contextlib.contextmanager
def smtp_server(handler: object, **options: Any) -> Iterator[int]:
    """aiosmtpd (on its own thread) serving ``handler`` on 127.0.0.1; yields its port.

    ``options`` go to aiosmtpd's ``Controller``: ``tls_context=`` offers STARTTLS,
    ``ssl_context=`` speaks TLS from the first byte, ``authenticator=`` takes AUTH.
    """
    controller = Controller(handler, hostname=HOST, port=free_port(), **options)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


# aiohttp applications on a real port ---------------------------------------------------------


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, port: int = 0) -> AsyncIterator[int]:
    """Serve an aiohttp application on 127.0.0.1 (``port`` 0: a free one); yields the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, port).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
