"""The fleet's shared state in PostgreSQL: probers, their packed seconds, the finalizer's lease.

Beside the incident store (``incidents/pg_store.py``, same database, same connection):

- **Probers** join with their group, version and judging digest (``config/fleet.py``); a
  member whose digest differs from the live members' is refused with one line. Each
  publish is one transaction: the prober's slices (``classifier/pooling.py``), each one
  row holding its counts and its sample failures, inserted once (``ON CONFLICT DO
  NOTHING``), and its heartbeat and watermark. A prober killed mid-publish leaves nothing
  half-written.
- **The lease** is a row with a holder, an epoch and an expiry, all in database time
  (``clock_timestamp()``), so no instance's clock matters. Taking it over bumps the epoch.
  Every finalizer write runs in one transaction that first renews the lease *only if* this
  holder still holds it at this epoch and it has not expired (:meth:`PgFleet.finalize`);
  otherwise nothing is written and :class:`Fenced` is raised. A paused or partitioned old
  leader therefore never commits after another took over. A competing renewal waits on
  the lease row's lock, so the check and the writes are one atomic step. Event and outbox
  rows record the epoch of the transaction that wrote them.
- Advisory locks are not used for the election: the server keeps them for a dead link's
  whole keepalive time (FLEET.md).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from classifier.pooling import LaneKey, Pooled, ProberSecond
from incidents.model import Incident
from incidents.outbox import Notification
from incidents.pg_store import OUTBOX_COLUMNS, PgStore, notification_row
from incidents.store import Batch
from probe.sharding import Assignment

LEASE = "finalizer"
# A candidate waits at most this for the lease row (held by a renewal in progress).
LOCK_TIMEOUT_MS = 1000
# Samples of the database clock per offset measurement (the median is kept).
OFFSET_SAMPLES = 5


class Fenced(Exception):
    """The lease is no longer this holder's at this epoch: nothing was written."""


class FleetError(Exception):
    """A member cannot join the fleet (its judging rules differ from the live members')."""


@dataclass(frozen=True, slots=True)
class ProberInfo:
    """A prober as its row says, with ``live`` judged in database time."""

    id: str
    group: str
    version: str
    digest: str
    watermark: int | None
    clock_offset_s: float | None
    live: bool
    heartbeat_age_s: float

    def to_json(self) -> dict[str, Any]:
        """The prober as ``GET /api/v1/cluster`` lists it."""
        return {
            "id": self.id,
            "group": self.group,
            "live": self.live,
            "watermark": self.watermark,
            "clock_offset_s": self.clock_offset_s,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Who holds the finalizer's lease, at which epoch, and for how much longer."""

    holder: str | None
    epoch: int
    remaining_s: float

    @property
    def held(self) -> bool:
        """Whether the lease is currently held by someone."""
        return self.holder is not None and self.remaining_s > 0


@dataclass(frozen=True, slots=True)
class LateSlice:
    """A slice that arrived after its second was pooled, and whether it would have changed it."""

    second: int
    prober: str
    ingested_at: float
    would_change: bool


@dataclass(frozen=True, slots=True)
class StoredSlice:
    """A published slice with the database time it arrived."""

    slice: ProberSecond
    ingested_at: float


class PgFleet:
    """The fleet tables of one database, used through the incident store's connection."""

    def __init__(self, store: PgStore, *, member: str) -> None:
        self.store = store
        self.member = member

    # -- probers -----------------------------------------------------------------

    def join(self, *, group: str, version: str, digest: str, prober_timeout: float) -> None:
        """Register (or re-register) this prober; FleetError if live members judge otherwise."""

        def run(cur: psycopg.Cursor[Any]) -> None:
            cur.execute(
                "SELECT id, config_digest FROM probers WHERE id <> %s AND heartbeat_at > "
                "clock_timestamp() - make_interval(secs => %s) ORDER BY id",
                (self.member, prober_timeout),
            )
            for other, theirs in cur.fetchall():
                if theirs != digest:
                    raise FleetError(
                        f"prober {self.member!r} judges by other rules than live member "
                        f"{other!r} (judging digest {digest[:12]} vs {theirs[:12]}): services, "
                        "channels, target names and classifier and SLA settings must match"
                    )
            cur.execute(
                "INSERT INTO probers (id, grp, version, config_digest, heartbeat_at, started_at) "
                "VALUES (%s, %s, %s, %s, clock_timestamp(), clock_timestamp()) "
                "ON CONFLICT (id) DO UPDATE SET grp = excluded.grp, version = excluded.version, "
                "config_digest = excluded.config_digest, heartbeat_at = excluded.heartbeat_at, "
                "started_at = excluded.started_at",
                (self.member, group, version, digest),
            )

        self.store.transaction(run)

    def publish(self, slices: Sequence[ProberSecond], lanes: Sequence[LaneKey]) -> None:
        """Publish this prober's slices and heartbeat atomically (a slice already in is kept).

        With no slice it is a heartbeat alone. PackError (nothing written) if a slice names a
        lane the configuration does not judge.
        """
        rows = [
            (
                s.second,
                self.member,
                s.pack(lanes),
                s.control_ok,
                s.control_judged,
                s.pack_samples(lanes),
            )
            for s in slices
        ]
        watermark = max((s.second for s in slices), default=None)

        def run(cur: psycopg.Cursor[Any]) -> None:
            if rows:
                cur.executemany(
                    "INSERT INTO prober_seconds (second, prober, counts, control_ok, "
                    "control_judged, samples) VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    rows,
                )
            cur.execute(
                "UPDATE probers SET heartbeat_at = clock_timestamp(), "
                "watermark = GREATEST(watermark, %s) WHERE id = %s",
                (watermark, self.member),
            )

        self.store.transaction(run)

    def set_clock_offset(self, offset_s: float) -> None:
        """Record this prober's measured offset to the database clock."""
        self.store.transaction(
            lambda cur: cur.execute(
                "UPDATE probers SET clock_offset_ms = %s WHERE id = %s",
                (offset_s * 1000.0, self.member),
            )
        )

    def measure_offset(
        self, local_time: Callable[[], float], samples: int = OFFSET_SAMPLES
    ) -> float:
        """The local clock minus the database's, in seconds (positive: ahead).

        The median of ``samples`` readings, each taken at the midpoint of its round trip.
        """

        def run(cur: psycopg.Cursor[Any]) -> float:
            readings = []
            for _ in range(samples):
                before = local_time()
                cur.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
                (db_now,) = cur.fetchone() or (0.0,)
                after = local_time()
                readings.append((before + after) / 2.0 - float(db_now))
            return statistics.median(readings)

        return self.store.transaction(run)

    def now(self) -> float:
        """The database's time (UTC epoch seconds): the fleet's one clock."""
        return self.store.transaction(_db_now)

    def probers(self, prober_timeout: float) -> list[ProberInfo]:
        """Every prober that ever joined, ``live`` if its heartbeat is within ``prober_timeout``."""
        rows = self.store.transaction(
            lambda cur: cur.execute(
                "SELECT id, grp, version, config_digest, watermark, clock_offset_ms, "
                "extract(epoch FROM clock_timestamp() - heartbeat_at)::float8 "
                "FROM probers ORDER BY grp, id"
            ).fetchall()
        )
        return [
            ProberInfo(
                id=row[0],
                group=row[1],
                version=row[2],
                digest=row[3],
                watermark=row[4],
                clock_offset_s=None if row[5] is None else float(row[5]) / 1000.0,
                live=row[6] < prober_timeout,
                heartbeat_age_s=float(row[6]),
            )
            for row in rows
        ]

    def slices(self, first: int, last: int, lanes: Sequence[LaneKey]) -> list[StoredSlice]:
        """The slices published for seconds ``first..last``, in (second, prober) order."""
        rows = self.store.transaction(
            lambda cur: cur.execute(
                "SELECT second, prober, counts, control_ok, control_judged, samples, "
                "extract(epoch FROM ingested_at)::float8 FROM prober_seconds "
                "WHERE second BETWEEN %s AND %s ORDER BY second, prober",
                (first, last),
            ).fetchall()
        )
        return [_stored(row, lanes) for row in rows]

    def unpooled(self, first: int, last: int, lanes: Sequence[LaneKey]) -> list[StoredSlice]:
        """Slices of already pooled seconds ``first..last`` that the pooling did not see (late)."""
        rows = self.store.transaction(
            lambda cur: cur.execute(
                "SELECT s.second, s.prober, s.counts, s.control_ok, s.control_judged, s.samples, "
                "extract(epoch FROM s.ingested_at)::float8 FROM prober_seconds s "
                "JOIN pooled_seconds p ON p.second = s.second "
                "WHERE s.second BETWEEN %s AND %s "
                "AND NOT (s.prober = ANY (p.reporting) OR s.prober = ANY (p.set_aside)) "
                "AND NOT EXISTS (SELECT 1 FROM late_batches l "
                "WHERE l.second = s.second AND l.prober = s.prober) "
                "ORDER BY s.second, s.prober",
                (first, last),
            ).fetchall()
        )
        return [_stored(row, lanes) for row in rows]

    def pooled_through(self) -> int | None:
        """The last second the finalizers pooled (None before the first)."""
        rows = self.store.transaction(
            lambda cur: cur.execute("SELECT max(second) FROM pooled_seconds").fetchall()
        )
        return None if rows[0][0] is None else int(rows[0][0])

    def pooled(self, first: int, last: int) -> list[dict[str, Any]]:
        """The pooled seconds ``first..last``: who reported, who was set aside, who was expected."""
        rows = self.store.transaction(
            lambda cur: cur.execute(
                "SELECT second, epoch, reporting, set_aside, expected FROM pooled_seconds "
                "WHERE second BETWEEN %s AND %s ORDER BY second",
                (first, last),
            ).fetchall()
        )
        return [
            {
                "second": row[0],
                "epoch": row[1],
                "reporting": list(row[2]),
                "set_aside": list(row[3]),
                "expected": list(row[4]),
            }
            for row in rows
        ]

    def late(self) -> list[LateSlice]:
        """Every slice recorded as late, in (second, prober) order."""
        rows = self.store.transaction(
            lambda cur: cur.execute(
                "SELECT second, prober, extract(epoch FROM ingested_at)::float8, would_change "
                "FROM late_batches ORDER BY second, prober"
            ).fetchall()
        )
        return [LateSlice(row[0], row[1], row[2], row[3]) for row in rows]

    def assignments(self, group: str | None = None, *, keep: int = 5) -> list[Assignment]:
        """The newest ``keep`` assignments of ``group`` (of every group: the newest of each)."""
        if group is None:
            sql = (
                "SELECT DISTINCT ON (grp) version, grp, effective_second, members, replicas "
                "FROM assignments ORDER BY grp, version DESC"
            )
            params: tuple[Any, ...] = ()
        else:
            sql = (
                "SELECT version, grp, effective_second, members, replicas FROM assignments "
                "WHERE grp = %s ORDER BY version DESC LIMIT %s"
            )
            params = (group, keep)
        rows = self.store.transaction(lambda cur: cur.execute(sql, params).fetchall())
        return [Assignment(int(r[0]), r[1], int(r[2]), tuple(r[3]), int(r[4])) for r in rows]

    # -- the lease ---------------------------------------------------------------

    def lease(self) -> LeaseInfo:
        """The finalizer's lease as it stands now."""
        rows = self.store.transaction(
            lambda cur: cur.execute(
                "SELECT holder, epoch, GREATEST(extract(epoch FROM expires_at - "
                "clock_timestamp()), 0)::float8 FROM lease WHERE name = %s",
                (LEASE,),
            ).fetchall()
        )
        holder, epoch, remaining = rows[0]
        return LeaseInfo(holder, int(epoch), float(remaining))

    def acquire(self, ttl: float) -> int | None:
        """Take or renew the lease for ``ttl`` seconds; its epoch, or None if another holds it.

        Renewing a lease still held keeps its epoch; taking one (free, expired, or held by
        another that let it lapse) bumps the epoch, which fences every earlier holder.
        """

        def run(cur: psycopg.Cursor[Any]) -> int | None:
            cur.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            # Cut off between its UPDATE and COMMIT (a half-open link), a candidate would
            # keep the lease row locked until the server noticed: every other candidate's
            # lock_timeout would then refuse it the lease. The server ends such a session.
            _idle_at_most(cur, ttl)
            try:
                cur.execute(
                    "UPDATE lease SET epoch = CASE WHEN holder = %(me)s AND expires_at >= "
                    "clock_timestamp() THEN epoch ELSE epoch + 1 END, holder = %(me)s, "
                    "expires_at = clock_timestamp() + make_interval(secs => %(ttl)s) "
                    "WHERE name = %(name)s AND (holder = %(me)s OR expires_at < clock_timestamp()) "
                    "RETURNING epoch",
                    {"me": self.member, "ttl": ttl, "name": LEASE},
                )
            except psycopg.errors.LockNotAvailable:
                return None
            row = cur.fetchone()
            return None if row is None else int(row[0])

        try:
            return self.store.transaction(run)
        except psycopg.errors.LockNotAvailable:  # pragma: no cover  (raised at commit)
            return None

    def release(self, epoch: int) -> bool:
        """Give the lease up now (a planned step-down); False if it was no longer ours."""
        return self.store.transaction(
            lambda cur: (
                cur.execute(
                    "UPDATE lease SET expires_at = clock_timestamp() "
                    "WHERE name = %s AND holder = %s AND epoch = %s",
                    (LEASE, self.member, epoch),
                ).rowcount
                == 1
            )
        )

    def finalize(
        self,
        epoch: int,
        ttl: float,
        *,
        batch: Batch,
        pooled: Sequence[Pooled] = (),
        late: Sequence[LateSlice] = (),
        assignments: Sequence[Assignment] = (),
    ) -> list[Incident]:
        """Write what the finalizer found, fenced: renew the lease and write, or write nothing.

        Fenced if this member no longer holds the lease at ``epoch`` (it expired, or another
        took it). The incidents the batch touched, as they now are.
        """

        def run(cur: psycopg.Cursor[Any]) -> list[Incident]:
            _fence(cur, self.member, epoch, ttl)
            touched = self.store.commit_in(cur, batch)
            if pooled:
                cur.executemany(
                    "INSERT INTO pooled_seconds (second, epoch, reporting, set_aside, expected) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (second) DO NOTHING",
                    [
                        (p.second, epoch, list(p.reporting), list(p.set_aside), list(p.expected))
                        for p in pooled
                    ],
                )
            if late:
                cur.executemany(
                    "INSERT INTO late_batches (second, prober, ingested_at, would_change) "
                    "VALUES (%s, %s, to_timestamp(%s), %s) ON CONFLICT DO NOTHING",
                    [(s.second, s.prober, s.ingested_at, s.would_change) for s in late],
                )
            for a in assignments:
                cur.execute(
                    "INSERT INTO assignments (grp, effective_second, members, replicas, epoch) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (a.group, a.effective_second, list(a.members), a.replicas, epoch),
                )
            return touched

        return self.store.transaction(run)

    def enqueue(
        self, epoch: int, ttl: float, notes: Sequence[Notification], *, cursor: int | None
    ) -> None:
        """``IncidentStore.enqueue`` as the finalizer: fenced like :meth:`finalize`."""

        def run(cur: psycopg.Cursor[Any]) -> None:
            _fence(cur, self.member, epoch, ttl)
            self.store.enqueue_in(cur, notes, cursor=cursor)

        self.store.transaction(run)

    # -- delivery ----------------------------------------------------------------

    def claim(
        self, now: float, *, hold: float, channel: str | None = None, limit: int = 100
    ) -> list[Notification]:
        """Claim pending notifications for ``hold`` seconds from ``now`` (any instance).

        A row's ``next_at`` is left to its worker, which waits for it (channel order holds).

        ``FOR UPDATE SKIP LOCKED`` with a ``claimed_until``: two instances claiming at once
        get different rows, and a claim lapses if its instance dies before marking it.
        """

        def run(cur: psycopg.Cursor[Any]) -> list[Notification]:
            cur.execute(
                f"SELECT {OUTBOX_COLUMNS} FROM outbox "  # noqa: S608  (constant columns)
                "WHERE state = 'pending' AND (%(channel)s::text IS NULL OR channel = %(channel)s) "
                "AND (claimed_until IS NULL OR claimed_until < %(now)s) "
                "ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
                {"channel": channel, "now": now, "limit": limit},
            )
            notes = [notification_row(row) for row in cur.fetchall()]
            if notes:
                cur.execute(
                    "UPDATE outbox SET claimed_by = %s, claimed_until = %s WHERE key = ANY (%s)",
                    (self.member, now + hold, [n.key for n in notes]),
                )
            return notes

        return self.store.transaction(run)


def _fence(cur: psycopg.Cursor[Any], member: str, epoch: int, ttl: float) -> None:
    """Renew the lease if this member still holds it at ``epoch``; Fenced (rolled back) if not."""
    # A holder paused mid-transaction must not keep the lease row locked past its lease.
    _idle_at_most(cur, ttl)
    cur.execute(
        "UPDATE lease SET expires_at = clock_timestamp() + make_interval(secs => %s) "
        "WHERE name = %s AND holder = %s AND epoch = %s AND expires_at >= clock_timestamp()",
        (ttl, LEASE, member, epoch),
    )
    if cur.rowcount != 1:
        raise Fenced(f"fenced at epoch {epoch}: the lease is no longer {member!r}'s")
    # Event and outbox rows written in this transaction record its epoch.
    cur.execute("SELECT set_config('slawatch.epoch', %s, true)", (str(epoch),))


def _idle_at_most(cur: psycopg.Cursor[Any], ttl: float) -> None:
    """Have the server end this session if its transaction idles ``ttl`` (its locks go too)."""
    cur.execute(f"SET LOCAL idle_in_transaction_session_timeout = {max(1, int(ttl * 1000))}")


def _db_now(cur: psycopg.Cursor[Any]) -> float:
    row = cur.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    return float(row[0]) if row else 0.0


def _stored(row: tuple[Any, ...], lanes: Sequence[LaneKey]) -> StoredSlice:
    second, prober, counts, ok, judged, samples, ingested_at = row
    return StoredSlice(
        ProberSecond.unpack(
            prober,
            second,
            bytes(counts),
            lanes,
            control_ok=ok,
            control_judged=judged,
            samples=None if samples is None else bytes(samples),
        ),
        float(ingested_at),
    )


def event_epochs(store: PgStore) -> list[tuple[int, int | None]]:
    """(seq, epoch) of every event, in seq order: which lease epoch wrote each."""
    return store.transaction(
        lambda cur: [
            (int(seq), None if epoch is None else int(epoch))
            for seq, epoch in cur.execute("SELECT seq, epoch FROM events ORDER BY seq").fetchall()
        ]
    )
