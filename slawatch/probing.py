"""The daemon's probe side: the scheduler over the config's probes, and what it reports."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from config import LoadedConfig
from config.timetext import format_time
from probe.attempt import Attempt
from probe.base import CONTROL_SERVICE, ProbeContext
from probe.clock import Clock
from probe.registry import build_probes, probe_context
from probe.scheduler import Launch, MissedLaunches, Scheduler, missed_attempts, slot_free_lead
from slawatch.metrics import Metrics
from slawatch.status import Health

log = logging.getLogger("slawatch.probe")


class Probing:
    """Runs the probes of the current config; a reload swaps them without losing an attempt."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock,
        metrics: Metrics,
        health: Health,
        on_attempt: Callable[[Attempt], object],
    ) -> None:
        self._loaded = loaded
        self._clock = clock
        self._metrics = metrics
        self._health = health
        # Every context probes were built with: probes kept across a reload keep theirs
        # (and its HTTP sessions), so all are closed only once the scheduler has stopped.
        self._contexts: list[ProbeContext] = []
        # In a sharded fleet group: whether this member probes a (service, channel, target).
        self._owned: Callable[[str, str, str], bool] | None = None
        # A switch of shards waiting for its second (``shard``).
        self._switching: asyncio.Future[None] | None = None
        # Missed launches not yet logged: by reason, which targets, from which second.
        self._missed_pending: dict[str, int] = {}
        self._missed_targets: set[tuple[str, str]] = set()
        self._missed_first: int | None = None
        self._missed_logged = -math.inf
        self._on_attempt = on_attempt
        self.scheduler = Scheduler(
            clock=clock,
            on_attempt=on_attempt,
            prober=loaded.config.prober.id,
            on_launch=self._on_launch,
            on_missed=self._on_missed,
        )

    def start(self) -> int:
        """Schedule the config's probes; how many targets that is."""
        self.reconfigure(self._loaded)
        return len(self.scheduler.targets())

    def reconfigure(self, loaded: LoadedConfig) -> None:
        """Probe what ``loaded`` says from now on (unchanged probes keep their loops)."""
        self._loaded = loaded
        context = probe_context(loaded, self._clock)
        self._contexts.append(context)
        probes = build_probes(loaded.config, context)
        owned = self._owned
        if owned is not None:
            probes = [
                p
                for p in probes
                if p.service == CONTROL_SERVICE or owned(p.service, str(p.channel), p.target)
            ]
        self.scheduler.replace(probes)

    def shard(self, owned: Callable[[str, str, str], bool], at_second: int | None = None) -> None:
        """Probe only the targets ``owned`` says this member probes (control checks always).

        With ``at_second``, from that second on: the switch is made just before it starts,
        where no launch slot falls (see ``launch_phase``), so the targets this member
        gives up make their last launch in the second before it and the ones it takes
        their first in it, as the other members switch at the same second.
        """
        if self._switching is not None:
            self._switching.cancel()
            self._switching = None
        if at_second is not None:
            config = self._loaded.config
            # Control checks launch once a second.
            rates = [t.rate for s in config.services for t in s.api]
            rates += [t.rate for s in config.services for t in s.smtp] + [1.0]
            at = at_second - slot_free_lead(rates)
            if at > self._clock.time():
                self._switching = asyncio.ensure_future(self._shard_at(owned, at))
                return
        self._owned = owned
        self.reconfigure(self._loaded)

    async def _shard_at(self, owned: Callable[[str, str, str], bool], at: float) -> None:
        await self._clock.sleep_until(at)
        self._switching = None
        self._owned = owned
        self.reconfigure(self._loaded)

    async def stop(self) -> None:
        """Stop launching, let attempts in flight finish, then close every probe context."""
        if self._switching is not None:
            self._switching.cancel()
            self._switching = None
        await self.scheduler.stop()
        self.log_missed()
        for context in self._contexts:
            await context.close()
        self._contexts.clear()

    def _on_launch(self, launch: Launch) -> None:
        self._metrics.launch_lag(launch.lag)
        self._health.lag_window = max(self._health.lag_window, launch.lag)

    def _on_missed(self, missed: MissedLaunches) -> None:
        self._metrics.missed_launch(
            missed.service, str(missed.channel), missed.target, missed.count
        )
        # Never a silent gap: each missed launch is judged (dropped: no_data) and kept as
        # evidence of its second, with the reason.
        for attempt in missed_attempts(missed, self._loaded.config.prober.id):
            self._on_attempt(attempt)
        # One log line a second at most: a line per target would add to the very stall
        # that made the launches miss (thousands of lines when every lane is late).
        pending = self._missed_pending
        pending[missed.reason] = pending.get(missed.reason, 0) + missed.count
        self._missed_targets.add((missed.service, missed.target))
        if self._missed_first is None:
            self._missed_first = missed.first_second
        now = self._clock.time()
        if now - self._missed_logged >= 1.0:
            self._missed_logged = now
            self.log_missed()

    def log_missed(self) -> None:
        """Log the launches missed since the last such line, if any."""
        if not self._missed_pending or self._missed_first is None:
            return
        targets = sorted(self._missed_targets)
        log.warning(
            "launches missed",
            extra={
                "counts": dict(self._missed_pending),
                "targets": len(targets),
                "example": "/".join(targets[0]),
                "first_second": format_time(self._missed_first),
            },
        )
        self._missed_pending.clear()
        self._missed_targets.clear()
        self._missed_first = None
