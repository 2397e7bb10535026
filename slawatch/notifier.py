"""The notification worker: the store's outbox to webhooks, Slack, PagerDuty, Alertmanager, mail.

Each channel has its own worker task, so a slow or failing channel delays nobody else
(and never the probes: the daemon only commits rows to the outbox). A worker sends the
oldest pending notification of its channel and moves on only once it is delivered or
dead-lettered, which keeps each channel in order. Tries are retried by tenacity with
capped exponential backoff and jitter; every failed try is written to the store (tries
made, when the next may start), so a restarted worker continues the same schedule, and
after ``max_tries`` the notification is dead-lettered. Delivery is at least once: the
idempotency key (``Idempotency-Key`` header, e-mail ``Message-ID``) lets receivers drop
repeats.

Errors, classified once::

    2xx                                   delivered
    408, 425, 429, 5xx, timeout, network  failed try, retried (DeliveryError)
    other 3xx/4xx, SMTP 5xx reply         dead at once (PermanentDeliveryError)
    any other exception (a bug of ours)   failed try, retried, logged with its traceback
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import aiohttp
import aiosmtplib
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from config import LoadedConfig
from config.model import (
    AlertmanagerNotify,
    EmailNotify,
    NotifyChannel,
    PagerDutyNotify,
    SlackNotify,
    WebhookNotify,
)
from incidents.evidence import bundle_for, render
from incidents.notify import (
    Notification,
    alertmanager_body,
    email_subject,
    email_text,
    is_ticket_draft,
    pagerduty_body,
    slack_body,
    webhook_body,
)
from incidents.store import IncidentStore
from probe.clock import Clock
from probe.redact import Redactor
from slawatch.metrics import Metrics

log = logging.getLogger("slawatch.notifier")

# Backoff between tries: 1 s, 2 s, 4 s … plus up to 1 s of jitter, capped at 5 minutes.
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 300.0
BACKOFF_JITTER_S = 1.0
# An idle worker looks at the outbox this often even when nobody wakes it.
POLL_S = 5.0
# Receivers' answers are kept in error messages up to this length.
ERROR_TEXT = 200
RETRYABLE_STATUS = frozenset({408, 425, 429})
SIGNATURE_HEADER = "X-Slawatch-Signature"

Sleep = Callable[[float], Awaitable[None]]
# (store, incident id) → the incident's Markdown evidence, or None.
Evidence = Callable[[IncidentStore, str], str | None]


class DeliveryError(Exception):
    """A try failed in a way a later try may not (timeout, network, 5xx, 429)."""


class PermanentDeliveryError(DeliveryError):
    """A try failed in a way no retry can fix (the receiver refuses the request itself)."""


class Sender(Protocol):
    """Delivers one notification to one channel, or raises DeliveryError."""

    async def send(self, note: Notification, *, sent_at: float) -> None:
        """Deliver ``note``, stamped ``sent_at``."""


def signature(secret: str, body: bytes) -> str:
    """The ``X-Slawatch-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class HttpSender:
    """POSTs a channel's JSON payload with the notification's ``Idempotency-Key``."""

    def __init__(
        self,
        url: str,
        body: Callable[[Notification, float], Any],
        *,
        session: Callable[[], aiohttp.ClientSession],
        timeout: float,
        secret: str | None = None,
    ) -> None:
        self.url = url
        self._body = body
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._secret = secret

    async def send(self, note: Notification, *, sent_at: float) -> None:
        """POST the payload; 2xx delivers, anything else raises (see the module's table)."""
        raw = _encode(self._body(note, sent_at))
        headers = {"Content-Type": "application/json", "Idempotency-Key": note.key}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret, raw)
        try:
            async with self._session().post(
                self.url, data=raw, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return
                text = (await response.text(errors="replace"))[:ERROR_TEXT].strip()
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Never the URL: a Slack webhook's path is its secret.
            raise DeliveryError(f"{type(exc).__name__}: {exc or 'timed out'}") from None
        message = f"HTTP {response.status}" + (f": {text}" if text else "")
        if response.status >= 500 or response.status in RETRYABLE_STATUS:
            raise DeliveryError(message)
        raise PermanentDeliveryError(message)


class EmailSender:
    """Sends a notification, or a ticket draft with the incident's evidence, through SMTP."""

    def __init__(
        self,
        channel: EmailNotify,
        *,
        evidence: Callable[[str], Awaitable[str | None]],
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.channel = channel
        self._evidence = evidence
        self._tls_context = tls_context

    async def message(self, note: Notification, *, sent_at: float) -> EmailMessage:
        """The e-mail of one notification (a ticket draft when the channel asks for one)."""
        channel = self.channel
        draft = channel.ticket_draft and is_ticket_draft(note)
        body = None
        if draft and note.incident is not None:
            body = await self._evidence(note.incident)
        message = EmailMessage()
        message["From"] = channel.from_
        message["To"] = ", ".join(channel.to)
        message["Subject"] = email_subject(note, ticket_draft=body is not None)
        message["Date"] = formatdate(sent_at, usegmt=True)
        # The same Message-ID on every try: mail systems drop the repeats of at-least-once.
        digest = hashlib.sha256(note.key.encode()).hexdigest()[:32]
        message["Message-ID"] = f"<{digest}@slawatch>"
        message["X-Slawatch-Idempotency-Key"] = note.key
        message["X-Slawatch-Event"] = note.event
        message.set_content(body if body is not None else email_text(note))
        return message

    async def send(self, note: Notification, *, sent_at: float) -> None:
        """Hand the message to the relay; a 5xx reply is permanent, the rest retried."""
        channel = self.channel
        message = await self.message(note, sent_at=sent_at)
        try:
            await aiosmtplib.send(
                message,
                hostname=channel.host,
                port=channel.port,
                username=channel.username,
                password=None if channel.password is None else channel.password.get_secret_value(),
                use_tls=channel.tls == "implicit",
                start_tls=channel.tls == "starttls",
                tls_context=self._tls_context,
                timeout=channel.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = {r.code for r in exc.recipients}
            error = f"recipients refused: {', '.join(str(r) for r in exc.recipients)}"
            if all(code >= 500 for code in codes):
                raise PermanentDeliveryError(error) from None
            raise DeliveryError(error) from None
        except aiosmtplib.SMTPResponseException as exc:
            error = f"SMTP {exc.code}: {exc.message}"
            if exc.code >= 500:
                raise PermanentDeliveryError(error) from None
            raise DeliveryError(error) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


def markdown_evidence(loaded: Callable[[], LoadedConfig], clock: Clock, version: str) -> Evidence:
    """Ticket-draft bodies: the incident's Markdown evidence as of the time it is sent."""

    def evidence(store: IncidentStore, incident: str) -> str | None:
        bundle = bundle_for(store, incident, loaded(), now=clock.time(), version=version)
        return None if bundle is None else render(bundle, "md")

    return evidence


class Notifier:
    """Delivers the outbox of a store, one worker per configured channel."""

    def __init__(
        self,
        channels: Iterable[NotifyChannel],
        *,
        clock: Clock,
        metrics: Metrics | None = None,
        sleep: Sleep = asyncio.sleep,
        evidence: Evidence | None = None,
        tls_context: ssl.SSLContext | None = None,
        secrets: Iterable[str] = (),
        backoff_initial: float = BACKOFF_INITIAL_S,
        backoff_max: float = BACKOFF_MAX_S,
        poll: float = POLL_S,
    ) -> None:
        self.clock = clock
        self.metrics = metrics
        self._sleep = sleep
        self._evidence = evidence
        self._tls_context = tls_context
        # Errors are stored and shown: the probes' redactor (secrets, URL passwords, one line).
        self._redact = Redactor(secrets)
        self._backoff = (backoff_initial, backoff_max)
        self._poll = poll
        self._channels: dict[str, NotifyChannel] = {}
        self._senders: dict[str, Sender] = {}
        self._session: aiohttp.ClientSession | None = None
        # One wake-up per channel worker, so none can consume another's.
        self._wakeups: dict[str, asyncio.Event] = {}
        self._reconfigured = asyncio.Event()
        # The store being delivered (set by run/drain), read for ticket-draft evidence.
        self._store: IncidentStore | None = None
        self.configure(channels)

    def configure(self, channels: Iterable[NotifyChannel]) -> None:
        """Use a (reloaded) config's channels; running workers restart with them."""
        self._channels = {c.name: c for c in channels}
        self._senders = {name: self._sender(c) for name, c in self._channels.items()}
        self._reconfigured.set()

    def wake(self) -> None:
        """Tell every worker to look at the outbox now (the daemon calls it after a commit)."""
        for event in self._wakeups.values():
            event.set()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the notifier is not running")
        return self._session

    def _sender(self, channel: NotifyChannel) -> Sender:
        def http(url: str, body: Callable[[Notification, float], Any]) -> HttpSender:
            secret = getattr(channel, "secret", None)
            return HttpSender(
                url,
                body,
                session=self._get_session,
                timeout=channel.timeout,
                secret=None if secret is None else secret.get_secret_value(),
            )

        if isinstance(channel, WebhookNotify):
            return http(channel.url, lambda n, at: webhook_body(n, sent_at=at))
        if isinstance(channel, SlackNotify):
            return http(channel.url, lambda n, _at: slack_body(n))
        if isinstance(channel, PagerDutyNotify):
            key = channel.routing_key.get_secret_value()
            return http(channel.url, lambda n, at: pagerduty_body(n, routing_key=key, sent_at=at))
        if isinstance(channel, AlertmanagerNotify):
            url = channel.url.rstrip("/")
            if not url.endswith("/api/v2/alerts"):
                url += "/api/v2/alerts"
            return http(url, lambda n, at: alertmanager_body(n, sent_at=at))
        return EmailSender(channel, evidence=self._draft, tls_context=self._tls_context)

    # -- running ---------------------------------------------------------------------

    async def run(self, store: IncidentStore, *, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set (an interrupted try is sent again after a restart)."""
        self._store = store
        workers: dict[str, asyncio.Task[None]] = {}
        async with self._open():
            stopper = asyncio.create_task(stop.wait())
            try:
                while not stop.is_set():
                    self._reconfigured.clear()
                    # A reload starts workers for new channels and stops those of removed
                    # ones; the others carry on (cancelling them could send a try twice).
                    for name in [n for n in workers if n not in self._channels]:
                        workers.pop(name).cancel()
                    for name in self._channels:
                        if name not in workers or workers[name].done():
                            self._reap(workers.get(name))
                            workers[name] = asyncio.create_task(
                                self._work(store, name, forever=True), name=f"notify-{name}"
                            )
                    changed = asyncio.create_task(self._reconfigured.wait())
                    await asyncio.wait(
                        {stopper, changed, *workers.values()}, return_when=asyncio.FIRST_COMPLETED
                    )
                    changed.cancel()
            finally:
                stopper.cancel()
                for task in workers.values():
                    task.cancel()
                await asyncio.gather(stopper, *workers.values(), return_exceptions=True)

    @staticmethod
    def _reap(task: asyncio.Task[None] | None) -> None:
        """Log how a worker ended, if it did (a worker must never end the notifier)."""
        if task is None or not task.done() or task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("notification worker failed; restarting it", exc_info=exc)

    async def drain(self, store: IncidentStore) -> None:
        """Deliver (or dead-letter) every pending notification now, then return."""
        self._store = store
        async with self._open():
            await asyncio.gather(*(self._work(store, n, forever=False) for n in self._channels))

    @contextlib.asynccontextmanager
    async def _open(self) -> Any:
        if self._session is not None:
            yield
            return
        self._session = aiohttp.ClientSession()
        try:
            yield
        finally:
            session, self._session = self._session, None
            await session.close()

    async def _work(self, store: IncidentStore, name: str, *, forever: bool) -> None:
        wakeup = self._wakeups.setdefault(name, asyncio.Event())
        while name in self._channels:
            wakeup.clear()
            try:
                head = await asyncio.to_thread(store.pending, name, limit=1)
            except Exception:
                # The store is busy or broken: try again later rather than spin.
                log.exception("cannot read the notification outbox", extra={"channel": name})
                if not forever:
                    raise
                await self._idle(wakeup)
                continue
            if head:
                await self._deliver(store, self._channels[name], head[0])
                continue
            await self._publish_depth(store)
            if not forever:
                return
            await self._idle(wakeup)

    async def _idle(self, wakeup: asyncio.Event) -> None:
        """Wait for a wake-up, or for the poll interval on the injected clock."""
        waiter = asyncio.create_task(wakeup.wait())
        poller = asyncio.create_task(self.clock.sleep_until(self.clock.time() + self._poll))
        try:
            await asyncio.wait({waiter, poller}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            poller.cancel()
            await asyncio.gather(waiter, poller, return_exceptions=True)

    async def _deliver(
        self, store: IncidentStore, channel: NotifyChannel, note: Notification
    ) -> None:
        """Try one notification until delivered or dead; the outbox records every try."""
        sender = self._senders[channel.name]
        wait = (note.next_at or 0.0) - self.clock.time()
        if wait > 0:
            # A restarted worker keeps the backoff the last run had reached.
            await self._sleep(wait)
        tries = note.tries

        async def failed(state: RetryCallState) -> None:
            error = self._error(state)
            self._count(channel.name, "failed")
            log.info(
                "notification try failed",
                extra={"channel": channel.name, "key": note.key, "tries": tries, "error": error},
            )
            await asyncio.to_thread(
                store.mark_failed,
                note.key,
                tries=tries,
                next_at=self.clock.time() + state.upcoming_sleep,
                error=error,
            )

        initial, cap = self._backoff
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, channel.max_tries - note.tries)),
            wait=wait_exponential_jitter(initial=initial, max=cap, jitter=BACKOFF_JITTER_S),
            # Never a cancellation (a BaseException): stopping must stop, not retry.
            retry=retry_if_exception(
                lambda e: isinstance(e, Exception) and not isinstance(e, PermanentDeliveryError)
            ),
            sleep=self._sleep,
            before_sleep=failed,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    tries += 1
                    await sender.send(note, sent_at=self.clock.time())
        except Exception as exc:
            # Whatever it was (a bug of ours included), this notification is dead.
            error = self._redact(str(exc) or type(exc).__name__)
            if not isinstance(exc, DeliveryError):
                log.exception("notification sender failed")
            self._count(channel.name, "failed")
            self._count(channel.name, "dead")
            log.warning(
                "notification dead-lettered",
                extra={"channel": channel.name, "key": note.key, "tries": tries, "error": error},
            )
            await asyncio.to_thread(
                store.mark_dead, note.key, tries=tries, at=self.clock.time(), error=error
            )
        else:
            self._count(channel.name, "delivered")
            await asyncio.to_thread(store.mark_delivered, note.key, at=self.clock.time())
        await self._publish_depth(store)

    def _error(self, state: RetryCallState) -> str:
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is None:
            return "unknown error"
        if not isinstance(exc, DeliveryError):
            log.error("notification sender failed", exc_info=exc)
        return self._redact(str(exc) or type(exc).__name__)

    def _count(self, channel: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.notification(channel, result)

    async def _publish_depth(self, store: IncidentStore) -> None:
        if self.metrics is None:
            return
        counts = await asyncio.to_thread(store.outbox_counts)
        depths: Mapping[str, int] = {
            channel: count for (channel, state), count in counts.items() if state == "pending"
        }
        self.metrics.set_queue_depth(depths, self._channels)

    async def _draft(self, incident: str) -> str | None:
        if self._evidence is None or self._store is None:
            return None
        return await asyncio.to_thread(self._evidence, self._store, incident)
