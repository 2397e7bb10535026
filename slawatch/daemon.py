"""The daemon: composes probes → classifier → recorder → store, the event-log follower and web.

The store's event log is the source of truth: the daemon commits what its classifier
finds, then reads back every event (its own and other writers') through the follower,
which derives the open incidents, clocks, incident metrics and notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry

from classifier.engine import Classifier, Finalized
from classifier.signals import IncidentSignal, signal_facts
from config import ConfigError, LoadedConfig, load_config
from incidents.model import EventRecord, Incident
from incidents.recorder import Recorder
from incidents.store import Batch, IncidentStore, StoreError
from notify.email import markdown_evidence
from notify.rules import NotifyRules
from notify.worker import Notifier
from probe.attempt import Attempt
from probe.clock import Clock
from probe.scheduler import MISSED_PHASE
from slawatch import __version__
from slawatch.attemptlog import AttemptLog
from slawatch.follower import EventFollower
from slawatch.metrics import Metrics
from slawatch.probing import Probing
from slawatch.server import serve
from slawatch.status import HEALTHY_LAG_S, Board, Health
from slawatch.storage import open_store
from slawatch.writer import StoreWriter

if TYPE_CHECKING:
    from slawatch.fleet import FleetMember

log = logging.getLogger("slawatch.daemon")
T = TypeVar("T")

# Where in each second the classifier advances: late enough that launches at the
# boundary are not competing with it, early enough to publish verdicts promptly.
TICK_OFFSET = 0.05
# Retention runs at start and then this often: rows expire by the day, not the second.
PRUNE_INTERVAL = 3600.0


class Daemon:
    """Everything ``slawatch run`` runs, built from one loaded config by :func:`build`."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock,
        registry: CollectorRegistry,
        store: IncidentStore | None = None,
        on_signal: Callable[[IncidentSignal], object] | None = None,
        attempt_log: Path | None = None,
    ) -> None:
        self.loaded = loaded
        self.clock = clock
        self.registry = registry
        # Read once: the per-target series are the registry's shape, not swapped on reload.
        self.metrics = Metrics(registry, __version__, per_target=loaded.config.metrics.per_target)
        self.health = Health(config_loaded=True)
        self.status = Board()
        self.writer = StoreWriter(self.health)
        # Every pooled attempt as a replay line (--attempt-log); OSError if it cannot open.
        self.attempt_log = (
            None if attempt_log is None else AttemptLog(attempt_log, self.metrics.core)
        )
        rules = NotifyRules(
            loaded.config.notify,
            base_url=loaded.config.server.base_url,
            prober=loaded.config.prober.id,
        )
        self.follower = EventFollower(rules, self.metrics)
        self.notifier = Notifier(
            loaded.config.notify,
            clock=clock,
            metrics=self.metrics,
            secrets=loaded.secrets,
            evidence=markdown_evidence(lambda: self.loaded, clock, __version__),
        )
        self.classifier = Classifier.from_config(loaded.config, loaded.catalog)
        self.recorder = Recorder.from_config(loaded)
        self.store: IncidentStore | None = store
        self._own_store = store is None
        # This instance's part in a fleet (storage.url), set when the store opens.
        self.fleet: FleetMember | None = None
        self._on_signal = on_signal
        self.probing = Probing(
            loaded,
            clock=clock,
            metrics=self.metrics,
            health=self.health,
            on_attempt=self._on_attempt,
        )
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._hand_over = False
        self._last_prune = -math.inf
        self.metrics.prepare(loaded.config)
        self.status.reconfigure(loaded.config)

    async def read(self, func: Callable[..., T], *args: object) -> T:
        """Run a store read off the event loop (reads do not queue behind the writer)."""
        return await asyncio.to_thread(func, *args)

    def _on_attempt(self, attempt: Attempt) -> None:
        # A missed launch's record: counted by slawatch_missed_launches_total, not as an
        # attempt, and it says nothing of the target's health; judged and kept as evidence.
        if attempt.phase != MISSED_PHASE:
            self.metrics.attempt(attempt)
            self.health.note(attempt)
            self.follower.queue(
                self.follower.rules.prober_health(
                    f"misconfigured:{attempt.service}/{attempt.target}",
                    healthy=not attempt.misconfigured,
                    now=attempt.started_at,
                    detail=attempt.detail,
                    service=attempt.service,
                    target=attempt.target,
                )
            )
        try:
            self.pool(attempt)
        except KeyError:
            # A service removed by a reload while its attempt was in flight.
            return

    def pool(self, attempt: Attempt) -> bool:
        """Judge ``attempt`` with the rest of its second; False if that second is final already.

        In a fleet the finalizer judges the pooled seconds: this member publishes its own
        attempts and the traffic it ingested. UnknownServiceError for a service not judged.
        """
        if self.fleet is not None:
            taken = self.fleet.add(attempt)
        else:
            taken = self.classifier.add(attempt)
            self.recorder.attempt(attempt)
        # Late ones too: in the log's arrival order, a replay counts them late as well.
        if self.attempt_log is not None:
            self.attempt_log.add(attempt)
        return taken

    async def open_store(self) -> IncidentStore:
        """Open the store and resume the classifier, the recorder and the follower from it."""
        store = self.store
        if store is None:
            store = self.store = await self.writer.run(open_store, self.loaded)
        if self.loaded.config.storage.url is not None:
            await self._join_fleet(store)
            await self.writer.run(self.follower.start, store)
            self.health.store_open = True
            return store
        try:
            state = await self.writer.run(store.classifier_state)
            if state:
                self.classifier.restore(state)
            await self.writer.run(self.recorder.resume, store)
            await self.writer.run(self.follower.start, store)
        except (sqlite3.DatabaseError, ValueError) as exc:
            # Damage past the header shows only when the pages are read: one clear line.
            raise StoreError(f"{store.where}: not a usable slawatch store: {exc}") from None
        self.health.store_open = True
        return store

    async def _join_fleet(self, store: IncidentStore) -> None:
        from slawatch.fleet import FleetMember  # noqa: PLC0415  (psycopg: fleet only)

        member = FleetMember.of(
            self.loaded, store, version=__version__, local_time=self.clock.time,
            registry=self.metrics.core,
        )  # fmt: skip
        await self.writer.run(member.start, self.clock.time())
        self.fleet = member

    async def run(
        self,
        *,
        web_app: web.Application | None = None,
        on_started: Callable[[], object] | None = None,
    ) -> None:
        """Run until :meth:`stop`: probing, judging, recording, serving ``web_app``.

        ``on_started`` is called once everything is built and the probes are scheduled.
        """
        async with contextlib.AsyncExitStack() as resources:
            # Closed in reverse order: the web first, then the probes' sessions, the store.
            resources.callback(self.writer.close)
            store = await self.open_store()
            if self._own_store:
                resources.push_async_callback(self.writer.run, store.close)
            if self.attempt_log is not None:
                # Closed after the web: an ingestion request still answering is written too.
                resources.push_async_callback(self.attempt_log.close)
            if web_app is not None:
                resources.push_async_callback(await serve(web_app, self.loaded.config.server))
            targets = self.probing.start()
            log.info(
                "slawatch started",
                extra={
                    "version": __version__,
                    "services": len(self.loaded.config.services),
                    "targets": targets,
                    "config_digest": self.loaded.digest[:12],
                },
            )
            if on_started is not None:
                on_started()
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._tick_loop())
                    group.create_task(self.notifier.run(self._outbox(store), stop=self._stop))
                    if self.attempt_log is not None:
                        group.create_task(self.attempt_log.run(self.clock, self._stop))
            finally:
                await self._drain(store)

    def _outbox(self, store: IncidentStore) -> IncidentStore:
        """The store as the notifier uses it: in a fleet, each worker claims its rows."""
        return store if self.fleet is None else self.fleet.outbox()

    def stop(self) -> None:
        """Ask the daemon to stop: launches stop, in-flight attempts finish, the store flushes."""
        self.health.stopping = True
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the daemon to reload its config file at the next tick."""
        self._reload.set()

    def request_hand_over(self) -> None:
        """In a fleet, give the finalizer's lease up at the next tick (a planned handover)."""
        self._hand_over = True

    async def _tick_loop(self) -> None:
        next_tick = math.floor(self.clock.time()) + 1 + TICK_OFFSET
        while not self._stop.is_set():
            sleeper = asyncio.ensure_future(self.clock.sleep_until(next_tick))
            stopper = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            stopper.cancel()
            if self._stop.is_set():
                break
            now = self.clock.time()
            await self.tick(now)
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            # Never tick twice for one second, nor fall behind after a stall.
            next_tick = max(next_tick + 1, math.floor(now) + TICK_OFFSET)

    async def tick(self, now: float) -> None:
        """One second's work: finalize seconds, commit, follow the log, refresh, prune."""
        health = self.health
        health.last_tick, health.last_lag, health.lag_window = now, health.lag_window, 0.0
        self.follower.queue(
            self.follower.rules.prober_health(
                "launch_lag",
                healthy=health.last_lag <= HEALTHY_LAG_S,
                now=now,
                detail=f"launch lag {health.last_lag:.3f}s",
            )
        )
        if self.fleet is not None:
            fleet = self.fleet
            if self._hand_over:
                self._hand_over = False
                await self.writer.run(fleet.hand_over)
            found = await self.writer.run(fleet.step, fleet.cut(now))
            self._judge(found, now, recorded=True)
            if fleet.reassigned and fleet.assignment is not None:
                fleet.reassigned = False
                self.probing.shard(fleet.owns, fleet.assignment.effective_second)
            # Beyond max_clock_offset the finalizer sets this prober's attempts aside.
            self.follower.queue(
                self.follower.rules.prober_health(
                    "clock_offset", healthy=fleet.clock_healthy, now=now,
                    detail=f"clock offset {fleet.clock_offset or 0.0:+.3f}s to the database",
                )
            )  # fmt: skip
        else:
            self._judge(self.classifier.advance(now), now)
        await self._settle(now)
        if now - self._last_prune >= PRUNE_INTERVAL and health.store_writable and self.store:
            self._last_prune = now
            await self.writer.prune(self.store, now, self.loaded.config.storage)

    def _judge(self, found: Finalized, now: float, *, recorded: bool = False) -> None:
        """Take what became final: each verdict to the board and metrics, all to the recorder.

        ``recorded``: a fleet's finalizer has committed them already.
        """
        for verdict in found.verdicts:
            self.metrics.verdict(verdict, self.status.record(verdict))
        if not recorded:
            self.recorder.record(found.verdicts, found.signals, now=now)
        for sig in found.signals:
            log.warning(
                f"incident {type(sig).__name__.lower()}",
                extra={"incident": sig.incident, "service": sig.service, **signal_facts(sig)},
            )
            if self._on_signal is not None:
                self._on_signal(sig)

    async def _settle(self, now: float) -> None:
        """Commit what was recorded, take the log's new events, refresh clocks, wake delivery."""
        store = self.store
        if store is None:
            return
        follower = self.follower
        if self.fleet is None:
            await self.writer.commit(store, self.recorder.take(self.classifier.snapshot()), now)
        try:
            await self.writer.run(follower.sync, store)
        except Exception as exc:  # noqa: BLE001  (a shared store away: follow on when back)
            self.writer.failed(exc, now)
        follower.refresh(now, [s.name for s in self.loaded.config.services])
        if follower.unsent:
            await self.writer.run(follower.flush, store)
        self.notifier.wake()

    async def record_event(self, event: EventRecord) -> Incident:
        """Write one user event now (not batched: the caller waits for its answer)."""
        store = self.store
        if store is None:
            raise StoreError("the store is not open")
        (incident,) = await self.writer.run(store.commit, Batch(events=[event]))
        await self.writer.run(self.follower.sync, store)
        self.notifier.wake()
        return incident

    def reload(self) -> bool:
        """Re-read the config file; apply it if valid, else log the located error and keep going.

        The attempt log is reopened either way (SIGHUP after logrotate moved it).
        """
        if self.attempt_log is not None:
            self.attempt_log.reopen()
        try:
            loaded = load_config(self.loaded.source)
        except ConfigError as exc:
            # A located one-line error is the message; a traceback would only hide it.
            log.error(  # noqa: TRY400
                "config reload refused; keeping the running config", extra={"error": str(exc)}
            )
            return False
        self.apply(loaded)
        log.info("config reloaded", extra={"config_digest": loaded.digest[:12]})
        return True

    def apply(self, loaded: LoadedConfig) -> None:
        """Switch to a new config without losing in-flight attempts, incidents or counters."""
        self.loaded = loaded
        self.classifier.reconfigure(loaded.config, loaded.catalog)
        self.recorder.reconfigure(loaded)
        if loaded.config.metrics.per_target != self.metrics.table.per_target:
            log.warning("metrics.per_target takes effect at the next restart")
        self.metrics.prepare(loaded.config)
        self.status.reconfigure(loaded.config)
        self.follower.rules.reconfigure(
            loaded.config.notify, base_url=self.loaded.config.server.base_url
        )
        self.notifier.configure(loaded.config.notify, secrets=loaded.secrets)
        self.probing.reconfigure(loaded)

    async def _drain(self, store: IncidentStore) -> None:
        """Stop launching, judge every second the launched attempts complete, commit it."""
        stop_at = self.clock.time()
        await self.probing.stop()
        if self.fleet is not None:
            fleet = self.fleet
            await self.writer.run(fleet.step, fleet.cut(stop_at, through=math.floor(stop_at) - 1))
            await self.writer.run(fleet.release)
            await self._settle(self.clock.time())
            log.info("slawatch stopped", extra={"pending_batches": 0})
            return
        # Every attempt launched before the stop is in: seconds before it are complete.
        found = self.classifier.advance_through(math.floor(stop_at) - 1)
        now = self.clock.time()
        self._judge(found, now)
        await self._settle(now)
        log.info("slawatch stopped", extra={"pending_batches": self.writer.pending})


def build(
    loaded: LoadedConfig,
    *,
    clock: Clock,
    registry: CollectorRegistry,
    store: IncidentStore | None = None,
    on_signal: Callable[[IncidentSignal], object] | None = None,
    attempt_log: Path | None = None,
) -> Daemon:
    """The one composition function: a daemon for ``loaded``, its clock and its registry.

    ``attempt_log``: append every pooled attempt there as a replay line (OSError if it
    cannot be opened).
    """
    return Daemon(
        loaded,
        clock=clock,
        registry=registry,
        store=store,
        on_signal=on_signal,
        attempt_log=attempt_log,
    )
