"""Delivery to real loopback receivers: every channel's payload, outages, dead letters, isolation."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import hmac
import json
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.smtp import AuthResult
from prometheus_client import CollectorRegistry

from incidents.memory_store import MemoryStore
from incidents.sqlite_store import SqliteStore
from incidents.store import IncidentStore
from notify.email import markdown_evidence
from notify.rules import NotifyRules
from notify.sender import signature
from notify.worker import Notifier
from probe.clock import ManualClock
from slawatch import __version__
from slawatch.metrics import Metrics
from tests.notify.notify_fixtures import (
    BASE_URL,
    EVENTS,
    INCIDENT,
    ROUTING_KEY,
    SECRET,
    STORY,
    T0,
    config,
    http_channels,
    story,
    zero_sleep,
)
from tests.support.cli import run_slawatch
from tests.support.receiver import Receiver
from tests.support.servers import free_port, serve_app, smtp_server

Serve = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture
async def serve(aiohttp_server: Any) -> Serve:
    """Start an aiohttp application on 127.0.0.1 (closed after the test)."""

    async def start(app: web.Application) -> TestServer:
        server: TestServer = await aiohttp_server(app, host="127.0.0.1")
        return server

    return start


async def base_of(serve: Serve, receiver: Receiver) -> str:
    """The base URL of a started receiver."""
    server = await serve(receiver.app())
    return str(server.make_url("")).rstrip("/")


@dataclass
class Sink:
    """An aiosmtpd handler keeping every message it accepts."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 2.0.0 Queued"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    return AuthResult(success=auth_data.password == b"mail-pw")


@pytest.fixture
def smtpd(ca: trustme.CA) -> Iterator[tuple[Sink, int]]:
    """An aiosmtpd relay on 127.0.0.1 with STARTTLS and AUTH; yields its sink and port."""
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    sink = Sink()
    with smtp_server(
        sink,
        server_hostname="relay.test",
        tls_context=server_tls,
        require_starttls=True,
        authenticator=_authenticator,
    ) as port:
        yield sink, port


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    """The notifier's TLS context, trusting the private CA."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def email_channel(port: int, extra: str = "") -> str:
    """A STARTTLS + AUTH e-mail channel on the test relay."""
    return (
        f"  - {{name: mail, type: email, host: 127.0.0.1, port: {port}, tls: starttls, "
        f'username: oncall, password: "mail-pw", from: slawatch@example.com, '
        f"to: [oncall@example.com]{extra}}}\n"
    )


def show(store: Path, *args: str) -> str:
    """``slawatch incidents show`` of the test incident, run as a user would."""
    done = run_slawatch(
        "incidents", "show", INCIDENT, "--store", str(store), *args, cwd=store.parent
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def verify(received: Any) -> bool:
    """Whether a webhook's signature header is the HMAC-SHA256 of its raw body."""
    expected = "sha256=" + hmac.new(SECRET.encode(), received.raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers["X-Slawatch-Signature"], expected)


async def test_every_event_reaches_every_channel(
    serve: Serve, smtpd: tuple[Sink, int], client_tls: ssl.SSLContext
) -> None:
    """Each event type arrives once on each channel, in order, with the documented payload."""
    receiver = Receiver()
    base = await base_of(serve, receiver)
    sink, port = smtpd
    loaded = config(http_channels(base) + email_channel(port))
    clock = ManualClock(T0 + 3000)
    store = MemoryStore()
    story(loaded, NotifyRules(loaded.config.notify, base_url=BASE_URL, prober="eu-1"), store)
    notifier = Notifier(
        loaded.config.notify, clock=clock, sleep=zero_sleep(clock), tls_context=client_tls
    )
    await notifier.drain(store)

    hooks = receiver.paths("/hook")
    assert [h.body["event"] for h in hooks] == STORY
    for hook in hooks:
        body = hook.body
        assert set(body) >= {"event", "idempotency_key", "incident", "clocks", "links", "sent_at"}
        assert hook.headers["Idempotency-Key"] == body["idempotency_key"]
        assert hook.headers["Content-Type"] == "application/json"
        assert verify(hook)
        assert body["sent_at"] == "2026-11-02T10:50:00Z"
    opened = hooks[0].body
    assert opened["incident"]["provider_severity"] == "Non-Critical Issue"
    assert opened["links"]["incident"] == f"{BASE_URL}/api/v1/incidents/{INCIDENT}"

    slack = receiver.paths("/slack")
    assert len(slack) == len(EVENTS)
    assert "X-Slawatch-Signature" not in slack[0].headers
    assert slack[1].body["text"] == (
        "[slawatch] bird: incident upgraded (Critical Issue, severity 1) incident bird-1"
    )
    assert [b["type"] for b in slack[1].body["blocks"]] == ["header", "section", "context"]

    pages = [p.body for p in receiver.paths("/pd")]
    assert [p["event_action"] for p in pages] == [
        "trigger",
        "trigger",
        "trigger",
        "trigger",
        "trigger",
        "acknowledge",
        "trigger",
        "resolve",
    ]
    assert {p["routing_key"] for p in pages} == {ROUTING_KEY}
    incident_keys = {p["dedup_key"] for i, p in enumerate(pages) if i != 3}
    assert incident_keys == {f"slawatch/{INCIDENT}"}
    assert pages[0]["payload"]["severity"] == "error"
    assert pages[1]["payload"]["severity"] == "critical"
    assert pages[3]["dedup_key"] == "slawatch/prober/eu-1/misconfigured:bird/send"

    alerts = [a.body for a in receiver.paths("/api/v2/alerts")]
    assert len(alerts) == len(EVENTS)
    upgraded = {a["labels"]["severity"]: a for a in alerts[1] if a["labels"].get("severity")}
    assert upgraded["1"]["endsAt"] > "2026-11-03"  # firing, held a day
    assert upgraded["2"]["endsAt"] == "2026-11-02T10:50:00Z"  # the old level is resolved
    restored = alerts[5]
    assert all(a["endsAt"] == "2026-11-02T10:50:00Z" for a in restored)
    assert {a["labels"]["alertname"] for a in restored} == {"SlawatchIncident", "SlawatchSlaClock"}

    assert len(sink.messages) == len(EVENTS)
    first = sink.messages[0]
    assert first["Subject"].startswith("[slawatch] bird: incident opened (Non-Critical Issue")
    assert first["X-Slawatch-Idempotency-Key"] == hooks[0].body["idempotency_key"].replace(
        ":hook", ":mail"
    )
    assert "Evidence: https://slawatch.example.com/api/v1/incidents/bird-1/evidence?format=md" in (
        first.get_content()
    )
    breach = sink.messages[4].get_content()
    assert "Escalate now: Severity 1 line, 24x7x365." in breach


async def test_ticket_draft_is_the_evidence(
    tmp_path: Path, smtpd: tuple[Sink, int], client_tls: ssl.SSLContext
) -> None:
    """A ticket-draft channel mails the Markdown evidence under the provider's severity name."""
    sink, port = smtpd
    loaded = config(email_channel(port, ", ticket_draft: true, events: [opened, upgraded]"))
    clock = ManualClock(T0 + 3000)
    with SqliteStore(tmp_path / "s.db") as store:
        story(loaded, NotifyRules(loaded.config.notify, base_url=BASE_URL), store)
        notifier = Notifier(
            loaded.config.notify,
            clock=clock,
            sleep=zero_sleep(clock),
            tls_context=client_tls,
            evidence=markdown_evidence(lambda: loaded, clock, __version__),
        )
        await notifier.drain(store)
    opened, upgraded = sink.messages
    assert opened["Subject"] == (
        "Non-Critical Issue: bird unavailable since 2026-11-02T10:00:00Z (incident bird-1)"
    )
    assert upgraded["Subject"].strip().startswith("Critical Issue: bird unavailable since")
    assert opened["To"] == "oncall@example.com"
    assert opened.get_content().startswith("# Unavailability of bird: incident bird-1")
    assert "## SLA clocks" in opened.get_content()


@pytest.mark.parametrize(
    "outage", [pytest.param("503", id="http-503"), pytest.param("refused", id="connection-refused")]
)
async def test_receiver_down_for_30s_then_back(serve: Serve, outage: str) -> None:
    """After a 30 s outage every notification arrives exactly once per key, in channel order."""
    clock = ManualClock(T0 + 3000)
    back_at = clock.time() + 30
    receiver = Receiver(answer=lambda _r: 503 if clock.time() < back_at else 200)
    later = contextlib.AsyncExitStack()
    started: list[bool] = []
    if outage == "503":
        base = await base_of(serve, receiver)
    else:
        receiver = Receiver()
        port = free_port()
        base = f"http://127.0.0.1:{port}"

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        if outage == "refused" and clock.time() >= back_at and not started:
            started.append(True)  # before awaiting: the other channels sleep concurrently
            await later.enter_async_context(serve_app(receiver.app(), port))

    loaded = config(http_channels(base))
    store = MemoryStore()
    story(loaded, NotifyRules(loaded.config.notify, base_url=BASE_URL), store)
    queued = {
        name: [n.key for n in store.pending(name)] for name in ("hook", "chat", "pager", "am")
    }
    async with later:
        await Notifier(loaded.config.notify, clock=clock, sleep=sleep).drain(store)

    assert clock.time() >= back_at
    keys = [r.headers["Idempotency-Key"] for r in receiver.got]
    assert len(keys) == len(set(keys)) == 4 * len(EVENTS)
    for name, path in (
        ("hook", "/hook"),
        ("chat", "/slack"),
        ("pager", "/pd"),
        ("am", "/api/v2/alerts"),
    ):
        assert [r.headers["Idempotency-Key"] for r in receiver.paths(path)] == queued[name]
    assert store.pending() == []
    first = store.notifications(state="delivered")[0]
    assert first.tries > 1


async def test_always_500_ends_in_dead_letter(serve: Serve, tmp_path: Path) -> None:
    """A receiver answering 500 gets ``max_tries`` tries, then the notification is dead."""
    receiver = Receiver(answer=lambda _r: 500)
    base = await base_of(serve, receiver)
    loaded = config(
        f'  - {{name: hook, type: webhook, url: "{base}/hook", max_tries: 4, events: [opened, upgraded]}}\n'
    )
    clock = ManualClock(T0 + 3000)
    registry = CollectorRegistry()
    metrics = Metrics(registry, __version__)
    metrics.prepare(loaded.config)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        clock.advance(seconds)

    path = tmp_path / "store.db"
    with SqliteStore(path) as store:
        story(loaded, NotifyRules(loaded.config.notify, base_url=BASE_URL), store)
        await Notifier(loaded.config.notify, clock=clock, sleep=sleep, metrics=metrics).drain(store)
        dead = store.notifications(state="dead")

    assert [(n.event, n.tries, n.last_error) for n in dead] == [
        ("opened", 4, "HTTP 500: down"),
        ("upgraded", 4, "HTTP 500: down"),
    ]
    assert len(receiver.tries) == 8
    # Exponential backoff with jitter: 1-2 s, 2-3 s, 4-5 s between the four tries.
    assert [int(d) for d in delays] == [1, 2, 4, 1, 2, 4]

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("slawatch_notifications_total", channel="hook", result="dead") == 2
    assert sample("slawatch_notifications_total", channel="hook", result="failed") == 8
    assert sample("slawatch_notifications_total", channel="hook", result="delivered") == 0
    assert sample("slawatch_notification_queue_depth", channel="hook") == 0

    text = show(path)
    assert "0 pending, 0 delivered, 2 dead" in text
    assert f"DEAD  hook        opened           4 tries  HTTP 500: down  key {dead[0].key}" in text
    document = json.loads(show(path, "--format", "json"))
    assert [n["state"] for n in document["notifications"]] == ["dead", "dead"]


@pytest.mark.parametrize(
    ("status", "tries"),
    [
        pytest.param(400, 1, id="400-dead-at-once"),
        pytest.param(404, 1, id="404-dead-at-once"),
        pytest.param(429, 3, id="429-retried"),
        pytest.param(408, 3, id="408-retried"),
    ],
)
async def test_refusals_are_permanent_overload_is_not(
    serve: Serve, status: int, tries: int
) -> None:
    """A 4xx refusal is dead at once (retrying cannot help); 408 and 429 are retried."""
    receiver = Receiver(answer=lambda _r: status)
    base = await base_of(serve, receiver)
    loaded = config(
        f'  - {{name: hook, type: webhook, url: "{base}/hook", max_tries: 3, events: [opened]}}\n'
    )
    clock = ManualClock(T0 + 3000)
    store = MemoryStore()
    story(loaded, NotifyRules(loaded.config.notify, base_url=BASE_URL), store)
    await Notifier(loaded.config.notify, clock=clock, sleep=zero_sleep(clock)).drain(store)
    (dead,) = store.notifications(state="dead")
    assert dead.tries == tries == len(receiver.tries)


async def test_slow_channel_delays_no_other(serve: Serve) -> None:
    """While one channel's receiver hangs, the other channel's notifications are delivered."""
    release = asyncio.Event()

    async def hang(_request: web.Request) -> int:
        await release.wait()
        return 200

    slow, fast = Receiver(answer=hang), Receiver()
    slow_base, fast_base = await base_of(serve, slow), await base_of(serve, fast)
    loaded = config(
        f'  - {{name: slow, type: webhook, url: "{slow_base}/hook"}}\n'
        f'  - {{name: fast, type: webhook, url: "{fast_base}/hook"}}\n'
    )
    clock = ManualClock(T0 + 3000)
    store = MemoryStore()
    story(loaded, NotifyRules(loaded.config.notify, base_url=BASE_URL), store)
    notifier = Notifier(loaded.config.notify, clock=clock, sleep=zero_sleep(clock))
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(store, stop=stop))
    try:
        async with asyncio.timeout(10):
            await fast.until(len(EVENTS))
        assert slow.got == []
        assert len(slow.tries) == 1  # the first is still in flight
    finally:
        release.set()
        stop.set()
        await task
    assert [r.body["event"] for r in fast.got] == STORY


async def test_worker_wakes_on_commit_and_restarts_on_reload(serve: Serve) -> None:
    """A running worker delivers what is committed after ``wake()``, and new channels after reload."""
    receiver = Receiver()
    base = await base_of(serve, receiver)
    first = config(f'  - {{name: a, type: webhook, url: "{base}/a", events: [opened]}}\n')
    both = config(
        f'  - {{name: a, type: webhook, url: "{base}/a", events: [opened]}}\n'
        f'  - {{name: b, type: slack, url: "{base}/b", events: [opened]}}\n'
    )
    clock = ManualClock(T0 + 3000)
    store: IncidentStore = MemoryStore()
    notifier = Notifier(first.config.notify, clock=clock, sleep=zero_sleep(clock))
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(store, stop=stop))

    async def until(count: int) -> None:
        async with asyncio.timeout(10):
            await receiver.until(count)

    try:
        rules = NotifyRules(both.config.notify, base_url=BASE_URL)
        story(both, rules, store)
        notifier.wake()
        await until(1)
        notifier.configure(both.config.notify)
        await until(2)
    finally:
        stop.set()
        await task
    assert sorted(r.path for r in receiver.got) == ["/a", "/b"]


def test_signature_matches_a_receivers_check() -> None:
    """The signature is what a receiver computes with the shared secret over the raw body."""
    body = b'{"event":"opened"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature("s3cret", body) == f"sha256={expected}"
