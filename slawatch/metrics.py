"""Prometheus metrics of DESIGN.md §9, on an injected registry, fed from the domain's events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric

from classifier.verdict import COMBINED, VERDICTS, SecondVerdict, Verdict
from config import Config
from probe.attempt import Attempt
from slawatch.attemptmetrics import AttemptTable

# Attempt durations: from a fast loopback call to the longest sensible timeout.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Launch lag: a healthy loop stays in the first buckets; a stalled one reaches seconds.
# 0.02: the launch-lag p99 goal (docs/performance.md) is read off one bucket, not interpolated.
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CLOCKS = ("first_response", "update", "restore")
SEVERITIES = ("1", "2", "3")
# Outcomes of notification tries: delivered, a failed try (retried), dead-lettered.
NOTIFY_RESULTS = ("delivered", "failed", "dead")


class Metrics:
    """Every slawatch metric, registered on one registry; label sets pre-initialised to zero."""

    def __init__(
        self, registry: CollectorRegistry, version: str, *, per_target: bool = True
    ) -> None:
        self.registry = registry
        # The per-target series (most of the page at scale) live in one table with
        # pre-built sample text; everything else in a registry of our own, ``core``, where
        # the daemon's other parts (fleet, ingestion, status pages) register their families
        # too, so /metrics serves them. The injected registry sees both through one collector.
        self.table = AttemptTable(DURATION_BUCKETS, per_target=per_target)
        self.core = core = CollectorRegistry()
        registry.register(_Everything(core, self.table))
        self.seconds = Counter(
            "slawatch_seconds",
            "Final per-second verdicts by the contract's definition (api, smtp or combined).",
            ["service", "channel", "verdict"],
            registry=core,
        )
        self.channel_available = Gauge(
            "slawatch_channel_available",
            "1 when the channel's last final second was neither unavailable nor partial.",
            ["service", "channel"],
            registry=core,
        )
        self.streak = Gauge(
            "slawatch_unavailable_streak_seconds",
            "Consecutive unavailable seconds up to the last final second.",
            ["service", "channel"],
            registry=core,
        )
        self.incidents_open = Gauge(
            "slawatch_incidents_open",
            "Open incidents by normalized severity.",
            ["service", "severity"],
            registry=core,
        )
        self.incidents_opened = Counter(
            "slawatch_incidents_opened",
            "Incidents opened (or reopened) by normalized severity.",
            ["service", "severity"],
            registry=core,
        )
        self.deadline = Gauge(
            "slawatch_sla_deadline_timestamp_seconds",
            "Earliest pending SLA deadline of the service's open incidents (0: none).",
            ["service", "clock"],
            registry=core,
        )
        self.breaches = Counter(
            "slawatch_sla_breaches",
            "SLA clocks breached.",
            ["service", "severity", "clock"],
            registry=core,
        )
        self.lag = Histogram(
            "slawatch_scheduler_lag_seconds",
            "Delay between a launch's scheduled and actual time.",
            buckets=LAG_BUCKETS,
            registry=core,
        )
        self.notifications = Counter(
            "slawatch_notifications",
            "Notification tries by channel and result (delivered, failed, dead).",
            ["channel", "result"],
            registry=core,
        )
        self.notification_queue = Gauge(
            "slawatch_notification_queue_depth",
            "Notifications waiting in the outbox for delivery.",
            ["channel"],
            registry=core,
        )
        self.build_info = Gauge(
            "slawatch_build_info", "slawatch build information.", ["version"], registry=core
        )
        self.build_info.labels(version=version).set(1)

    def prepare(self, config: Config) -> None:
        """Create every known label set at zero, and drop those of removed targets."""
        targets: set[tuple[str, str, str]] = set()
        for service in config.services:
            channels = [c for c, ts in (("api", service.api), ("smtp", service.smtp)) if ts]
            for channel in [*channels, COMBINED]:
                for verdict in VERDICTS:
                    self.seconds.labels(service.name, channel, verdict.value)
                self.channel_available.labels(service.name, channel)
                self.streak.labels(service.name, channel)
            for severity in SEVERITIES:
                self.incidents_open.labels(service.name, severity)
                self.incidents_opened.labels(service.name, severity)
                for clock in CLOCKS:
                    self.breaches.labels(service.name, severity, clock)
            for clock in CLOCKS:
                self.deadline.labels(service.name, clock)
            for channel, names in (
                ("api", [t.name for t in service.api]),
                ("smtp", [t.name for t in service.smtp]),
            ):
                for name in names:
                    targets.add((service.name, channel, name))
        for control in config.control:
            targets.add(("_control", "control", control.name))
        self._prepare_notify(config)
        self.table.prepare(targets)

    def _prepare_notify(self, config: Config) -> None:
        for channel in config.notify:
            self.notification_queue.labels(channel.name)
            for result in NOTIFY_RESULTS:
                self.notifications.labels(channel.name, result)

    def attempt(self, attempt: Attempt) -> None:
        """Count one finished attempt."""
        self.table.attempt(
            (attempt.service, attempt.channel.value, attempt.target),
            attempt.outcome,
            attempt.duration_s,
            misconfigured=attempt.misconfigured,
        )

    def verdict(self, verdict: SecondVerdict, streak: int) -> None:
        """Count final seconds; set the channel's availability and unavailable streak."""
        key = (verdict.service, verdict.channel)
        self.seconds.labels(*key, verdict.verdict.value).inc(verdict.seconds)
        bad = verdict.verdict in (Verdict.UNAVAILABLE, Verdict.PARTIAL)
        if verdict.verdict in (Verdict.AVAILABLE, Verdict.UNAVAILABLE, Verdict.PARTIAL):
            self.channel_available.labels(*key).set(0 if bad else 1)
        self.streak.labels(*key).set(streak)

    def launch_lag(self, seconds: float) -> None:
        """Observe one launch's lag."""
        self.lag.observe(max(0.0, seconds))

    def missed_launch(self, service: str, channel: str, target: str, count: int = 1) -> None:
        """Count launches the scheduler could not make in their second."""
        self.table.missed((service, channel, target), count)

    async def exposition_parts(self) -> AsyncIterator[bytes]:
        """The ``/metrics`` page a part at a time, without holding the event loop for long.

        The small families come from ``prometheus_client`` in a worker thread; the
        per-target table is rendered on the loop a slice at a time, yielding between slices
        so launches due meanwhile are not held up. The web handler writes each part as it
        comes: at 2,000 targets the page is 7 MB, never held whole.
        """
        yield await asyncio.to_thread(generate_latest, self.core)
        for part in self.table.render_parts():
            yield part.encode()
            await asyncio.sleep(0)

    async def exposition(self) -> bytes:
        """The whole ``/metrics`` page (what :meth:`exposition_parts` hands out, joined)."""
        return b"".join([part async for part in self.exposition_parts()])

    def incident_opened(self, service: str, severity: int) -> None:
        """Count an opened or reopened incident."""
        self.incidents_opened.labels(service, str(severity)).inc()

    def breach(self, service: str, severity: int, clock: str) -> None:
        """Count one breached SLA clock."""
        self.breaches.labels(service, str(severity), clock).inc()

    def set_open(self, counts: Mapping[tuple[str, int], int], services: Iterable[str]) -> None:
        """Set the open-incident gauges from (service, severity) → count."""
        for service in services:
            for severity in SEVERITIES:
                self.incidents_open.labels(service, severity).set(
                    counts.get((service, int(severity)), 0)
                )

    def set_deadlines(
        self, deadlines: Mapping[tuple[str, str], float | None], services: Iterable[str]
    ) -> None:
        """Set the earliest pending deadline per (service, clock); 0 when none."""
        for service in services:
            for clock in CLOCKS:
                self.deadline.labels(service, clock).set(deadlines.get((service, clock)) or 0)

    def notification(self, channel: str, result: str) -> None:
        """Count one notification try of a channel (``delivered``, ``failed`` or ``dead``)."""
        self.notifications.labels(channel, result).inc()

    def set_queue_depth(self, depths: Mapping[str, int], channels: Iterable[str]) -> None:
        """Set the pending-notification gauge of every channel (0 when none wait)."""
        for channel in {*channels, *depths}:
            self.notification_queue.labels(channel).set(depths.get(channel, 0))


# Why an ingested request, line or span was refused (``slawatch_ingest_refused_total``).
REFUSAL_REASONS = (
    "unauthorized",
    "content_type",
    "too_large",
    "malformed",
    "bad_line",
    "unknown_service",
    "no_rule",
    "too_old",
    "too_new",
)


class IngestMetrics:
    """The metrics of ingested traffic (``POST /v1/traces``, ``POST /api/v1/attempts``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ingested = Counter(
            "slawatch_ingested_attempts",
            "Ingested attempts (the customer's own calls, or pushed probes) by outcome.",
            ["service", "channel", "source", "outcome"],
            registry=registry,
        )
        self.refused = Counter(
            "slawatch_ingest_refused",
            "Refused ingestion: whole requests (auth, type, size, decoding) and single lines or "
            "spans (no rule, unknown service, outside the time skew), by reason.",
            ["reason"],
            registry=registry,
        )
        self.late = Counter(
            "slawatch_ingest_late_attempts",
            "Ingested attempts that arrived after their second was judged (counted, never judged).",
            ["service", "source"],
            registry=registry,
        )
        for reason in REFUSAL_REASONS:
            self.refused.labels(reason)

    def count(
        self,
        taken: Mapping[tuple[str, str, str, str], int],
        late: Mapping[tuple[str, str], int],
    ) -> None:
        """Count accepted attempts (by service, channel, source, outcome) and late ones."""
        for labels, n in taken.items():
            self.ingested.labels(*labels).inc(n)
        for pair, n in late.items():
            self.late.labels(*pair).inc(n)

    def refuse(self, reason: str, count: int = 1) -> None:
        """Count refusals of one reason (one of REFUSAL_REASONS)."""
        if count:
            self.refused.labels(reason).inc(count)


class _Everything:
    """A collector of both halves, so the injected registry reads every sample."""

    def __init__(self, core: CollectorRegistry, table: AttemptTable) -> None:
        self.core = core
        self._table = table

    def collect(self) -> Iterator[Metric]:
        """The core registry's families, then the table's."""
        yield from self.core.collect()
        yield from self._table.collect()
