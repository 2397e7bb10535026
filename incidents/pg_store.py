"""The PostgreSQL IncidentStore: one database shared by every instance of a fleet.

The same protocol, the same commit algorithm (``incidents/commit.py``) and the same test
scenarios as the SQLite store; psycopg 3 is imported only when a config names
``storage.url`` (it is the optional extra ``slawatch[postgres]``).

- **Migrations** run at open, versioned and forward only, under a transaction-level
  advisory lock so instances starting together migrate once.
- **Commit order is seq order.** Readers follow the event log by ``seq``
  (``events_since``); a sequence value is taken inside its transaction, so two writers
  committing out of order could let a reader skip an event. Every transaction that
  appends events therefore takes one transaction-level advisory lock first: event
  writers commit one at a time (they are rare: a few events per incident), and the lock
  dies with the transaction, so a cut connection cannot keep it.
- **A dead link** is noticed by libpq keepalives and ``tcp_user_timeout`` within seconds;
  a broken connection is replaced on the next call and the call retried (tenacity), so a
  database restart costs the calls during the restart, not the store.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from config.timetext import format_time
from incidents.commit import plan_events
from incidents.lifecycle import fold
from incidents.model import EventRecord, Incident, Run
from incidents.outbox import Notification
from incidents.store import Batch, HighWater, Pruned, StoreError, VantageRun, closed_at
from probe.attempt import Attempt, Channel, Outcome, prober_source

T = TypeVar("T")

# Advisory lock keys (any constants unique to slawatch): "SLAW" + a purpose digit.
EVENTS_LOCK = 0x534C_4157_0001
MIGRATION_LOCK = 0x534C_4157_0002
RETRIES = 6
# libpq connection options: a dead peer is noticed in seconds, not at the OS's 2 hours.
CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "tcp_user_timeout": 4000,
    "application_name": "slawatch",
}

# Forward migrations: MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE incidents (
        id text PRIMARY KEY,
        service text NOT NULL,
        state text NOT NULL,
        severity integer NOT NULL,
        started_at bigint NOT NULL,
        closed_at double precision
    );
    CREATE INDEX incidents_by_state ON incidents (state, service, started_at);
    CREATE TABLE events (
        seq bigserial PRIMARY KEY,
        incident text NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        key text,
        kind text NOT NULL,
        at double precision NOT NULL,
        source text NOT NULL,
        recorded_at double precision NOT NULL,
        body jsonb NOT NULL,
        UNIQUE (incident, key)
    );
    CREATE INDEX events_by_incident ON events (incident, seq);
    CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'incident events are append-only'; END $$;
    CREATE TRIGGER events_append_only BEFORE UPDATE ON events
        FOR EACH ROW EXECUTE FUNCTION events_append_only();
    CREATE TABLE runs (
        service text NOT NULL,
        channel text NOT NULL,
        first bigint NOT NULL,
        last bigint NOT NULL,
        verdict text NOT NULL,
        counts integer[] NOT NULL,
        set_aside integer NOT NULL,
        PRIMARY KEY (service, channel, first)
    );
    CREATE INDEX runs_by_last ON runs (last);
    CREATE TABLE samples (
        service text NOT NULL,
        channel text NOT NULL,
        second bigint NOT NULL,
        started_at double precision NOT NULL,
        target text NOT NULL,
        prober text NOT NULL,
        duration_s double precision NOT NULL,
        outcome text NOT NULL,
        phase text NOT NULL,
        detail text NOT NULL,
        timings jsonb NOT NULL
    );
    CREATE INDEX samples_by_second ON samples (service, second);
    CREATE TABLE high_water (
        service text NOT NULL,
        channel text NOT NULL,
        second bigint NOT NULL,
        PRIMARY KEY (service, channel)
    );
    CREATE TABLE state (key text PRIMARY KEY, value jsonb NOT NULL);
    INSERT INTO state (key, value) VALUES ('notify_cursor', '0');
    CREATE TABLE outbox (
        seq bigserial PRIMARY KEY,
        key text NOT NULL UNIQUE,
        channel text NOT NULL,
        event text NOT NULL,
        incident text,
        created_at double precision NOT NULL,
        document jsonb NOT NULL,
        state text NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'delivered', 'dead')),
        tries integer NOT NULL DEFAULT 0,
        next_at double precision,
        last_error text NOT NULL DEFAULT '',
        done_at double precision
    );
    CREATE INDEX outbox_by_channel ON outbox (state, channel, seq);
    CREATE INDEX outbox_by_incident ON outbox (incident, seq);
    """,
    # 1 → 2: each run's counts from the customer's ingested traffic (evidence by source).
    """
    ALTER TABLE runs ADD COLUMN traffic integer[] NOT NULL DEFAULT '{}';
    """,
    # 2 → 3: the fleet (incidents/pg_fleet.py). Probers and their heartbeats, one packed row per
    # prober and second, the finalizer's lease, the pooled seconds and late slices, the
    # groups' target assignments; every
    # event and outbox row records the lease epoch of the transaction that wrote it.
    """
    CREATE TABLE probers (
        id text PRIMARY KEY,
        grp text NOT NULL,
        version text NOT NULL,
        config_digest text NOT NULL,
        watermark bigint,
        heartbeat_at timestamptz NOT NULL,
        clock_offset_ms real,
        started_at timestamptz NOT NULL
    );
    CREATE TABLE prober_seconds (
        second bigint NOT NULL,
        prober text NOT NULL,
        counts bytea NOT NULL,
        control_ok integer NOT NULL,
        control_judged integer NOT NULL,
        ingested_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (second, prober)
    );
    CREATE TABLE lease (
        name text PRIMARY KEY,
        holder text,
        epoch bigint NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL DEFAULT 'epoch'
    );
    INSERT INTO lease (name) VALUES ('finalizer');
    CREATE TABLE pooled_seconds (
        second bigint PRIMARY KEY,
        epoch bigint NOT NULL,
        reporting text[] NOT NULL,
        set_aside text[] NOT NULL,
        expected text[] NOT NULL,
        finalized_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE TABLE late_batches (
        second bigint NOT NULL,
        prober text NOT NULL,
        ingested_at timestamptz NOT NULL,
        would_change boolean NOT NULL,
        PRIMARY KEY (second, prober)
    );
    CREATE TABLE assignments (
        version bigserial PRIMARY KEY,
        grp text NOT NULL,
        effective_second bigint NOT NULL,
        members text[] NOT NULL,
        replicas smallint NOT NULL,
        epoch bigint NOT NULL
    );
    CREATE INDEX assignments_by_group ON assignments (grp, version);
    ALTER TABLE events ADD COLUMN epoch bigint
        DEFAULT NULLIF(current_setting('slawatch.epoch', true), '')::bigint;
    ALTER TABLE outbox ADD COLUMN epoch bigint
        DEFAULT NULLIF(current_setting('slawatch.epoch', true), '')::bigint;
    ALTER TABLE outbox ADD COLUMN claimed_by text;
    ALTER TABLE outbox ADD COLUMN claimed_until double precision;
    """,
    # 3 → 4: each prober-second row carries its sample failures (``ProberSecond.pack_samples``,
    # bounded; NULL when it has none), so a fleet's evidence lists sampled attempts too.
    """
    ALTER TABLE prober_seconds ADD COLUMN samples bytea;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class PgStore:
    """An IncidentStore in a PostgreSQL database; safe to share between threads."""

    def __init__(
        self,
        url: str,
        *,
        retries: int = RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.where = display_url(url)
        self._retrying = Retrying(
            retry=retry_if_exception_type((psycopg.OperationalError, psycopg.InterfaceError)),
            stop=stop_after_attempt(retries),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            sleep=sleep,
            reraise=True,
        )
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        try:
            self._retry(self._setup)
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"{self.where}: cannot use the database: {_reason(exc)}") from None
        except StoreError:
            self.close()
            raise

    # -- connection ------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            conn = self._conn = psycopg.connect(self.url, **CONNECT_OPTIONS)
        return conn

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retry(self, func: Callable[[], T]) -> T:
        return self._retrying(func)

    @contextmanager
    def _write(self) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction on the shared connection (committed, or rolled back on error)."""
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                yield cur

    def transaction(self, func: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """Run ``func`` in one transaction, retried on a broken connection (the fleet's writes).

        ``func`` must be safe to run again: a retry after a lost commit repeats it.
        """

        def run() -> T:
            with self._write() as cur:
                return func(cur)

        return self._retry(run)

    def commit_in(self, cur: psycopg.Cursor[Any], batch: Batch) -> list[Incident]:
        """``commit`` inside a transaction the caller holds (the finalizer's lease transaction)."""
        return _commit(cur, batch)

    def enqueue_in(
        self, cur: psycopg.Cursor[Any], notes: Sequence[Notification], *, cursor: int | None
    ) -> None:
        """``enqueue`` inside a transaction the caller holds."""
        _enqueue(cur, notes)
        if cursor is not None:
            _move_cursor(cur, cursor)

    def _read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        def run() -> list[Any]:
            with self._write() as cur:
                cur.execute(sql, params)
                return cur.fetchall()

        return self._retry(run)

    def _setup(self) -> None:
        with self._write() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            cur.execute("SELECT version FROM schema_version")
            row = cur.fetchone()
            if row is None:
                cur.execute("INSERT INTO schema_version VALUES (0)")
                version = 0
            else:
                version = int(row[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.where}: schema version {version} is newer than this slawatch "
                    f"understands ({SCHEMA_VERSION}); upgrade slawatch"
                )
            for step in range(version, SCHEMA_VERSION):
                cur.execute(MIGRATIONS[step])
                cur.execute("UPDATE schema_version SET version = %s", (step + 1,))

    def schema_version(self) -> int:
        """The schema version of the database."""
        return int(self._read("SELECT version FROM schema_version")[0][0])

    # -- writes ----------------------------------------------------------------

    def commit(self, batch: Batch) -> list[Incident]:
        """Write a batch atomically; the incidents it touched, as they now are."""
        if not batch:
            return []

        def run() -> list[Incident]:
            with self._write() as cur:
                return _commit(cur, batch)

        return self._retry(run)

    def enqueue(self, notes: Sequence[Notification], *, cursor: int | None = None) -> None:
        """Queue notifications (a key already held is ignored); move the cursor with them."""
        if not notes and cursor is None:
            return

        def run() -> None:
            with self._write() as cur:
                self.enqueue_in(cur, notes, cursor=cursor)

        self._retry(run)

    def prune(self, now: float, *, keep_runs: float, keep_samples: float) -> Pruned:
        """Drop what retention no longer keeps (``keep_*`` in seconds before ``now``)."""

        def run() -> Pruned:
            with self._write() as cur:
                cur.execute("DELETE FROM runs WHERE last < %s", (now - keep_runs,))
                runs = cur.rowcount
                cur.execute("DELETE FROM samples WHERE second < %s", (now - keep_samples,))
                samples = cur.rowcount
                cur.execute(
                    "DELETE FROM incidents WHERE closed_at IS NOT NULL AND closed_at < %s",
                    (now - keep_runs,),
                )
                incidents = cur.rowcount
                cur.execute("DELETE FROM outbox WHERE done_at < %s", (now - keep_runs,))
                # A fleet's rows: the probers' slices are the attempts (kept as samples
                # are); the pooled seconds and late slices back the verdicts and their
                # evidence (kept as runs are).
                cur.execute("DELETE FROM prober_seconds WHERE second < %s", (now - keep_samples,))
                cur.execute("DELETE FROM pooled_seconds WHERE second < %s", (now - keep_runs,))
                cur.execute("DELETE FROM late_batches WHERE second < %s", (now - keep_runs,))
            return Pruned(runs=runs, samples=samples, incidents=incidents)

        return self._retry(run)

    def mark_delivered(self, key: str, *, at: float) -> None:
        """Record that the notification ``key`` was delivered."""
        self._update(
            "UPDATE outbox SET state = 'delivered', tries = tries + 1, done_at = %s, "
            "next_at = NULL WHERE key = %s",
            (at, key),
        )

    def mark_failed(self, key: str, *, tries: int, next_at: float, error: str) -> None:
        """Record a failed try: ``tries`` made so far, the next not before ``next_at``."""
        self._update(
            "UPDATE outbox SET tries = %s, next_at = %s, last_error = %s WHERE key = %s",
            (tries, next_at, error, key),
        )

    def mark_dead(self, key: str, *, tries: int, at: float, error: str) -> None:
        """Dead-letter the notification ``key``: no more tries; kept for people to see."""
        self._update(
            "UPDATE outbox SET state = 'dead', tries = %s, done_at = %s, next_at = NULL, "
            "last_error = %s WHERE key = %s",
            (tries, at, error, key),
        )

    def _update(self, sql: str, params: Sequence[Any]) -> None:
        def run() -> None:
            with self._write() as cur:
                cur.execute(sql, params)

        self._retry(run)

    # -- reads -----------------------------------------------------------------

    def get(self, incident_id: str) -> Incident | None:
        """The incident called ``incident_id``, or None."""
        return fold(self.events(incident_id))

    def incidents(self, *, state: str | None = None, service: str | None = None) -> list[Incident]:
        """Incidents (optionally of one state and service), oldest start first."""
        rows = self._read(
            "SELECT e.seq, e.body FROM incidents i JOIN events e ON e.incident = i.id "
            "WHERE (%(state)s::text IS NULL OR i.state = %(state)s) "
            "AND (%(service)s::text IS NULL OR i.service = %(service)s) "
            "ORDER BY i.started_at, i.id, e.seq",
            {"state": state, "service": service},
        )
        grouped: dict[str, list[EventRecord]] = {}
        for seq, body in rows:
            event = _event(seq, body)
            grouped.setdefault(event.incident, []).append(event)
        found = [fold(events) for events in grouped.values()]
        return [i for i in found if i is not None]

    def events(self, incident_id: str) -> list[EventRecord]:
        """The events of an incident, in append order."""
        rows = self._read(
            "SELECT seq, body FROM events WHERE incident = %s ORDER BY seq", (incident_id,)
        )
        return [_event(seq, body) for seq, body in rows]

    def events_since(self, cursor: int, *, limit: int = 1000) -> list[EventRecord]:
        """Events with ``seq`` above ``cursor``, in commit order (see the module docstring)."""
        rows = self._read(
            "SELECT seq, body FROM events WHERE seq > %s ORDER BY seq LIMIT %s", (cursor, limit)
        )
        return [_event(seq, body) for seq, body in rows]

    def notify_cursor(self) -> int:
        """The last event ``seq`` whose notifications were queued."""
        rows = self._read("SELECT value FROM state WHERE key = 'notify_cursor'")
        return int(rows[0][0]) if rows else 0

    def runs(self, service: str, channel: str | None, first: int, last: int) -> list[Run]:
        """Runs of a service (one channel, or all) overlapping seconds ``first..last``."""
        rows = self._read(
            "SELECT service, channel, verdict, first, last, counts, set_aside, traffic FROM runs "
            "WHERE service = %(service)s AND (%(channel)s::text IS NULL OR channel = %(channel)s) "
            "AND first <= %(last)s AND last >= %(first)s ORDER BY channel, first",
            {"service": service, "channel": channel, "first": first, "last": last},
        )
        return [_run(row) for row in rows]

    def last_runs(self) -> list[Run]:
        """The latest run of every (service, channel)."""
        rows = self._read(
            "SELECT DISTINCT ON (service, channel) service, channel, verdict, first, last, "
            "counts, set_aside, traffic FROM runs ORDER BY service, channel, first DESC"
        )
        return [_run(row) for row in rows]

    def samples(self, service: str, first: int, last: int) -> list[Attempt]:
        """Sampled attempts of a service started in seconds ``first..last``, in time order."""
        rows = self._read(
            "SELECT service, channel, target, prober, started_at, duration_s, outcome, phase, "
            "detail, timings FROM samples WHERE service = %s AND second BETWEEN %s AND %s "
            "ORDER BY started_at, channel, target",
            (service, first, last),
        )
        return [
            Attempt(
                service=row[0],
                channel=Channel(row[1]),
                target=row[2],
                prober=row[3],
                source=prober_source(row[3]),
                started_at=row[4],
                duration_s=row[5],
                outcome=Outcome(row[6]),
                phase=row[7],
                detail=row[8],
                timings=row[9],
            )
            for row in rows
        ]

    def high_water(self) -> HighWater:
        """The last persisted second of every (service, channel)."""
        rows = self._read("SELECT service, channel, second FROM high_water")
        return {(service, channel): second for service, channel, second in rows}

    def classifier_state(self) -> dict[str, Any] | None:
        """The classifier snapshot committed with the latest runs, or None."""
        rows = self._read("SELECT value FROM state WHERE key = 'classifier'")
        if not rows:
            return None
        state: dict[str, Any] = rows[0][0]
        return state

    def pending(self, channel: str | None = None, *, limit: int = 100) -> list[Notification]:
        """Undelivered notifications (of one channel, or all), in enqueue order."""
        rows = self._read(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox "  # noqa: S608  (constant columns)
            "WHERE state = 'pending' AND (%(channel)s::text IS NULL OR channel = %(channel)s) "
            "ORDER BY seq LIMIT %(limit)s",
            {"channel": channel, "limit": limit},
        )
        return [notification_row(row) for row in rows]

    def notifications(
        self, *, incident: str | None = None, state: str | None = None
    ) -> list[Notification]:
        """Outbox records (optionally of one incident and one state), in enqueue order."""
        rows = self._read(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox "  # noqa: S608  (constant columns)
            "WHERE (%(incident)s::text IS NULL OR incident = %(incident)s) "
            "AND (%(state)s::text IS NULL OR state = %(state)s) ORDER BY seq",
            {"incident": incident, "state": state},
        )
        return [notification_row(row) for row in rows]

    def vantage(self, first: int, last: int, incident: tuple[int, int]) -> dict[str, Any] | None:
        """Who pooled seconds ``first..last`` came from, in runs of equal counts (None: none).

        ``seconds`` lists runs ``{from, to, probers_reporting, probers_expected}`` (``to``
        inclusive, RFC 3339) covering every pooled second; ``probers`` every prober whose
        attempts were judged, with its group; ``incident`` how many probers and locations
        reported in each second of the incident's span (the fewest and the most).
        """
        runs = self.vantage_seconds(first, last)
        if not runs:
            return None
        probers = self._read(
            "SELECT DISTINCT r.id, coalesce(p.grp, '') FROM pooled_seconds s, "
            "unnest(s.reporting) AS r (id) LEFT JOIN probers p ON p.id = r.id "
            "WHERE s.second BETWEEN %s AND %s ORDER BY 1",
            (first, last),
        )
        groups = dict(probers)
        spans = self._read(
            "SELECT s.reporting FROM pooled_seconds s WHERE s.second BETWEEN %s AND %s",
            (incident[0], incident[1]),
        )
        per_second = [(len(r), len({groups.get(p, p) for p in r})) for (r,) in spans]
        return {
            "probers": [{"id": prober, "group": group} for prober, group in probers],
            "seconds": [
                {
                    "from": format_time(a),
                    "to": format_time(b),
                    "probers_reporting": reporting,
                    "probers_expected": expected,
                }
                for a, b, reporting, expected in runs
            ],
            "incident": {
                "probers_reporting": _span(p for p, _ in per_second),
                "locations_reporting": _span(g for _, g in per_second),
            },
        }

    def vantage_seconds(self, first: int, last: int) -> list[VantageRun]:
        """Probers reporting and expected in the pooled seconds ``first..last``, in runs.

        Runs of consecutive seconds alike in both counts (``IncidentStore.vantage_seconds``).
        """
        rows = self._read(
            "SELECT second, cardinality(reporting), cardinality(expected) FROM pooled_seconds "
            "WHERE second BETWEEN %s AND %s ORDER BY second",
            (first, last),
        )
        runs: list[VantageRun] = []
        for second, reporting, expected in rows:
            if runs and runs[-1][1] + 1 == second and runs[-1][2:] == (reporting, expected):
                runs[-1] = (runs[-1][0], second, reporting, expected)
            else:
                runs.append((second, second, reporting, expected))
        return runs

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        """How many notifications each (channel, state) holds."""
        rows = self._read("SELECT channel, state, count(*) FROM outbox GROUP BY channel, state")
        return {(channel, state): count for channel, state, count in rows}


def check_database(url: str) -> str:
    """One line on what the database holds (server version, slawatch schema); changes nothing.

    StoreError when it cannot be reached (``check-config`` calls it).
    """
    try:
        with psycopg.connect(url, **CONNECT_OPTIONS) as conn:
            server = conn.info.server_version
            row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
            schema = "no slawatch schema yet"
            if row is not None and row[0]:
                version = conn.execute("SELECT version FROM schema_version").fetchone()
                schema = f"schema version {version[0] if version else 0}"
    except psycopg.Error as exc:
        raise StoreError(f"{display_url(url)}: cannot reach the database: {_reason(exc)}") from None
    return f"{display_url(url)}: PostgreSQL {server // 10000}.{server % 10000}, {schema}"


def _commit(cur: psycopg.Cursor[Any], batch: Batch) -> list[Incident]:
    if batch.events:
        # Event writers commit one at a time, so seq order is commit order.
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))

    def recorded(incident: str, key: str) -> bool:
        cur.execute("SELECT 1 FROM events WHERE incident = %s AND key = %s", (incident, key))
        return cur.fetchone() is not None

    plan = plan_events(
        batch.events, recorded=recorded, stored=lambda incident: fold(_events_of(cur, incident))
    )
    for incident_id in sorted(plan.created):
        created = plan.incidents[incident_id]
        cur.execute(
            "INSERT INTO incidents (id, service, state, severity, started_at) "
            "VALUES (%s, %s, %s, %s, %s)",
            (created.id, created.service, created.state, created.severity, created.started_at),
        )
    for event in plan.added:
        body = event.to_json()
        del body["seq"]
        cur.execute(
            "INSERT INTO events (incident, key, kind, at, source, recorded_at, body) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                event.incident,
                event.key,
                event.kind,
                event.at,
                event.source,
                event.recorded_at,
                json.dumps(body, sort_keys=True),
            ),
        )
    for incident in plan.incidents.values():
        cur.execute(
            "UPDATE incidents SET state = %s, severity = %s, closed_at = %s WHERE id = %s",
            (incident.state, incident.severity, closed_at(incident), incident.id),
        )
    if batch.runs:
        cur.executemany(
            "INSERT INTO runs (service, channel, first, last, verdict, counts, set_aside, "
            "traffic) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (service, channel, first) "
            "DO UPDATE SET last = excluded.last, verdict = excluded.verdict, "
            "counts = excluded.counts, set_aside = excluded.set_aside, traffic = excluded.traffic",
            [
                (
                    r.service,
                    r.channel,
                    r.first,
                    r.last,
                    r.verdict,
                    list(r.counts),
                    r.set_aside,
                    list(r.traffic),
                )
                for r in batch.runs
            ],
        )
    if batch.samples:
        cur.executemany(
            "INSERT INTO samples (service, channel, second, started_at, target, prober, "
            "duration_s, outcome, phase, detail, timings) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    a.service,
                    str(a.channel),
                    a.second,
                    a.started_at,
                    a.target,
                    a.prober,
                    a.duration_s,
                    str(a.outcome),
                    a.phase,
                    a.detail,
                    json.dumps(dict(a.timings), sort_keys=True),
                )
                for a in batch.samples
            ],
        )
    if batch.high_water:
        cur.executemany(
            "INSERT INTO high_water (service, channel, second) VALUES (%s, %s, %s) "
            "ON CONFLICT (service, channel) DO UPDATE "
            "SET second = GREATEST(high_water.second, excluded.second)",
            [(service, channel, second) for (service, channel), second in batch.high_water.items()],
        )
    if batch.classifier_state is not None:
        cur.execute(
            "INSERT INTO state (key, value) VALUES ('classifier', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (json.dumps(batch.classifier_state, sort_keys=True),),
        )
    return plan.touched()


def _move_cursor(cur: psycopg.Cursor[Any], cursor: int) -> None:
    cur.execute(
        "UPDATE state SET value = to_jsonb(GREATEST(value::bigint, %s)) "
        "WHERE key = 'notify_cursor'",
        (cursor,),
    )


def _enqueue(cur: psycopg.Cursor[Any], notes: Sequence[Notification]) -> None:
    if not notes:
        return
    cur.executemany(
        "INSERT INTO outbox (key, channel, event, incident, created_at, document, next_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
        [
            (
                n.key,
                n.channel,
                n.event,
                n.incident,
                n.created_at,
                json.dumps(n.document, sort_keys=True),
                n.next_at,
            )
            for n in notes
        ],
    )


OUTBOX_COLUMNS = (
    "seq, key, channel, event, incident, created_at, document, state, tries, next_at, "
    "last_error, done_at"
)


def notification_row(row: tuple[Any, ...]) -> Notification:
    """A Notification from an outbox row read as ``OUTBOX_COLUMNS``."""
    seq, key, channel, event, incident, created_at, document, state, tries, next_at = row[:10]
    return Notification(
        key=key,
        channel=channel,
        event=event,
        created_at=created_at,
        document=document,
        incident=incident,
        seq=seq,
        state=state,
        tries=tries,
        next_at=next_at,
        last_error=row[10],
        done_at=row[11],
    )


def _events_of(cur: psycopg.Cursor[Any], incident_id: str) -> list[EventRecord]:
    cur.execute("SELECT seq, body FROM events WHERE incident = %s ORDER BY seq", (incident_id,))
    return [_event(seq, body) for seq, body in cur.fetchall()]


def _event(seq: int, body: Mapping[str, Any]) -> EventRecord:
    return EventRecord.from_json({**body, "seq": seq})


def _run(row: tuple[Any, ...]) -> Run:
    service, channel, verdict, first, last, counts, set_aside, traffic = row
    return Run(
        service=service,
        channel=channel,
        verdict=verdict,
        first=first,
        last=last,
        counts=tuple(counts),
        set_aside=set_aside,
        traffic=tuple(traffic),
    )


def _span(values: Iterable[int]) -> dict[str, int] | None:
    """The fewest and the most of some counts (None when there are none)."""
    seen = list(values)
    return {"min": min(seen), "max": max(seen)} if seen else None


def display_url(url: str) -> str:
    """The URL as it may be shown: host, port and database, never the user or password."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host = info.get("host", "localhost")
    port = info.get("port", "5432")
    return f"postgresql://{host}:{port}/{info.get('dbname', '')}"


def _reason(exc: psycopg.Error) -> str:
    """The first line of a driver error (its detail lines may quote the connection string)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
