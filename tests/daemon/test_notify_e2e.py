"""Notifications through the real daemon: queued while the receiver is away, kept across SIGKILL."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from tests.support.daemon import wait_for
from tests.support.loop_thread import LoopThread
from tests.support.provider import provider_daemon, provider_thread
from tests.support.receiver import Receiver
from tests.support.servers import free_port, serve_app

SECRET = "e2e-hook-secret-2718"


def test_queued_notification_survives_sigkill(tmp_path: Path) -> None:
    """An incident opens while the receiver is down; after SIGKILL and restart it arrives once."""
    hook_port = free_port()
    with provider_thread() as provider:
        hook = {
            "name": "ops",
            "type": "webhook",
            "url": f"http://127.0.0.1:{hook_port}/hook",
            "secret": SECRET,
            "events": ["opened"],
        }
        daemon = provider_daemon(
            tmp_path,
            provider,
            extra={"notify": [hook]},
            degraded_min_seconds=3,
            critical_after="300s",
        )
        daemon.start()
        try:
            provider.healthy = False
            wait_for(lambda: daemon.json("/api/v1/incidents?state=open")["incidents"], 30, "open")
            # The notification is committed with the event; the receiver is not there yet.
            daemon.kill()
        finally:
            provider.healthy = True
        with LoopThread() as thread:
            receiver = Receiver()
            thread.enter(serve_app(receiver.app(), hook_port))
            daemon.start()
            try:
                wait_for(lambda: receiver.got, 30, "the webhook after the restart")
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
            events = [r.body for r in receiver.got]
            assert [e["event"] for e in events] == ["opened"]
            headers, body = receiver.got[0].headers, receiver.got[0].raw
            assert headers["Idempotency-Key"] == events[0]["idempotency_key"]
            expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Slawatch-Signature"] == f"sha256={expected}"
            assert events[0]["incident"]["service"] == "mail"
            assert events[0]["links"]["evidence"].startswith(f"http://127.0.0.1:{daemon.port}/")
            assert SECRET not in daemon.log.read_text()
