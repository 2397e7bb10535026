"""The daemon: probes → classifier → incidents → store, metrics and web; reload, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry

from classifier.engine import Classifier, default_horizon
from classifier.signals import IncidentSignal, Opened, Reopened, Restored, Upgraded
from classifier.verdict import COMBINED, SecondVerdict, Verdict
from config import ConfigError, LoadedConfig, load_config
from incidents.lifecycle import ParsedTerms, incident_clocks, parse_terms
from incidents.model import EventRecord, Incident
from incidents.notify import NotifyRules
from incidents.recorder import Recorder
from incidents.sqlite_store import SqliteStore, store_path
from incidents.store import Batch, IncidentStore, StoreError
from probe.attempt import Attempt, format_time
from probe.base import ProbeContext
from probe.clock import Clock
from probe.redact import config_secrets
from probe.registry import build_probes, probe_context
from probe.scheduler import Launch, MissedLaunches, Scheduler
from probe.smtp import MISCONFIGURED_MARK
from slawatch import __version__
from slawatch.metrics import Metrics
from slawatch.notifier import Notifier, markdown_evidence

log = logging.getLogger("slawatch.daemon")
T = TypeVar("T")

# Where in each second the classifier advances: late enough that launches at the
# boundary are not competing with it, early enough to publish verdicts promptly.
TICK_OFFSET = 0.05
# Store problems are logged at most this often (a full disk would otherwise log every second).
STORE_ERROR_LOG_INTERVAL = 60.0
# Batches kept in memory while the store refuses writes; past this, the oldest samples go.
MAX_PENDING_BATCHES = 3600
# Retention runs at start and then this often: rows expire by the day, not the second.
PRUNE_INTERVAL = 3600.0
# /healthz fails when launches have lagged more than this (the loop is starved).
HEALTHY_LAG_S = 1.0


@dataclass(slots=True)
class ChannelStatus:
    """What the API and status page show of one channel: its last final second."""

    verdict: str | None = None
    second: int | None = None
    streak: int = 0


@dataclass(slots=True)
class Health:
    """Liveness and readiness facts, updated by the loops that know them."""

    config_loaded: bool = False
    store_open: bool = False
    store_writable: bool = True
    last_tick: float = 0.0
    # The worst launch lag seen since the last tick (reset each tick).
    lag_window: float = 0.0
    last_lag: float = 0.0
    store_error: str = ""
    last_store_log: float = -math.inf
    pending_batches: int = 0
    stopping: bool = False


@dataclass(slots=True)
class OpenIncident:
    """An open incident with its events, kept in memory for clocks, metrics and the API."""

    incident: Incident
    events: list[EventRecord] = field(default_factory=list)
    breaches: dict[str, int] = field(default_factory=dict)
    # Parsed once: the terms are frozen when the incident opens, and clocks run every second.
    parsed: ParsedTerms | None = None


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
    ) -> None:
        self.loaded = loaded
        self._secrets = all_secrets(loaded)
        self.clock = clock
        self.registry = registry
        self.metrics = Metrics(registry, __version__)
        self.metrics.prepare(loaded.config)
        # What to notify is decided with the events, in the store's transaction; the
        # notifier delivers from the outbox, each channel on its own, off the tick path.
        self.notify = NotifyRules(
            loaded.config.notify, base_url=self.public_url(), prober=loaded.config.prober.id
        )
        self.notifier = Notifier(
            loaded.config.notify,
            clock=clock,
            metrics=self.metrics,
            secrets=self.secrets(),
            evidence=markdown_evidence(lambda: self.loaded, clock, __version__),
        )
        self.classifier = Classifier.from_config(loaded.config, loaded.catalog)
        self.recorder = Recorder.from_config(loaded)
        self.health = Health(config_loaded=True)
        self.status: dict[str, dict[str, ChannelStatus]] = {}
        self.open: dict[str, OpenIncident] = {}
        self.store: IncidentStore | None = store
        self._own_store = store is None
        self._on_signal = on_signal
        # One writer thread: batches commit in order, and never on the event loop.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slawatch-store")
        self._pending: list[Batch] = []
        self._context: ProbeContext = probe_context(loaded, clock)
        self.scheduler = Scheduler(
            clock=clock,
            on_attempt=self._on_attempt,
            prober=loaded.config.prober.id,
            on_launch=self._on_launch,
            on_missed=self._on_missed,
        )
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._last_prune = -math.inf
        self._init_status()

    # -- wiring ------------------------------------------------------------------

    def _init_status(self) -> None:
        for service in self.loaded.config.services:
            channels = self.status.setdefault(service.name, {})
            for name, targets in (("api", service.api), ("smtp", service.smtp)):
                if targets:
                    channels.setdefault(name, ChannelStatus())
            channels.setdefault(COMBINED, ChannelStatus())

    def _on_attempt(self, attempt: Attempt) -> None:
        misconfigured = MISCONFIGURED_MARK in attempt.detail
        self.metrics.attempt(attempt, misconfigured=misconfigured)
        self.notify.prober_health(
            f"misconfigured:{attempt.service}/{attempt.target}",
            healthy=not misconfigured,
            now=attempt.started_at,
            detail=attempt.detail,
            service=attempt.service,
            target=attempt.target,
        )
        try:
            self.classifier.add(attempt)
        except KeyError:
            # A service removed by a reload while its attempt was in flight.
            return
        self.recorder.attempt(attempt)

    def _on_launch(self, launch: Launch) -> None:
        self.metrics.launch_lag(launch.lag)
        self.health.lag_window = max(self.health.lag_window, launch.lag)

    def _on_missed(self, missed: MissedLaunches) -> None:
        for _ in range(missed.count):
            self.metrics.missed_launch(missed.service, missed.target)
        log.warning(
            "launches missed",
            extra={
                "service": missed.service,
                "target": missed.target,
                "reason": missed.reason,
                "count": missed.count,
                "first_second": format_time(missed.first_second),
            },
        )

    async def _db(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, func, *args)

    async def read(self, func: Callable[..., T], *args: Any) -> T:
        """Run a store read off the event loop (reads do not queue behind the writer)."""
        return await asyncio.to_thread(func, *args)

    def secrets(self) -> frozenset[str]:
        """Every secret value of the running config, for redaction (computed per config)."""
        return self._secrets

    def public_url(self) -> str:
        """The base URL for links: ``server.public_url``, else the listen address."""
        server = self.loaded.config.server
        if server.public_url:
            return server.public_url.rstrip("/")
        host, _, port = server.listen.rpartition(":")
        if host in ("0.0.0.0", "::", "[::]"):  # noqa: S104  (a wildcard bind, not a bind here)
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    # -- life --------------------------------------------------------------------

    async def open_store(self) -> None:
        """Open the store and resume the classifier, the recorder and open incidents from it."""
        if self.store is None:
            path = store_path(self.loaded.source, self.loaded.config.storage.path)
            self.store = await self._db(SqliteStore, path)
        try:
            await self._resume(self.store)
        except (sqlite3.DatabaseError, ValueError) as exc:
            # Damage past the header shows only when the pages are read: one clear line.
            where = getattr(self.store, "path", "the store")
            raise StoreError(f"{where}: not a usable slawatch store: {exc}") from None
        self.health.store_open = True

    async def _resume(self, store: IncidentStore) -> None:
        state = await self._db(store.classifier_state)
        if state:
            self.classifier.restore(state)
        await self._db(self.recorder.resume, store)
        for incident in await self._db(lambda: store.incidents(state="open")):
            events = await self._db(store.events, incident.id)
            self.open[incident.id] = OpenIncident(incident, events)
            log.info(
                "resumed open incident",
                extra={"incident": incident.id, "service": incident.service},
            )

    async def run(self, *, web_app: web.Application | None = None) -> None:
        """Run until :meth:`stop`: probing, judging, recording, serving."""
        await self.open_store()
        if web_app is not None:
            await self._start_web(web_app)
        self.scheduler.replace(build_probes(self.loaded.config, self._context))
        log.info(
            "slawatch started",
            extra={
                "version": __version__,
                "services": len(self.loaded.config.services),
                "targets": len(self.scheduler.targets()),
                "config_digest": self.loaded.digest[:12],
            },
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._tick_loop())
                if self.store is not None:
                    group.create_task(self.notifier.run(self.store, stop=self._stop))
        finally:
            await self._shutdown()

    def stop(self) -> None:
        """Ask the daemon to stop: launches stop, in-flight attempts finish, the store flushes."""
        self.health.stopping = True
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the daemon to reload its config file at the next tick."""
        self._reload.set()

    def install_signal_handlers(self) -> None:
        """SIGHUP reloads; SIGTERM and SIGINT stop gracefully."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)

    async def _start_web(self, app: web.Application) -> None:
        host, _, port = self.loaded.config.server.listen.rpartition(":")
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]"), int(port), reuse_address=True)
        await site.start()
        log.info("listening", extra={"address": self.loaded.config.server.listen})

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
        """One second's work: finalize seconds, record, commit, refresh gauges."""
        self.health.last_tick = now
        self.health.last_lag = self.health.lag_window
        self.health.lag_window = 0.0
        self.notify.prober_health(
            "launch_lag",
            healthy=self.health.last_lag <= HEALTHY_LAG_S,
            now=now,
            detail=f"launch lag {self.health.last_lag:.3f}s",
        )
        found = self.classifier.advance(now)
        self._absorb(found.verdicts, found.signals, now)
        await self._commit(self.recorder.take(self.classifier.snapshot()), now)
        self._refresh_incident_gauges(now)
        if now - self._last_prune >= PRUNE_INTERVAL and self.health.store_writable:
            self._last_prune = now
            await self._prune(now)

    async def _prune(self, now: float) -> None:
        """Drop what retention no longer keeps (verdict runs, incidents, evidence samples)."""
        store = self.store
        if store is None:
            return
        storage = self.loaded.config.storage
        try:
            pruned = await self._db(
                lambda: store.prune(
                    now, keep_runs=storage.retention_runs, keep_samples=storage.retention_attempts
                )
            )
        except Exception as exc:  # noqa: BLE001  (retention must never stop the daemon)
            self._store_failed(exc, now)
            return
        if pruned.runs or pruned.samples or pruned.incidents:
            log.info(
                "retention applied",
                extra={
                    "runs": pruned.runs,
                    "samples": pruned.samples,
                    "incidents": pruned.incidents,
                },
            )

    def _absorb(
        self, verdicts: list[SecondVerdict], signals: list[IncidentSignal], now: float
    ) -> None:
        for verdict in verdicts:
            status = self.status.setdefault(verdict.service, {}).setdefault(
                verdict.channel, ChannelStatus()
            )
            unavailable = verdict.verdict is Verdict.UNAVAILABLE
            status.streak = status.streak + 1 if unavailable else 0
            status.verdict = str(verdict.verdict)
            status.second = verdict.second
            self.metrics.verdict(verdict, status.streak)
        self.recorder.record(verdicts, signals, now=now)
        for sig in signals:
            self._log_signal(sig)
            if isinstance(sig, Opened | Reopened):
                self.metrics.incident_opened(sig.service, sig.severity)
            if self._on_signal is not None:
                self._on_signal(sig)

    @staticmethod
    def _log_signal(sig: IncidentSignal) -> None:
        if isinstance(sig, Opened):
            message, extra = (
                "incident opened",
                {
                    "severity": sig.severity,
                    "provider_severity": sig.provider_severity,
                    "started_at": format_time(sig.started_at),
                    "detected_at": format_time(sig.detected_at),
                },
            )
        elif isinstance(sig, Upgraded):
            message, extra = (
                "incident upgraded",
                {
                    "severity": sig.to_severity,
                    "provider_severity": sig.provider_severity,
                    "detected_at": format_time(sig.detected_at),
                },
            )
        elif isinstance(sig, Restored):
            message, extra = (
                "incident restored",
                {
                    "restored_at": format_time(sig.restored_at),
                    "detected_at": format_time(sig.detected_at),
                },
            )
        else:
            message, extra = (
                "incident reopened",
                {
                    "severity": sig.severity,
                    "detected_at": format_time(sig.detected_at),
                },
            )
        log.warning(
            message,
            extra={"incident": sig.incident, "service": sig.service, **extra},
        )

    async def _commit(self, batch: Batch, now: float) -> None:
        store = self.store
        if store is None:
            return
        self.notify.fill(batch)
        if batch:
            self._pending.append(batch)
        if len(self._pending) > MAX_PENDING_BATCHES:
            # Keep every verdict run and event; evidence samples are what we can lose.
            self._pending[0].samples.clear()
            merged = self._pending.pop(0)
            nxt = self._pending[0]
            nxt.events[:0] = merged.events
            nxt.notifications[:0] = merged.notifications
            # Runs are upserts by (service, channel, first): keep only the newer version,
            # or a long outage would grow the head batch by every second's rewrite.
            newer = {(run.service, run.channel, run.first) for run in nxt.runs}
            nxt.runs[:0] = [
                run for run in merged.runs if (run.service, run.channel, run.first) not in newer
            ]
            nxt.high_water = {**merged.high_water, **nxt.high_water}
        while self._pending:
            try:
                touched = await self._db(store.commit, self._pending[0])
            except Exception as exc:  # noqa: BLE001  (any refusal: keep the batch, retry)
                self._store_failed(exc, now)
                break
            self._pending.pop(0)
            self._store_ok()
            await self._track(touched)
        self.health.pending_batches = len(self._pending)
        self.notifier.wake()

    def _store_failed(self, exc: BaseException, now: float) -> None:
        self.health.store_writable = False
        self.health.store_error = str(exc)
        if now - self.health.last_store_log >= STORE_ERROR_LOG_INTERVAL:
            self.health.last_store_log = now
            log.error(
                "store refuses writes; keeping batches in memory",
                extra={"error": str(exc), "pending_batches": len(self._pending)},
            )

    def _store_ok(self) -> None:
        if not self.health.store_writable:
            log.info("store writable again; caught up")
        self.health.store_writable = True
        self.health.store_error = ""

    async def _track(self, touched: list[Incident]) -> None:
        store = self.store
        if store is None:
            return
        for incident in touched:
            if incident.state == "open":
                events = await self._db(store.events, incident.id)
                kept = self.open.get(incident.id)
                if kept is None:
                    self.open[incident.id] = OpenIncident(incident, events)
                else:
                    kept.incident, kept.events = incident, events
            else:
                self.open.pop(incident.id, None)
                self.notify.forget([incident.id])

    def _refresh_incident_gauges(self, now: float) -> None:
        counts: dict[tuple[str, int], int] = {}
        deadlines: dict[tuple[str, str], float | None] = {}
        for kept in self.open.values():
            incident = kept.incident
            key = (incident.service, incident.severity)
            counts[key] = counts.get(key, 0) + 1
            try:
                if kept.parsed is None:
                    kept.parsed = parse_terms(incident.terms)
                clocks = incident_clocks(incident, kept.events, now, kept.parsed)
                self.notify.clocks(incident, clocks, now)
            except ValueError as exc:
                # A policy that no longer resolves must not stop the loop; say which incident.
                log.error(  # noqa: TRY400  (the message is the whole story, no traceback)
                    "cannot compute SLA clocks", extra={"incident": incident.id, "error": str(exc)}
                )
                continue
            for name, state in clocks.items():
                seen = kept.breaches.get(name, 0)
                if state.breaches > seen:
                    for _ in range(state.breaches - seen):
                        self.metrics.breach(incident.service, incident.severity, name)
                    log.warning(
                        "SLA clock breached",
                        extra={"incident": incident.id, "service": incident.service, "clock": name},
                    )
                    kept.breaches[name] = state.breaches
                if state.state == "running" and state.deadline is not None:
                    current = deadlines.get((incident.service, name))
                    if current is None or state.deadline < current:
                        deadlines[(incident.service, name)] = state.deadline
        services = [s.name for s in self.loaded.config.services]
        self.metrics.set_open(counts, services)
        self.metrics.set_deadlines(deadlines, services)

    # -- user events ---------------------------------------------------------------

    async def record_event(self, event: EventRecord) -> Incident:
        """Write one user event now (not batched: the caller waits for its answer)."""
        store = self.store
        if store is None:
            raise StoreError("the store is not open")
        touched = await self._db(store.commit, self.notify.fill(Batch(events=[event])))
        self.notifier.wake()
        await self._track(touched)
        return touched[0]

    # -- reload ------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config file; apply it if valid, else log the located error and keep going."""
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
        snapshot = self.classifier.snapshot()
        old_buckets = self.classifier.buckets
        classifier = Classifier.from_config(loaded.config, loaded.catalog)
        classifier.restore(snapshot)
        # Attempts already counted for seconds not yet final stay counted.
        old_buckets.horizon = default_horizon(loaded.config)
        classifier.buckets = old_buckets
        self.classifier = classifier
        recorder = Recorder.from_config(loaded)
        recorder.adopt(self.recorder)
        self.recorder = recorder
        self.loaded = loaded
        self._secrets = all_secrets(loaded)
        self.metrics.prepare(loaded.config)
        self.notify.configure(loaded.config.notify, base_url=self.public_url())
        self.notifier.configure(loaded.config.notify)
        self._init_status()
        self._context = probe_context(loaded, self.clock)
        self.scheduler.replace(build_probes(loaded.config, self._context))

    # -- shutdown ------------------------------------------------------------------

    async def _shutdown(self) -> None:
        stop_at = self.clock.time()
        await self.scheduler.stop()
        # Every attempt launched before the stop is in: seconds before it are complete.
        found = self.classifier.advance_through(math.floor(stop_at) - 1)
        self._absorb(found.verdicts, found.signals, self.clock.time())
        await self._commit(self.recorder.take(self.classifier.snapshot()), self.clock.time())
        if self._runner is not None:
            await self._runner.cleanup()
        await self._context.close()
        if self._own_store and self.store is not None:
            with contextlib.suppress(Exception):
                await self._db(self.store.close)
        self._writer.shutdown(wait=True)
        log.info("slawatch stopped", extra={"pending_batches": len(self._pending)})


def all_secrets(loaded: LoadedConfig) -> frozenset[str]:
    """Secrets from the environment plus every secret field of the config."""
    found = set(loaded.secrets) | config_secrets(loaded.config)
    if loaded.config.server.token is not None:
        found.add(loaded.config.server.token.get_secret_value())
    for channel in loaded.config.notify:
        for name in ("secret", "routing_key", "password"):
            value = getattr(channel, name, None)
            if value is not None:
                found.add(value.get_secret_value())
    return frozenset(s for s in found if s)


def build(
    loaded: LoadedConfig,
    *,
    clock: Clock,
    registry: CollectorRegistry,
    store: IncidentStore | None = None,
    on_signal: Callable[[IncidentSignal], object] | None = None,
) -> Daemon:
    """The one composition function: a daemon for ``loaded``, its clock and its registry."""
    return Daemon(loaded, clock=clock, registry=registry, store=store, on_signal=on_signal)
