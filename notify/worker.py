"""The delivery worker: the store's outbox to every configured channel, each on its own.

Each channel has its own worker task, so a slow or failing channel delays nobody else
(and never the probes: the daemon only writes rows to the outbox). A worker sends the
oldest pending notification of its channel and moves on only once it is delivered or
dead-lettered, which keeps each channel in order. Tries are retried by tenacity with
capped exponential backoff and jitter; every failed try is written to the store (tries
made, when the next may start), so a restarted worker continues the same schedule, and
after ``max_tries`` the notification is dead-lettered. Delivery is at least once: the
idempotency key (``Idempotency-Key`` header, e-mail ``Message-ID``) lets receivers drop
repeats. How each error is classified: ``notify/sender.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from config.model import NotifyChannel
from config.secrets import Redactor
from incidents.outbox import Notification
from incidents.store import IncidentStore
from notify.email import Evidence
from notify.registry import make_sender
from notify.sender import DeliveryError, PermanentDeliveryError, Sender, SenderContext
from probe.clock import Clock

log = logging.getLogger("slawatch.notify")

# Backoff between tries: 1 s, 2 s, 4 s … plus up to 1 s of jitter, capped at 5 minutes.
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 300.0
BACKOFF_JITTER_S = 1.0
# An idle worker looks at the outbox this often even when nobody wakes it.
POLL_S = 5.0

Sleep = Callable[[float], Awaitable[None]]


class DeliveryMetrics(Protocol):
    """What the worker reports (slawatch.metrics.Metrics implements it)."""

    def notification(self, channel: str, result: str) -> None:
        """Count one try of ``channel``: delivered, failed or dead."""

    def set_queue_depth(self, depths: Mapping[str, int], channels: Iterable[str]) -> None:
        """Set the pending-notification gauge of every channel."""


class Notifier:
    """Delivers the outbox of a store, one worker per configured channel."""

    def __init__(
        self,
        channels: Iterable[NotifyChannel],
        *,
        clock: Clock,
        metrics: DeliveryMetrics | None = None,
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
        # Errors are stored and shown: redacted (secrets, URL passwords) and on one line.
        self._redact = Redactor(secrets).detail
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

    def configure(
        self, channels: Iterable[NotifyChannel], *, secrets: Iterable[str] | None = None
    ) -> None:
        """Use a (reloaded) config's channels and secrets; running workers restart with them."""
        if secrets is not None:
            self._redact = Redactor(secrets).detail
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
        context = SenderContext(
            session=self._get_session, evidence=self._draft, tls_context=self._tls_context
        )
        return make_sender(channel, context)

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
