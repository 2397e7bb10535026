"""The SQLite IncidentStore: one file, WAL, a schema version with forward migrations.

Every write is one ``BEGIN IMMEDIATE`` transaction, so the daemon's writer and the CLI
(``slawatch incidents event``) can share the file: a writer waits on the other's lock
for ``busy_timeout`` seconds, and a still-locked database is retried with backoff.
``synchronous=FULL``: a commit survives a crash of the process *and* of the machine,
at the price of one fsync per commit (the daemon commits at most once a second).
Incidents are not stored as rows to update: the ``incidents`` table only indexes them
(state, service, times) for listing and retention; an incident is always the fold of
its append-only events, so concurrent writers can never overwrite each other's changes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from config.loader import config_path
from incidents.commit import plan_events
from incidents.lifecycle import fold
from incidents.model import EventRecord, Incident, Run
from incidents.outbox import Notification
from incidents.store import Batch, HighWater, Pruned, StoreError, VantageRun, closed_at
from probe.attempt import Attempt, Channel, Outcome, prober_source

T = TypeVar("T")

# "SLAW": marks the file as a slawatch store, so another program's database is refused.
APPLICATION_ID = 0x534C4157
BUSY_TIMEOUT_S = 5.0
RETRIES = 8

# Forward migrations: MIGRATIONS[n] takes a store from version n to n + 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE schema_version (version INTEGER NOT NULL);
    INSERT INTO schema_version VALUES (0);
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        state TEXT NOT NULL,
        severity INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        closed_at REAL
    );
    CREATE INDEX incidents_by_state ON incidents (state, service, started_at);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        incident TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        key TEXT,
        kind TEXT NOT NULL,
        at REAL NOT NULL,
        source TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (incident, key)
    );
    CREATE TRIGGER events_append_only BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'incident events are append-only'); END;
    CREATE TABLE runs (
        service TEXT NOT NULL,
        channel TEXT NOT NULL,
        first INTEGER NOT NULL,
        last INTEGER NOT NULL,
        verdict TEXT NOT NULL,
        counts TEXT NOT NULL,
        set_aside INTEGER NOT NULL,
        PRIMARY KEY (service, channel, first)
    ) WITHOUT ROWID;
    CREATE INDEX runs_by_last ON runs (last);
    CREATE TABLE samples (
        service TEXT NOT NULL,
        channel TEXT NOT NULL,
        second INTEGER NOT NULL,
        started_at REAL NOT NULL,
        target TEXT NOT NULL,
        prober TEXT NOT NULL,
        duration_s REAL NOT NULL,
        outcome TEXT NOT NULL,
        phase TEXT NOT NULL,
        detail TEXT NOT NULL,
        timings TEXT NOT NULL
    );
    CREATE INDEX samples_by_second ON samples (service, second);
    CREATE TABLE high_water (
        service TEXT NOT NULL,
        channel TEXT NOT NULL,
        second INTEGER NOT NULL,
        PRIMARY KEY (service, channel)
    ) WITHOUT ROWID;
    CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    """,
    # 1 → 2: the notification outbox. ``seq`` is the delivery order of each channel;
    # ``key`` (the idempotency key) is unique, so a notification is queued at most once.
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        event TEXT NOT NULL,
        incident TEXT,
        created_at REAL NOT NULL,
        document TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'delivered', 'dead')),
        tries INTEGER NOT NULL DEFAULT 0,
        next_at REAL,
        last_error TEXT NOT NULL DEFAULT '',
        done_at REAL
    );
    CREATE INDEX outbox_by_channel ON outbox (state, channel, seq);
    CREATE INDEX outbox_by_incident ON outbox (incident, seq);
    """,
    # 2 → 3: notifications are derived from the event log, which readers follow by ``seq``.
    # The cursor starts at the events already there: they notified under the old scheme.
    """
    INSERT INTO state (key, value)
    SELECT 'notify_cursor', CAST(coalesce(max(seq), 0) AS TEXT) FROM events;
    """,
    # 3 → 4: each run's counts from the customer's ingested traffic (evidence by source).
    """
    ALTER TABLE runs ADD COLUMN traffic TEXT NOT NULL DEFAULT '[]';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def store_path(config_source: str, path: str) -> Path:
    """Where a config's ``storage.path`` points: relative paths start at the config's folder."""
    return config_path(config_source, path)


def _busy(exc: BaseException) -> bool:
    """True for the errors another writer's lock causes (worth a retry)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SqliteStore:
    """An IncidentStore in one SQLite file; safe to share between threads and processes."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = BUSY_TIMEOUT_S,
        retries: int = RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self._retrying = Retrying(
            retry=retry_if_exception(_busy),
            stop=stop_after_attempt(retries),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            sleep=sleep,
            reraise=True,
        )
        # One connection, used by one thread at a time: the daemon commits from a worker
        # thread while the event loop's thread reads for the web API.
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open: {exc}") from None
        try:
            self._retry(self._setup)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"{self.path}: not a usable slawatch store: {exc}") from None
        except StoreError:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite on the last close)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- setup -----------------------------------------------------------------

    def _setup(self) -> None:
        conn = self._conn
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._write() as cur:
            app_id = cur.execute("PRAGMA application_id").fetchone()[0]
            tables = cur.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app_id != APPLICATION_ID and tables:
                raise StoreError(f"{self.path}: not a slawatch store (it has other tables)")
            version = 0
            if tables:
                version = cur.execute("SELECT version FROM schema_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this slawatch "
                    f"understands ({SCHEMA_VERSION}); upgrade slawatch"
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[step]):
                    cur.execute(statement)
                cur.execute("UPDATE schema_version SET version = ?", (step + 1,))
            if not tables:
                cur.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def schema_version(self) -> int:
        """The schema version of the file."""
        return int(self._read("SELECT version FROM schema_version")[0][0])

    # -- plumbing --------------------------------------------------------------

    def _retry(self, func: Callable[[], T]) -> T:
        return self._retrying(func)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One immediate transaction (the write lock is taken up front, never upgraded)."""
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        def run() -> list[Any]:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()

        return self._retry(run)

    # -- writes ----------------------------------------------------------------

    def commit(self, batch: Batch) -> list[Incident]:
        """Write a batch atomically; the incidents it touched, as they now are."""
        if not batch:
            return []

        def run() -> list[Incident]:
            with self._lock, self._write() as cur:
                return _commit(cur, batch)

        return self._retry(run)

    def prune(self, now: float, *, keep_runs: float, keep_samples: float) -> Pruned:
        """Drop what retention no longer keeps (``keep_*`` in seconds before ``now``)."""

        def run() -> Pruned:
            with self._lock, self._write() as cur:
                runs = cur.execute("DELETE FROM runs WHERE last < ?", (now - keep_runs,)).rowcount
                samples = cur.execute(
                    "DELETE FROM samples WHERE second < ?", (now - keep_samples,)
                ).rowcount
                incidents = cur.execute(
                    "DELETE FROM incidents WHERE closed_at IS NOT NULL AND closed_at < ?",
                    (now - keep_runs,),
                ).rowcount
                cur.execute("DELETE FROM outbox WHERE done_at < ?", (now - keep_runs,))
            return Pruned(runs=runs, samples=samples, incidents=incidents)

        return self._retry(run)

    def mark_delivered(self, key: str, *, at: float) -> None:
        """Record that the notification ``key`` was delivered."""
        self._update(
            "UPDATE outbox SET state = 'delivered', tries = tries + 1, done_at = ?, "
            "next_at = NULL WHERE key = ?",
            (at, key),
        )

    def mark_failed(self, key: str, *, tries: int, next_at: float, error: str) -> None:
        """Record a failed try: ``tries`` made so far, the next not before ``next_at``."""
        self._update(
            "UPDATE outbox SET tries = ?, next_at = ?, last_error = ? WHERE key = ?",
            (tries, next_at, error, key),
        )

    def mark_dead(self, key: str, *, tries: int, at: float, error: str) -> None:
        """Dead-letter the notification ``key``: no more tries; kept for people to see."""
        self._update(
            "UPDATE outbox SET state = 'dead', tries = ?, done_at = ?, next_at = NULL, "
            "last_error = ? WHERE key = ?",
            (tries, at, error, key),
        )

    def enqueue(self, notes: Sequence[Notification], *, cursor: int | None = None) -> None:
        """Queue notifications (a key already held is ignored); move the cursor with them."""
        if not notes and cursor is None:
            return

        def run() -> None:
            with self._lock, self._write() as cur:
                _enqueue(cur, notes)
                if cursor is not None:
                    cur.execute(
                        "INSERT INTO state (key, value) VALUES ('notify_cursor', ?1) "
                        "ON CONFLICT (key) DO UPDATE SET value = "
                        "max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                        (str(cursor),),
                    )

        self._retry(run)

    def _update(self, sql: str, params: tuple[Any, ...]) -> None:
        def run() -> None:
            with self._lock, self._write() as cur:
                cur.execute(sql, params)

        self._retry(run)

    # -- reads -----------------------------------------------------------------

    def pending(self, channel: str | None = None, *, limit: int = 100) -> list[Notification]:
        """Undelivered notifications (of one channel, or all), in enqueue order."""
        rows = self._read(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox "  # noqa: S608  (constant columns)
            "WHERE state = 'pending' AND (?1 IS NULL OR channel = ?1) ORDER BY seq LIMIT ?2",
            (channel, limit),
        )
        return [_notification(row) for row in rows]

    def notifications(
        self, *, incident: str | None = None, state: str | None = None
    ) -> list[Notification]:
        """Outbox records (optionally of one incident and one state), in enqueue order."""
        rows = self._read(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox "  # noqa: S608  (constant columns)
            "WHERE (?1 IS NULL OR incident = ?1) "
            "AND (?2 IS NULL OR state = ?2) ORDER BY seq",
            (incident, state),
        )
        return [_notification(row) for row in rows]

    def vantage(self, first: int, last: int, incident: tuple[int, int]) -> dict[str, Any] | None:
        """None: a single instance pools nothing (``IncidentStore.vantage``)."""
        del first, last, incident
        return None

    def vantage_seconds(self, first: int, last: int) -> list[VantageRun] | None:
        """None: a single instance pools nothing (``IncidentStore.vantage_seconds``)."""
        del first, last
        return None

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        """How many notifications each (channel, state) holds."""
        rows = self._read("SELECT channel, state, count(*) FROM outbox GROUP BY channel, state")
        return {(channel, state): count for channel, state, count in rows}

    def get(self, incident_id: str) -> Incident | None:
        """The incident called ``incident_id``, or None."""
        return fold(self.events(incident_id))

    def incidents(self, *, state: str | None = None, service: str | None = None) -> list[Incident]:
        """Incidents (optionally of one state and service), oldest start first."""
        rows = self._read(
            "SELECT e.seq, e.body FROM incidents i JOIN events e ON e.incident = i.id "
            "WHERE (?1 IS NULL OR i.state = ?1) AND (?2 IS NULL OR i.service = ?2) "
            "ORDER BY i.started_at, i.id, e.seq",
            (state, service),
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
            "SELECT seq, body FROM events WHERE incident = ? ORDER BY seq", (incident_id,)
        )
        return [_event(seq, body) for seq, body in rows]

    def events_since(self, cursor: int, *, limit: int = 1000) -> list[EventRecord]:
        """Events with ``seq`` above ``cursor``, in commit order.

        ``seq`` is assigned inside each write transaction, and SQLite has one writer at a
        time, so seq order is commit order: a reader never skips a later-committed event.
        """
        rows = self._read(
            "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, limit)
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
            "WHERE service = ?1 AND (?2 IS NULL OR channel = ?2) AND first <= ?4 AND last >= ?3 "
            "ORDER BY channel, first",
            (service, channel, first, last),
        )
        return [_run(row) for row in rows]

    def last_runs(self) -> list[Run]:
        """The latest run of every (service, channel)."""
        rows = self._read(
            "SELECT r.service, r.channel, r.verdict, r.first, r.last, r.counts, r.set_aside, "
            "r.traffic FROM runs r JOIN (SELECT service, channel, max(first) AS first FROM runs "
            "GROUP BY service, channel) m USING (service, channel, first) "
            "ORDER BY r.service, r.channel"
        )
        return [_run(row) for row in rows]

    def samples(self, service: str, first: int, last: int) -> list[Attempt]:
        """Sampled attempts of a service started in seconds ``first..last``, in time order."""
        rows = self._read(
            "SELECT service, channel, target, prober, started_at, duration_s, outcome, phase, "
            "detail, timings FROM samples WHERE service = ? AND second BETWEEN ? AND ? "
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
                timings=json.loads(row[9]),
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
        state: dict[str, Any] = json.loads(rows[0][0])
        return state


def _statements(script: str) -> list[str]:
    """Split a migration into statements (a trigger body keeps its inner semicolons)."""
    out: list[str] = []
    current = ""
    for part in script.split(";"):
        current += part + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                out.append(current.strip())
            current = ""
    return out


def _commit(cur: sqlite3.Cursor, batch: Batch) -> list[Incident]:
    plan = plan_events(
        batch.events,
        recorded=lambda incident, key: (
            cur.execute(
                "SELECT 1 FROM events WHERE incident = ? AND key = ?", (incident, key)
            ).fetchone()
            is not None
        ),
        stored=lambda incident: fold(_events_of(cur, incident)),
    )
    for incident_id in sorted(plan.created):
        created = plan.incidents[incident_id]
        cur.execute(
            "INSERT INTO incidents (id, service, state, severity, started_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (created.id, created.service, created.state, created.severity, created.started_at),
        )
    for event in plan.added:
        body = event.to_json()
        del body["seq"]
        cur.execute(
            "INSERT INTO events (incident, key, kind, at, source, recorded_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
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
            "UPDATE incidents SET state = ?, severity = ?, closed_at = ? WHERE id = ?",
            (incident.state, incident.severity, closed_at(incident), incident.id),
        )
    cur.executemany(
        "INSERT INTO runs (service, channel, first, last, verdict, counts, set_aside, traffic) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (service, channel, first) DO UPDATE SET "
        "last = excluded.last, verdict = excluded.verdict, counts = excluded.counts, "
        "set_aside = excluded.set_aside, traffic = excluded.traffic",
        [
            (
                r.service,
                r.channel,
                r.first,
                r.last,
                r.verdict,
                json.dumps(r.counts),
                r.set_aside,
                json.dumps(r.traffic),
            )
            for r in batch.runs
        ],
    )
    cur.executemany(
        "INSERT INTO samples (service, channel, second, started_at, target, prober, duration_s, "
        "outcome, phase, detail, timings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    cur.executemany(
        "INSERT INTO high_water (service, channel, second) VALUES (?, ?, ?) "
        "ON CONFLICT (service, channel) DO UPDATE SET second = max(second, excluded.second)",
        [(service, channel, second) for (service, channel), second in batch.high_water.items()],
    )
    if batch.classifier_state is not None:
        cur.execute(
            "INSERT INTO state (key, value) VALUES ('classifier', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (json.dumps(batch.classifier_state, sort_keys=True),),
        )
    return plan.touched()


def _enqueue(cur: sqlite3.Cursor, notes: Sequence[Notification]) -> None:
    cur.executemany(
        "INSERT INTO outbox (key, channel, event, incident, created_at, document, next_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
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


_OUTBOX_COLUMNS = (
    "seq, key, channel, event, incident, created_at, document, state, tries, next_at, "
    "last_error, done_at"
)


def _notification(row: tuple[Any, ...]) -> Notification:
    seq, key, channel, event, incident, created_at, document, state, tries, next_at = row[:10]
    return Notification(
        key=key,
        channel=channel,
        event=event,
        created_at=created_at,
        document=json.loads(document),
        incident=incident,
        seq=seq,
        state=state,
        tries=tries,
        next_at=next_at,
        last_error=row[10],
        done_at=row[11],
    )


def _events_of(cur: sqlite3.Cursor, incident_id: str) -> list[EventRecord]:
    rows = cur.execute(
        "SELECT seq, body FROM events WHERE incident = ? ORDER BY seq", (incident_id,)
    ).fetchall()
    return [_event(seq, body) for seq, body in rows]


def _event(seq: int, body: str) -> EventRecord:
    data: Mapping[str, Any] = json.loads(body)
    return EventRecord.from_json({**data, "seq": seq})


def _run(row: tuple[Any, ...]) -> Run:
    service, channel, verdict, first, last, counts, set_aside, traffic = row
    return Run(
        service=service,
        channel=channel,
        verdict=verdict,
        first=first,
        last=last,
        counts=tuple(json.loads(counts)),
        set_aside=set_aside,
        traffic=tuple(json.loads(traffic)),
    )
