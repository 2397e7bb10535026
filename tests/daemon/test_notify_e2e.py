"""Notifications through the real daemon: queued while the receiver is away, kept across SIGKILL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import threading
from pathlib import Path
from typing import Any

from aiohttp import web
from daemon_harness import Daemon, ProviderThread, daemon_config, free_port, wait_for, write_config

SECRET = "e2e-hook-secret-2718"


class Receiver:
    """A webhook receiver on its own loop and thread, recording every POST."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        self.posts.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> Receiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def events(self) -> list[dict[str, Any]]:
        """The JSON bodies received so far."""
        return [json.loads(body) for _, body in self.posts]


def test_queued_notification_survives_sigkill(tmp_path: Path) -> None:
    """An incident opens while the receiver is down; after SIGKILL and restart it arrives once."""
    hook_port = free_port()
    with ProviderThread() as provider:
        port = free_port()
        config = daemon_config(provider, port, degraded_min_seconds=3, critical_after="300s")
        config["notify"] = [
            {
                "name": "ops",
                "type": "webhook",
                "url": f"http://127.0.0.1:{hook_port}/hook",
                "secret": SECRET,
                "events": ["opened"],
            }
        ]
        write_config(tmp_path, config)
        daemon = Daemon(tmp_path, port)
        daemon.start()
        try:
            provider.healthy = False
            wait_for(lambda: daemon.json("/api/v1/incidents?state=open")["incidents"], 30, "open")
            # The notification is committed with the event; the receiver is not there yet.
            daemon.signal(signal.SIGKILL)
            assert daemon.proc is not None
            daemon.proc.wait(10)
        finally:
            provider.healthy = True
        with Receiver(hook_port) as receiver:
            daemon.start()
            try:
                wait_for(lambda: receiver.posts, 30, "the webhook after the restart")
                # Delivered means marked delivered: nothing is left to send twice.
                wait_for(
                    lambda: (
                        'slawatch_notifications_total{channel="ops",result="delivered"} 1.0'
                        in daemon.get("/metrics")[1].decode()
                    ),
                    10,
                    "the delivery counted",
                )
            finally:
                assert daemon.stop() == 0
            events = receiver.events()
            assert [e["event"] for e in events] == ["opened"]
            headers, body = receiver.posts[0]
            assert headers["Idempotency-Key"] == events[0]["idempotency_key"]
            expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Slawatch-Signature"] == f"sha256={expected}"
            assert events[0]["incident"]["service"] == "mail"
            assert events[0]["links"]["evidence"].startswith(f"http://127.0.0.1:{port}/")
            assert SECRET not in daemon.log.read_text()
