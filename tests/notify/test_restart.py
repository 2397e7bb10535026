"""Restart safety: notifications committed by a writer killed with SIGKILL are delivered after."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from config.model import WebhookNotify
from incidents.sqlite_store import SqliteStore
from notify.worker import Notifier
from probe.clock import ManualClock
from tests.notify.notify_fixtures import T0, writer_command
from tests.support.paths import ROOT
from tests.support.receiver import Receiver


def killed_writer(path: Path, kill_after: int) -> None:
    """Run the writer process until it reports ``kill_after`` commits, then SIGKILL it."""
    writer = subprocess.Popen(
        writer_command(path, 40),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    assert writer.stdin is not None
    for seen, _line in enumerate(writer.stdout, start=1):
        if seen >= kill_after:
            writer.send_signal(signal.SIGKILL)
            break
    writer.wait(timeout=30)
    writer.stdout.close()
    writer.stdin.close()
    assert writer.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    "kill_after", [pytest.param(1, id="after-first"), pytest.param(25, id="after-25")]
)
async def test_sigkill_with_queued_notifications(
    aiohttp_server: Any, tmp_path: Path, kill_after: int
) -> None:
    """What a killed writer committed is delivered by a fresh worker, once each, in order."""
    path = tmp_path / "store.db"
    killed_writer(path, kill_after)

    receiver = Receiver()
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    channel = WebhookNotify(type="webhook", name="hook", url=str(server.make_url("/hook")))
    clock = ManualClock(T0 + 100)
    with SqliteStore(path) as store:
        queued = [n.key for n in store.pending("hook")]
        assert len(queued) >= kill_after
        await Notifier([channel], clock=clock).drain(store)
        # A second worker (a second restart) finds nothing left to send.
        await Notifier([channel], clock=clock).drain(store)
        assert store.pending() == []
    keys = [r.headers["Idempotency-Key"] for r in receiver.got]
    assert keys == queued == [f"k{n}:hook" for n in range(len(queued))]
    assert [r.body["n"] for r in receiver.got] == list(range(len(queued)))


async def test_restart_keeps_the_backoff(aiohttp_server: Any, tmp_path: Path) -> None:
    """A worker started after a failed try waits until the recorded next try, not at once."""
    from incidents.outbox import Notification

    receiver = Receiver()
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    channel = WebhookNotify(type="webhook", name="hook", url=str(server.make_url("/hook")))
    clock = ManualClock(T0)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    with SqliteStore(tmp_path / "store.db") as store:
        note = Notification("k:hook", "hook", "opened", T0, {"event": "opened"}, next_at=T0)
        store.enqueue([note])
        store.mark_failed("k:hook", tries=3, next_at=T0 + 8, error="HTTP 503")
        await Notifier([channel], clock=clock, sleep=sleep).drain(store)
        (done,) = store.notifications(state="delivered")
    assert waits == [8]
    assert done.tries == 4
    assert len(receiver.got) == 1
