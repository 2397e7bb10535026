"""The event log is the source of truth: what the CLI writes beside a running daemon counts.

Regression tests, through the real command line and a real ``slawatch run`` on one SQLite
file: a CLI ``resolved`` notifies exactly once; a CLI ``provider_responded`` meets the
running daemon's first-response clock within two seconds and no clock notice follows; and
a probe that raises is logged as one redacted JSON line.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifier.signals import Opened
from config import load_config
from config.secrets import REDACTED, Redactor
from incidents.lifecycle import signal_event
from incidents.sqlite_store import SqliteStore
from incidents.store import Batch
from probe.attempt import Attempt, Channel
from probe.clock import ManualClock
from probe.scheduler import Scheduler
from sla.terms import freeze_terms
from slawatch.logs import setup_logging
from tests.support.cli import run_slawatch
from tests.support.daemon import Daemon, wait_for
from tests.support.loop_thread import LoopThread
from tests.support.provider import TOKEN_ENV, provider_daemon, provider_thread
from tests.support.receiver import Receiver
from tests.support.servers import free_port, serve_app

INCIDENT = "mail-backdated"
# When the incident's first-response clock (Megaport severity 2: 15 min) comes within the
# 10-minute "due soon" lead, counted from the moment the store is written.
DUE_IN_S = 20


def _backdated_incident(folder: Path, *, due_in: float) -> float:
    """Write an open severity-2 incident into the daemon's store; its first-response deadline."""
    loaded = load_config(folder / "slawatch.yaml", TOKEN_ENV)
    service = loaded.config.service("mail")
    now = time.time()
    deadline = now + 600 + due_in
    detected = int(deadline - 900)
    terms = freeze_terms(service, loaded.catalog, loaded.calendars(), at=detected - 10)
    opened = Opened("mail", INCIDENT, 2, terms.name_of(2), detected - 10, detected, ("api",))
    with SqliteStore(folder / "store.db") as store:
        store.commit(Batch(events=[signal_event(opened, terms, source="classifier")]))
    return float(detected + 900)


def _cli(folder: Path, *args: str) -> None:
    done = run_slawatch(*args, "--config", "slawatch.yaml", cwd=folder, env=TOKEN_ENV)
    assert done.returncode == 0, done.stderr


def _events(receiver: Receiver) -> list[str]:
    return [r.body["event"] for r in receiver.got]


def _gauge(daemon: Daemon, clock: str) -> float:
    series = f'slawatch_sla_deadline_timestamp_seconds{{clock="{clock}",service="mail"}} '
    for line in daemon.get("/metrics")[1].decode().splitlines():
        if line.startswith(series):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {series}")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Daemon, Receiver, float]]:
    """A running daemon (healthy provider) over a store holding a backdated open incident."""
    hook_port = free_port()
    hook = {"name": "ops", "type": "webhook", "url": f"http://127.0.0.1:{hook_port}/hook"}
    with provider_thread() as provider, LoopThread() as thread:
        receiver = Receiver()
        thread.enter(serve_app(receiver.app(), hook_port))
        daemon = provider_daemon(tmp_path, provider, extra={"notify": [hook]})
        deadline = _backdated_incident(tmp_path, due_in=DUE_IN_S)
        daemon.start()
        try:
            yield daemon, receiver, deadline
        finally:
            assert daemon.stop() == 0


def test_cli_resolved_notifies_exactly_once(setup: tuple[Daemon, Receiver, float]) -> None:
    """`incidents event ID resolved` from the CLI reaches the webhook once, and once only."""
    daemon, receiver, _ = setup
    _cli(daemon.folder, "incidents", "event", INCIDENT, "resolved", "--note", "fixed")
    wait_for(lambda: "resolved" in _events(receiver), 10, "resolved")
    time.sleep(3)  # later ticks must not send it again
    resolved = [r.body for r in receiver.got if r.body["event"] == "resolved"]
    assert len(resolved) == 1
    assert resolved[0]["incident"]["id"] == INCIDENT
    assert resolved[0]["note"] == "fixed"
    keys = [r.headers["Idempotency-Key"] for r in receiver.got]
    assert len(keys) == len(set(keys))


def test_cli_response_meets_the_running_daemons_clock(
    setup: tuple[Daemon, Receiver, float],
) -> None:
    """A CLI `provider_responded` is seen by the daemon within 2 s: the API and the deadline
    gauge say met, and no clock_due or clock_breached goes out for it."""
    daemon, receiver, deadline = setup
    shown = daemon.json(f"/api/v1/incidents/{INCIDENT}")["clocks"]["first_response"]
    assert shown["state"] == "running"
    wait_for(lambda: _gauge(daemon, "first_response") == deadline, 5, "the deadline gauge")
    _cli(daemon.folder, "incidents", "event", INCIDENT, "provider_responded")

    def met() -> bool:
        clock = daemon.json(f"/api/v1/incidents/{INCIDENT}")["clocks"]["first_response"]
        return clock["state"] == "met" and _gauge(daemon, "first_response") == 0

    wait_for(met, 2, "the first-response clock met")
    # Past the moment the clock would have come due: nothing about it is sent.
    time.sleep(max(0.0, deadline - 600 - time.time()) + 3)
    sent = _events(receiver)
    assert "clock_due" not in sent
    assert "clock_breached" not in sent


class _Raising:
    """A probe with a bug: it raises, carrying a secret in the exception text."""

    service, channel, target = "mail", Channel.API, "account"
    fingerprint = "raising"
    timeout = 1.0
    rate = 1.0
    max_in_flight = None

    def __init__(self, secret: str) -> None:
        self.secret = secret

    async def attempt(self, *, deadline: float) -> Attempt:
        raise RuntimeError(f"token {self.secret} rejected by the frobnicator")


async def test_a_raising_probe_is_logged_as_one_redacted_json_line() -> None:
    """The scheduler's log line goes through the one configured handler: JSON, redacted."""
    secret = "probe-secret-0451"
    stream = io.StringIO()
    handler = setup_logging(fmt="json", stream=stream, redactor=lambda: Redactor([secret]))
    clock = ManualClock(1_790_000_000.0)
    scheduler = Scheduler(clock=clock, on_attempt=lambda _: None, prober="t")
    try:
        scheduler.replace([_Raising(secret)])  # type: ignore[list-item]
        # Step the manual clock to each wake-up for two seconds: a launch or two fail.
        for _ in range(50):
            await asyncio.sleep(0)
            wake = clock.next_wake()
            if wake is not None and wake <= 1_790_000_002.0:
                clock.advance(max(0.0, wake - clock.time()))
        stopping = asyncio.create_task(scheduler.stop())
        while not stopping.done():
            await asyncio.sleep(0)
            wake = clock.next_wake()
            if wake is not None:
                clock.advance(max(0.0, wake - clock.time()))
        await stopping
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [line for line in stream.getvalue().splitlines() if line]
    raised = [json.loads(line) for line in lines if "raised" in line]
    assert raised, lines
    record = raised[0]
    assert record["logger"] == "slawatch.probe"
    assert record["level"] == "error"
    assert secret not in stream.getvalue()
    assert REDACTED in record["exception"]
    assert all(line.startswith("{") for line in lines)
