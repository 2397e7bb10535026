"""One instance of a fleet: a prober that publishes its seconds and a candidate finalizer.

With ``storage.url`` every instance runs the same loop, once a second on the store thread
(:meth:`FleetMember.step`):

1. **Publish** the prober's own seconds that became final locally (``classifier.pooling.
   Slicer``), with its heartbeat, in one transaction. Seconds the database refused wait in
   memory and in a local SQLite spool beside ``storage.path`` (``slawatch.spool``),
   bounded, the oldest dropped and counted, and go first next time, after a restart too.
2. Every 10 s, **measure the clock offset** to the database and record it.
3. **Take or renew the lease.** As the holder, pool every second that is final (every live
   prober published it, or ``horizon + grace`` passed, in database time), run the
   classifier over the pooled seconds, and write runs, events, the sample failures of the
   seconds not judged available (pooled from the slices' samples by the recorder, as a
   single instance keeps its own), the classifier checkpoint, the pooled seconds and any
   late slices in the lease's fenced transaction. A new holder
   (or one whose write failed) first reloads the checkpoint from the store, so it resumes
   exactly where the last committed write stopped: nothing lost, nothing doubled.

Notifications are derived from the event log by every instance (the keys dedupe them in
the outbox) and delivered once: each worker claims its rows (:class:`ClaimingOutbox`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter

from classifier.engine import Classifier, Finalized, UnknownServiceError, default_horizon
from classifier.pooling import Pooled, ProberSecond, Slicer, final_through, fleet_lanes, pool
from classifier.pooling import would_change as late_would_change
from config import LoadedConfig
from config.fleet import judging_digest
from incidents.outbox import Notification
from incidents.pg_fleet import Fenced, FleetError, LateSlice, PgFleet, ProberInfo
from incidents.pg_store import PgStore
from incidents.recorder import Recorder
from incidents.store import IncidentStore, StoreError
from probe.attempt import Attempt
from probe.sharding import Assignment, current, target_key
from slawatch.spool import Spool

log = logging.getLogger("slawatch.fleet")

# The clock offset to the database is measured this often.
OFFSET_INTERVAL_S = 10.0
# A finalizer catching up pools at most this many seconds per tick (the lease must be renewed).
MAX_SECONDS_PER_TICK = 600
# Late slices are looked for this far back from the last pooled second.
LATE_WINDOW_S = 86_400
# Seconds kept in memory while the database refuses them (a day of one prober).
MAX_UNPUBLISHED = 86_400
# A new assignment of a group's targets takes effect this many seconds after it is written,
# so every member reads it before the switch.
SWITCH_AFTER_S = 2
# A claimed notification is left to its deliverer for this long.
CLAIM_HOLD_S = 30.0
ROLES = ("leader", "follower")


class FleetMetrics:
    """The fleet's metrics (FLEET.md §10), on the daemon's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.role = Gauge(
            "slawatch_cluster_role", "1 for this instance's role in the fleet.", ["role"],
            registry=registry,
        )  # fmt: skip
        self.epoch = Gauge(
            "slawatch_lease_epoch", "The finalizer lease's epoch as last seen.", registry=registry
        )
        self.lag = Gauge(
            "slawatch_finalizer_lag_seconds",
            "Database time minus the end of the last pooled second (on the finalizer).",
            registry=registry,
        )
        self.live = Gauge("slawatch_probers_live", "Live probers of the fleet.", registry=registry)
        self.offset = Gauge(
            "slawatch_prober_clock_offset_seconds",
            "Each prober's clock minus the database's.",
            ["prober"],
            registry=registry,
        )
        self.spool = Gauge(
            "slawatch_spool_rows",
            "This prober's seconds waiting to be published.",
            registry=registry,
        )
        self.dropped = PromCounter(
            "slawatch_spool_dropped_rows",
            "Seconds this prober dropped unpublished (the oldest, past the cap).",
            registry=registry,
        )
        self.late = PromCounter(
            "slawatch_late_batches",
            "Slices that arrived after their second was pooled, by prober.",
            ["prober"],
            registry=registry,
        )
        self.reporting = Gauge(
            "slawatch_probers_reporting",
            "Probers whose attempts were judged in the last pooled second.",
            ["service", "channel"],
            registry=registry,
        )
        for role in ROLES:
            self.role.labels(role).set(0)


class FleetMember:
    """An instance's part in the fleet; :meth:`step` runs on the store thread."""

    def __init__(
        self,
        loaded: LoadedConfig,
        store: PgStore,
        *,
        version: str,
        local_time: Callable[[], float],
        registry: CollectorRegistry,
    ) -> None:
        self.loaded = loaded
        self.store = store
        self.version = version
        self.local_time = local_time
        self.metrics = FleetMetrics(registry)
        config = loaded.config
        self.id = config.prober.id
        self.fleet = PgFleet(store, member=self.id)
        self.lanes = fleet_lanes(config)
        self._lane_set = frozenset(self.lanes)
        self.digest = judging_digest(config)
        self.horizon = default_horizon(config)
        self.slicer: Slicer | None = None
        # Seconds cut but not yet accepted by the database, oldest first.
        self.unpublished: list[ProberSecond] = []
        # The same seconds on disk while publishing fails, so a restart loses none.
        self.spool: Spool | None = None
        self.epoch: int | None = None
        # The finalizer's classifier and recorder, loaded from the store's checkpoint when
        # the lease is taken (None while following, or after a failed write).
        self._classifier: Classifier | None = None
        self._recorder: Recorder | None = None
        self._next_offset_at = -math.inf
        self.probers: list[ProberInfo] = []
        self.late_counts: Counter[str] = Counter()
        self.lease_holder: str | None = None
        self.lease_epoch = 0
        # This prober's last measured offset to the database clock (None until measured).
        self.clock_offset: float | None = None
        # The assignment of this member's group in force (None: not sharded yet, probe all),
        # and whether it changed since the daemon last applied it.
        self.assignment: Assignment | None = None
        self.reassigned = False
        # Whether the last step read the lease (the role is known), and as the holder how
        # far the pooled seconds are behind now (None until the first pooled after taking it).
        self.role_known = False
        self.behind: float | None = None
        # Until when this member stays a follower after a step-down (local time).
        self._hold_until = -math.inf

    @classmethod
    def of(
        cls,
        loaded: LoadedConfig,
        store: IncidentStore,
        *,
        version: str,
        local_time: Callable[[], float],
        registry: CollectorRegistry,
    ) -> FleetMember:
        """The member for an opened store; StoreError unless it is the PostgreSQL one."""
        if not isinstance(store, PgStore):
            raise StoreError(f"{store.where}: a fleet needs the PostgreSQL store")
        return cls(loaded, store, version=version, local_time=local_time, registry=registry)

    def outbox(self) -> IncidentStore:
        """The store as this member's notifier uses it: each worker claims its rows."""
        return cast("IncidentStore", ClaimingOutbox(self.store, self.fleet, self.local_time))

    @property
    def leader(self) -> bool:
        """Whether this instance held the lease at its last step."""
        return self.epoch is not None

    def start(self, now: float) -> None:
        """Join the fleet (StoreError if this member judges by other rules) and start slicing."""
        try:
            self.fleet.join(
                group=self.loaded.config.prober.group,
                version=self.version,
                digest=self.digest,
                prober_timeout=self.loaded.config.cluster.prober_timeout,
            )
        except FleetError as exc:
            raise StoreError(f"{self.loaded.source}: {exc}") from None
        self.slicer = Slicer(
            self.id,
            self.horizon,
            math.floor(now),
            samples_per_second=self.loaded.config.storage.attempts_per_second,
        )
        spool_path = Path(f"{self.loaded.path(self.loaded.config.storage.path)}.spool")
        self.spool = Spool(spool_path, prober=self.id, cap=MAX_UNPUBLISHED)
        self.unpublished = self.spool.load(self.lanes)
        if self.unpublished:
            log.info("spooled seconds to publish", extra={"rows": len(self.unpublished)})
        log.info(
            "joined the fleet",
            extra={"prober": self.id, "group": self.loaded.config.prober.group},
        )

    def add(self, attempt: Attempt) -> bool:
        """Count one of this prober's finished attempts, or ingested traffic (on the event loop).

        False if its second was published already (late). UnknownServiceError for a lane
        the fleet does not judge (a packed slice holds only the configuration's lanes).
        """
        if (attempt.service, attempt.channel) not in self._lane_set:
            # Neither targets nor traffic rules on that channel: not a lane of the fleet.
            raise UnknownServiceError(f"{attempt.service}/{attempt.channel.value}")
        return self.slicer is None or self.slicer.add(attempt)

    def cut(self, now: float, *, through: int | None = None) -> list[ProberSecond]:
        """The prober's own seconds final at local time ``now`` (or up to ``through``)."""
        if self.slicer is None:
            return []
        if through is not None:
            return self.slicer.take_through(through)
        return self.slicer.take(now)

    # -- the store thread ------------------------------------------------------------

    def step(self, slices: list[ProberSecond]) -> Finalized:
        """One second of fleet work: publish, measure, lead or follow; what was finalized."""
        self.publish(slices)
        self._measure()
        self._follow_assignment()
        return self.finalize()

    def _follow_assignment(self) -> None:
        """Take the group's assignment in force from the next second on (switch on time)."""
        try:
            history = self.fleet.assignments(self.loaded.config.prober.group)
        except Exception as exc:  # noqa: BLE001  (the last assignment keeps running)
            log.warning("cannot read the assignments", extra={"error": str(exc)})
            return
        found = current(history, math.floor(self.local_time()) + 1)
        if found is not None and found != self.assignment:
            self.assignment = found
            self.reassigned = True
            log.info(
                "targets reassigned",
                extra={"version": found.version, "members": list(found.members),
                       "effective_second": found.effective_second},
            )  # fmt: skip

    def owns(self, service: str, channel: str, target: str) -> bool:
        """Whether this member probes a target under the assignment in force."""
        if self.assignment is None:
            return True
        return self.assignment.owns(self.id, target_key(service, channel, target))

    def publish(self, slices: list[ProberSecond]) -> None:
        """Publish the waiting seconds and ``slices``; on refusal keep them for the next try."""
        self.unpublished.extend(slices)
        if len(self.unpublished) > MAX_UNPUBLISHED:
            drop = len(self.unpublished) - MAX_UNPUBLISHED
            del self.unpublished[:drop]
            self.metrics.dropped.inc(drop)
        try:
            self.fleet.publish(self.unpublished, self.lanes)
        except Exception as exc:  # noqa: BLE001  (any refusal: keep the seconds, retry)
            log.warning(
                "cannot publish to the fleet; spooling the seconds",
                extra={"error": str(exc), "waiting": len(self.unpublished)},
            )
            self._spool()
        else:
            self.unpublished.clear()
            if self.spool is not None:
                self.spool.clear()
        self.metrics.spool.set(len(self.unpublished))

    def _spool(self) -> None:
        spool = self.spool
        if spool is None:
            return
        before = spool.dropped
        try:
            spool.save(self.unpublished, self.lanes)
        except Exception as exc:  # noqa: BLE001  (memory still holds them)
            log.warning("cannot write the spool", extra={"error": str(exc)})
        if spool.dropped > before:
            self.metrics.dropped.inc(spool.dropped - before)

    def _measure(self) -> None:
        now = self.local_time()
        if now < self._next_offset_at:
            return
        self._next_offset_at = now + OFFSET_INTERVAL_S
        try:
            offset = self.fleet.measure_offset(self.local_time)
            self.fleet.set_clock_offset(offset)
            self.clock_offset = offset
        except Exception as exc:  # noqa: BLE001  (measured again at the next interval)
            log.warning("cannot measure the clock offset", extra={"error": str(exc)})

    @property
    def clock_healthy(self) -> bool:
        """Whether this prober's clock is within ``max_clock_offset`` of the database's."""
        offset = self.clock_offset
        return offset is None or abs(offset) <= self.loaded.config.cluster.max_clock_offset

    def finalize(self) -> Finalized:
        """Take or renew the lease; as the holder, pool and commit what became final."""
        found = Finalized()
        cluster = self.loaded.config.cluster
        try:
            held_off = self.local_time() < self._hold_until
            epoch = None if held_off else self.fleet.acquire(cluster.lease_ttl)
            self.probers = self.fleet.probers(cluster.prober_timeout)
            lease = self.fleet.lease()
        except Exception as exc:  # noqa: BLE001  (the database is away: follow until back)
            self.role_known = False
            self._step_down(f"cannot reach the lease: {exc}")
            return found
        self.role_known = True
        self.lease_holder, self.lease_epoch = lease.holder, lease.epoch
        self._observe()
        if epoch is None:
            self._step_down(f"the lease is held by {lease.holder!r} at epoch {lease.epoch}")
            return found
        if epoch != self.epoch or self._classifier is None:
            self._take_over(epoch)
        try:
            self._pool_and_commit(epoch, found)
        except Fenced as exc:
            self._step_down(str(exc))
            return Finalized()
        except Exception as exc:  # noqa: BLE001  (nothing committed: reload and retry)
            log.warning("finalizer write failed; reloading", extra={"error": str(exc)})
            self._classifier = None
            return Finalized()
        return found

    def _observe(self) -> None:
        metrics = self.metrics
        metrics.epoch.set(self.lease_epoch)
        metrics.live.set(sum(p.live for p in self.probers))
        for prober in self.probers:
            if prober.clock_offset_s is not None:
                metrics.offset.labels(prober.id).set(prober.clock_offset_s)

    @property
    def ready(self) -> bool:
        """Whether this member's role is settled: the lease read, and as its holder caught up.

        Caught up: the pooled seconds at most as far behind as a second can wait to be
        final (``horizon`` + ``grace``) and two more, the ticks between.
        """
        if not self.role_known:
            return False
        if self.epoch is None:
            return True
        limit = self.horizon + self.loaded.config.cluster.grace + 2
        return self.behind is not None and self.behind <= limit

    def hand_over(self) -> None:
        """Give the lease up now and stay a follower for two lease lifetimes (SIGUSR1).

        A planned handover (a rolling upgrade): another member takes the lease at its next
        step, about a second, instead of after ``lease_ttl``.
        """
        self._hold_until = self.local_time() + 2 * self.loaded.config.cluster.lease_ttl
        self._give_up_lease("handing the lease over")

    def _give_up_lease(self, why: str) -> None:
        """Release the lease if this member holds it (another takes it at once), and step down."""
        if self.epoch is not None:
            try:
                self.fleet.release(self.epoch)
            except Exception as exc:  # noqa: BLE001  (it lapses by itself after lease_ttl)
                log.warning("cannot release the lease", extra={"error": str(exc)})
            self._step_down(why)

    def _step_down(self, why: str) -> None:
        if self.epoch is not None:
            log.warning("stepping down as finalizer", extra={"epoch": self.epoch, "why": why})
        self.epoch = None
        self.behind = None
        self._classifier = None
        self._recorder = None
        self.metrics.role.labels("leader").set(0)
        self.metrics.role.labels("follower").set(1)

    def _take_over(self, epoch: int) -> None:
        """Load the checkpoint the last committed write left: the classifier and the runs."""
        loaded = self.loaded
        classifier = Classifier.from_config(loaded.config, loaded.catalog, horizon=self.horizon)
        state = self.store.classifier_state()
        if state:
            classifier.restore(state)
        recorder = Recorder.from_config(loaded)
        recorder.resume(self.store)
        self._classifier, self._recorder, self.epoch = classifier, recorder, epoch
        self.metrics.role.labels("leader").set(1)
        self.metrics.role.labels("follower").set(0)
        log.info(
            "finalizer lease taken",
            extra={"epoch": epoch, "next_second": classifier.buckets.next_second},
        )

    def _pool_and_commit(self, epoch: int, found: Finalized) -> None:
        classifier, recorder = self._classifier, self._recorder
        if classifier is None or recorder is None:  # pragma: no cover  (set by _take_over)
            return
        cluster = self.loaded.config.cluster
        members = {p.id for p in self.probers if p.digest == self.digest}
        live = [p.id for p in self.probers if p.live and p.id in members]
        unhealthy = [
            p.id
            for p in self.probers
            if p.clock_offset_s is not None and abs(p.clock_offset_s) > cluster.max_clock_offset
        ]
        now = self.fleet.now()
        nxt = classifier.buckets.next_second
        if nxt is None:
            nxt = self._first_second()
        pooled: list[Pooled] = []
        late: list[LateSlice] = []
        if nxt is not None:
            last = final_through(
                watermarks={p.id: p.watermark for p in self.probers if p.id in live},
                live=live,
                now=now,
                horizon=self.horizon,
                grace=cluster.grace,
            )
            last = min(last, nxt + MAX_SECONDS_PER_TICK - 1)
            late = self._late(classifier, nxt, live, unhealthy)
            if last >= nxt:
                if classifier.buckets.next_second is None:
                    classifier.buckets.next_second = nxt
                by_second: dict[int, list[ProberSecond]] = {}
                for stored in self.fleet.slices(nxt, last, self.lanes):
                    if stored.slice.prober in members:
                        by_second.setdefault(stored.slice.second, []).append(stored.slice)
                for second in range(nxt, last + 1):
                    one = pool(
                        second,
                        by_second.get(second, ()),
                        live=live,
                        unhealthy=unhealthy,
                        min_probers=cluster.min_probers,
                    )
                    _judge(classifier, recorder, one, by_second.get(second, ()), found)
                    pooled.append(one)
        recorder.record(found.verdicts, found.signals, now=now)
        batch = recorder.take(classifier.snapshot())
        self.fleet.finalize(
            epoch, cluster.lease_ttl, batch=batch, pooled=pooled, late=late,
            assignments=self._reassign(live, math.floor(now)),
        )  # fmt: skip
        for record in late:
            self.late_counts[record.prober] += 1
            self.metrics.late.labels(record.prober).inc()
        if pooled:
            self._reporting(pooled[-1])
            self.behind = now - (pooled[-1].second + 1)
            self.metrics.lag.set(self.behind)

    def _reassign(self, live: list[str], now: int) -> list[Assignment]:
        """New assignments for the groups whose live members changed, effective shortly."""
        replicas = self.loaded.config.cluster.replicas
        groups: dict[str, list[str]] = {}
        for prober in self.probers:
            if prober.id in live:
                groups.setdefault(prober.group, []).append(prober.id)
        latest = {a.group: a for a in self.fleet.assignments()}
        out = []
        for group, members in sorted(groups.items()):
            before = latest.get(group)
            if before is None or before.members != tuple(sorted(members)):
                out.append(
                    Assignment(0, group, now + SWITCH_AFTER_S, tuple(sorted(members)), replicas)
                )
            elif before.replicas != replicas:
                out.append(Assignment(0, group, now + SWITCH_AFTER_S, before.members, replicas))
        return out

    def _first_second(self) -> int | None:
        """Where a brand-new fleet starts: the oldest second any prober published."""
        rows: list[Any] = self.store.transaction(
            lambda cur: cur.execute("SELECT min(second) FROM prober_seconds").fetchall()
        )
        return None if rows[0][0] is None else int(rows[0][0])

    def _late(
        self, classifier: Classifier, nxt: int, live: list[str], unhealthy: list[str]
    ) -> list[LateSlice]:
        """Slices of seconds already pooled that arrived since, each with its would-change flag."""
        found = self.fleet.unpooled(nxt - LATE_WINDOW_S, nxt - 1, self.lanes)
        out = []
        for stored in found:
            second = stored.slice.second
            late_ids = {s.slice.prober for s in found if s.slice.second == second}
            judged = [
                s.slice
                for s in self.fleet.slices(second, second, self.lanes)
                if s.slice.prober not in late_ids
            ]
            change = late_would_change(
                classifier.judge_bucket,
                judged,
                stored.slice,
                live=live,
                unhealthy=unhealthy,
                min_probers=self.loaded.config.cluster.min_probers,
            )
            out.append(LateSlice(second, stored.slice.prober, stored.ingested_at, change))
        if out:
            log.info(
                "late slices",
                extra={"count": len(out), "would_change": sum(s.would_change for s in out)},
            )
        return out

    def _reporting(self, last: Pooled) -> None:
        set_aside = set(last.set_aside)
        for service, channel in self.lanes:
            probers = last.bucket.attempts.get((service, channel), {})
            count = sum(1 for prober in probers if prober not in set_aside)
            self.metrics.reporting.labels(service, str(channel)).set(count)

    def release(self) -> None:
        """At shutdown: give the lease up (another takes over at once) and close the spool."""
        self._give_up_lease("shutting down")
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def cluster(self) -> dict[str, Any]:
        """``GET /api/v1/cluster``: the lease and every prober, as last read."""
        return {
            "leader": self.lease_holder,
            "epoch": self.lease_epoch,
            "self": self.id,
            "role": "leader" if self.leader else "follower",
            "probers": [p.to_json() for p in self.probers],
        }


def _judge(
    classifier: Classifier,
    recorder: Recorder,
    one: Pooled,
    rows: Iterable[ProberSecond],
    found: Finalized,
) -> None:
    """Judge one pooled second; its probers' sample failures go to the recorder with it.

    The recorder holds them until the second's verdict, as a single instance's holds its
    own attempts: the same selection and cap, over the pool.
    """
    second = one.second
    for service, channel, prober, outcome, n in one.entries():
        classifier.add_raw(service, channel, prober, second, outcome, n)
    for row in rows:
        for attempt in row.samples:
            recorder.attempt(attempt)
    classifier.advance_through(second, found)


class ClaimingOutbox:
    """The store as the notifier sees it in a fleet: ``pending`` claims the rows it returns.

    Everything else is the store's own. Two instances' workers never get the same row
    while a claim holds, so each notification is delivered once (at least once on a crash).
    """

    def __init__(self, store: PgStore, fleet: PgFleet, local_time: Callable[[], float]) -> None:
        self._store = store
        self._fleet = fleet
        self._time = local_time

    def pending(self, channel: str | None = None, *, limit: int = 100) -> list[Notification]:
        """Claim and return pending notifications due now (of one channel, or all)."""
        return self._fleet.claim(self._time(), hold=CLAIM_HOLD_S, channel=channel, limit=limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
