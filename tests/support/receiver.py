"""A recording HTTP receiver: the webhook, Slack, PagerDuty or Alertmanager end of a notification."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    """One request a receiver got."""

    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        """The JSON body."""
        return json.loads(self.raw)


Answer = Callable[[web.Request], Awaitable[int] | int]


@dataclass
class Receiver:
    """A loopback HTTP receiver recording what it was sent and answering by ``answer``."""

    answer: Answer = lambda _request: 200
    # Requests answered 2xx (delivered), in order.
    got: list[Received] = field(default_factory=list)
    # Every request, whatever the answer.
    tries: list[Received] = field(default_factory=list)
    # Set whenever a request is delivered, so tests can wait for arrivals without polling.
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, count: int) -> None:
        """Return once ``count`` requests have been delivered."""
        while len(self.got) < count:
            self.arrived.clear()
            await self.arrived.wait()

    def app(self) -> web.Application:
        """The aiohttp application (any POST path)."""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        item = Received(request.path, dict(request.headers), raw)
        self.tries.append(item)
        status = self.answer(request)
        if not isinstance(status, int):
            status = await status
        if 200 <= status < 300:
            self.got.append(item)
            self.arrived.set()
        return web.Response(status=status, text="ok" if status < 300 else "down")

    def paths(self, path: str) -> list[Received]:
        """What was delivered to one path, in order."""
        return [r for r in self.got if r.path == path]
