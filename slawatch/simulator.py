"""A simulated provider on loopback, an HTTP API and an SMTP server, switched healthy or down."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

# What a failing provider answers: an internal service error on both channels.
_SMTP_GREETING_OK = b"220 simulated.invalid ESMTP ready\r\n"
_SMTP_GREETING_DOWN = b"421 4.3.2 Service not available, closing transmission channel\r\n"
_SMTP_GREETING_THROTTLED = b"421 4.7.0 Too many connections, try again later\r\n"
# What a down provider can make a probe see (``SimulatedProvider.fault``).
FAULTS = ("server_error", "timeout", "rate_limited")
# A "timeout" fault holds each call this long before closing it: past any probe timeout
# the tests and the demo use, short enough that stopping the provider does not wait long.
TIMEOUT_HOLD_S = 3.0
_SMTP_LINE_LIMIT = 4096


class SimulatedProvider:
    """An HTTP API (``GET /api/v1/account``) and an SMTP injection port on 127.0.0.1.

    While healthy the API answers 200 and SMTP accepts every step of the dialogue. While
    down, ``fault`` says how it fails: ``server_error`` (the default: API 503, SMTP 421
    4.3.2, internal service errors by the contract's definition), ``timeout`` (no answer
    for ``TIMEOUT_HOLD_S``) or ``rate_limited`` (API 429, SMTP 421 4.7.0: not the
    provider failing, by the contract).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.healthy = True
        self.fault = "server_error"
        self.http_port = 0
        self.smtp_port = 0
        self._runner: web.AppRunner | None = None
        self._smtp: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    @property
    def api_url(self) -> str:
        """The URL of the simulated API call."""
        return f"http://{self.host}:{self.http_port}/api/v1/account"

    async def start(self) -> None:
        """Listen on free ports."""
        app = web.Application()
        app.router.add_get("/api/v1/account", self._account)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.http_port = self._runner.addresses[0][1]
        self._smtp = await asyncio.start_server(self._smtp_session, self.host, 0)
        self.smtp_port = self._smtp.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop both servers and every open SMTP session."""
        if self._smtp is not None:
            self._smtp.close()
            for task in list(self._sessions):
                task.cancel()
            await asyncio.gather(*self._sessions, return_exceptions=True)
            await self._smtp.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _account(self, _request: web.Request) -> web.Response:
        if self.healthy:
            return web.json_response({"results": {"customer_id": 1, "status": "active"}})
        if self.fault == "timeout":
            await asyncio.sleep(TIMEOUT_HOLD_S)
        if self.fault == "rate_limited":
            return web.json_response({"errors": [{"message": "too many requests"}]}, status=429)
        return web.json_response({"errors": [{"message": "service unavailable"}]}, status=503)

    async def _smtp_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        try:
            await self._dialogue(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            if task is not None:
                self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.healthy:
            if self.fault == "timeout":
                await asyncio.sleep(TIMEOUT_HOLD_S)
                return
            throttled = self.fault == "rate_limited"
            writer.write(_SMTP_GREETING_THROTTLED if throttled else _SMTP_GREETING_DOWN)
            await writer.drain()
            return
        writer.write(_SMTP_GREETING_OK)
        await writer.drain()
        in_data = False
        while line := await reader.readline():
            if len(line) > _SMTP_LINE_LIMIT:
                return
            if in_data:
                if line in (b".\r\n", b".\n"):
                    in_data = False
                    writer.write(b"250 2.0.0 queued\r\n")
                    await writer.drain()
                continue
            verb = line[:4].upper()
            if verb in (b"EHLO", b"LHLO"):
                writer.write(b"250-simulated.invalid\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                writer.write(b"250 2.0.0 OK\r\n")
            elif verb == b"DATA":
                in_data = True
                writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 Command not recognized\r\n")
            await writer.drain()
