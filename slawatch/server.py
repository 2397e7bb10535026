"""Serve an aiohttp application on the configured listen address, for the daemon's lifetime."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from config.model import ServerConfig

log = logging.getLogger("slawatch.web")


def is_loopback(listen: str) -> bool:
    """True when ``host:port`` binds only loopback addresses."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bearer_matches(header: str, token: str) -> bool:
    """True when an ``Authorization`` header carries exactly ``Bearer <token>`` (constant time)."""
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


async def serve(app: web.Application, server: ServerConfig) -> Callable[[], Awaitable[None]]:
    """Start serving ``app`` on ``server.listen``; the coroutine function that stops it."""
    host, _, port = server.listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]"), int(port), reuse_address=True)
    await site.start()
    log.info("listening", extra={"address": server.listen})
    return runner.cleanup
