"""The same store scenarios against the memory and the SQLite IncidentStore."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from classifier.signals import Opened, Reopened, Restored, Upgraded
from incidents.lifecycle import LifecycleError, signal_event, user_event
from incidents.model import Run, SlaTerms
from incidents.sqlite_store import SCHEMA_VERSION, SqliteStore, store_path
from incidents.store import Batch, IncidentStore, StoreError
from probe.attempt import Attempt, Channel, Outcome, Source

T = 1_793_613_600
TERMS = SlaTerms(
    names={"1": "Critical Issue", "2": "Non-Critical Issue", "3": "Non-Critical Issue"}
)
ZERO = (0,) * 9


def opened(incident: str = "bird-1", started: int = T, severity: int = 2) -> Opened:
    return Opened(
        "bird", incident, severity, TERMS.name_of(severity), started, started + 11, ("api",)
    )


def ev(signal: Opened | Upgraded | Restored | Reopened):  # type: ignore[no-untyped-def]
    return signal_event(signal, TERMS, source="classifier")


def test_open_upgrade_restore_reopen_is_one_incident(store: IncidentStore) -> None:
    """Signals fold into one incident: upgraded, restored, then reopened instead of duplicated."""
    store.commit(Batch(events=[ev(opened())]))
    store.commit(
        Batch(events=[ev(Upgraded("bird", "bird-1", 2, 1, "Critical Issue", T, T + 60, ("api",)))])
    )
    store.commit(Batch(events=[ev(Restored("bird", "bird-1", 1, T + 90, T + 210, ("api",)))]))
    assert store.get("bird-1").state == "restored"  # type: ignore[union-attr]
    touched = store.commit(
        Batch(
            events=[
                ev(
                    Reopened(
                        "bird",
                        "bird-1",
                        1,
                        1,
                        "Critical Issue",
                        T + 300,
                        T + 311,
                        T + 90,
                        ("api", "smtp"),
                    )
                )
            ]
        )
    )
    incident = store.get("bird-1")
    assert incident is not None
    assert touched == [incident]
    assert (incident.state, incident.severity, incident.opened_severity) == ("open", 1, 2)
    assert incident.restored_at is None
    assert incident.reopened_at == (T + 311,)
    assert incident.channels == ("api", "smtp")
    assert [(c.from_severity, c.to_severity) for c in incident.severity_changes] == [(2, 1)]
    assert [e.kind for e in store.events("bird-1")] == [
        "opened",
        "upgraded",
        "restored",
        "reopened",
    ]
    assert [i.id for i in store.incidents()] == ["bird-1"]


def test_replayed_signal_events_are_not_recorded_twice(store: IncidentStore) -> None:
    """A batch committed again (a retry after a crash) adds no event and no incident."""
    batch = Batch(
        events=[ev(opened()), ev(Restored("bird", "bird-1", 2, T + 30, T + 150, ("api",)))]
    )
    store.commit(batch)
    store.commit(Batch(events=list(batch.events)))
    assert len(store.incidents()) == 1
    assert [e.kind for e in store.events("bird-1")] == ["opened", "restored"]
    assert [e.seq for e in store.events("bird-1")] == sorted(
        {e.seq for e in store.events("bird-1")}
    )


@pytest.mark.parametrize(
    ("kind", "extra", "state", "expected"),
    [
        pytest.param(
            "ticket_opened", {"ticket": "CS-42"}, "open", ("ticket", "CS-42"), id="ticket"
        ),
        pytest.param("severity_changed", {"severity": 1}, "open", ("severity", 1), id="severity"),
        pytest.param(
            "resolved",
            {"note": "RCA received"},
            "resolved",
            ("resolution", "RCA received"),
            id="resolved",
        ),
        pytest.param(
            "provider_responded", {}, "open", ("severity", 2), id="response-only-moves-clocks"
        ),
    ],
)
def test_user_events_change_the_incident(
    store: IncidentStore,
    kind: str,
    extra: dict[str, object],
    state: str,
    expected: tuple[str, object],
) -> None:
    """A user event is appended with its source and changes what its kind changes."""
    store.commit(Batch(events=[ev(opened())]))
    event = user_event("bird-1", kind, at=T + 100, source="cli", recorded_at=T + 120, **extra)  # type: ignore[arg-type]
    store.commit(Batch(events=[event]))
    incident = store.get("bird-1")
    assert incident is not None
    assert incident.state == state
    attribute, value = expected
    assert getattr(incident, attribute) == value
    last = store.events("bird-1")[-1]
    assert (last.kind, last.source, last.at, last.recorded_at) == (kind, "cli", T + 100, T + 120)


def test_a_rejected_event_writes_nothing(store: IncidentStore) -> None:
    """An event that cannot apply (after resolution) rolls back the whole batch."""
    store.commit(Batch(events=[ev(opened())]))
    store.commit(
        Batch(
            events=[user_event("bird-1", "resolved", at=T + 50, source="api", recorded_at=T + 50)]
        )
    )
    late = user_event("bird-1", "provider_updated", at=T + 60, source="cli", recorded_at=T + 60)
    run = Run("bird", "api", "available", T, T, ZERO)
    with pytest.raises(LifecycleError, match="resolved"):
        store.commit(Batch(events=[late], runs=[run], high_water={("bird", "api"): T}))
    assert [e.kind for e in store.events("bird-1")] == ["opened", "resolved"]
    assert store.runs("bird", None, 0, 2 * T) == []
    assert store.high_water() == {}


def test_an_event_for_an_unknown_incident_is_refused(store: IncidentStore) -> None:
    """Events name an existing incident."""
    with pytest.raises(LifecycleError, match="no such incident"):
        store.commit(
            Batch(events=[user_event("nope", "resolved", at=T, source="cli", recorded_at=T)])
        )
    assert store.get("nope") is None


def test_runs_are_upserted_and_queried_by_overlap(store: IncidentStore) -> None:
    """A growing run is rewritten longer; queries return runs overlapping the range."""
    ok = (1, *ZERO[1:])
    store.commit(
        Batch(
            runs=[Run("bird", "api", "available", T, T + 5, ok)],
            high_water={("bird", "api"): T + 5},
        )
    )
    store.commit(
        Batch(
            runs=[
                Run("bird", "api", "available", T, T + 9, ok),
                Run("bird", "api", "unavailable", T + 10, T + 12, (0, 1, *ZERO[2:])),
                Run("bird", "combined", "unavailable", T + 10, T + 12, (0, 1, *ZERO[2:])),
            ],
            high_water={("bird", "api"): T + 12, ("bird", "combined"): T + 12},
        )
    )
    assert [(r.first, r.last) for r in store.runs("bird", "api", T, T + 100)] == [
        (T, T + 9),
        (T + 10, T + 12),
    ]
    assert [r.channel for r in store.runs("bird", None, T + 11, T + 11)] == ["api", "combined"]
    assert store.runs("bird", "api", T + 13, T + 20) == []
    assert [(r.channel, r.first) for r in store.last_runs()] == [
        ("api", T + 10),
        ("combined", T + 10),
    ]
    assert store.high_water() == {("bird", "api"): T + 12, ("bird", "combined"): T + 12}


def test_runs_alone_carry_no_vantage(store: IncidentStore) -> None:
    """Runs without pooled seconds: a fleet's store has no vantage runs, one instance's none at
    all (its evidence records say 1 and 1 where monitored), and neither has a vantage part."""
    store.commit(Batch(runs=[Run("bird", "combined", "available", T, T + 9, (1,), 0)]))
    fleet = store.where.startswith("postgresql://")
    assert store.vantage_seconds(T, T + 9) == ([] if fleet else None)
    assert store.vantage(T, T + 9, (T, T + 9)) is None


def test_classifier_state_travels_with_the_batch(store: IncidentStore) -> None:
    """The latest committed classifier snapshot is returned as committed."""
    assert store.classifier_state() is None
    store.commit(Batch(classifier_state={"next_second": T, "machines": {}}))
    store.commit(
        Batch(classifier_state={"next_second": T + 1, "machines": {"bird": {"x": [1, None]}}})
    )
    assert store.classifier_state() == {
        "next_second": T + 1,
        "machines": {"bird": {"x": [1, None]}},
    }


def _attempt(second: int, target: str = "send", outcome: Outcome = Outcome.TIMEOUT) -> Attempt:
    return Attempt(
        "bird",
        Channel.API,
        target,
        "eu-1",
        second + 0.25,
        10.0,
        outcome,
        "headers",
        "504",
        {"connect": 0.01},
    )


def test_samples_round_trip(store: IncidentStore) -> None:
    """Sampled attempts come back whole, in time order, for the seconds asked."""
    samples = [_attempt(T + 2), _attempt(T), _attempt(T + 1, "other", Outcome.OK)]
    store.commit(Batch(samples=samples))
    assert store.samples("bird", T, T + 1) == [samples[1], samples[2]]
    assert store.samples("other", T, T + 5) == []


def test_traffic_counts_and_sources_round_trip(store: IncidentStore) -> None:
    """A run's counts from ingested traffic and a traffic sample's source come back as written."""
    counts = (3, 2, *ZERO[2:])
    traffic = (2, 1, *ZERO[2:])
    store.commit(
        Batch(
            runs=[
                Run("bird", "api", "partial", T, T + 3, counts, 0, traffic),
                Run("bird", "smtp", "available", T, T + 3, (1, *ZERO[1:])),
            ]
        )
    )
    assert [r.traffic for r in store.runs("bird", None, T, T + 3)] == [traffic, ()]
    assert [r.traffic for r in store.last_runs()] == [traffic, ()]
    sample = Attempt(
        "bird",
        Channel.API,
        "traffic",
        "traffic:checkout",
        T + 0.5,
        0.2,
        Outcome.SERVER_ERROR,
        detail="HTTP 500",
        source=Source.TRAFFIC,
    )
    store.commit(Batch(samples=[sample, _attempt(T)]))
    assert [a.source for a in store.samples("bird", T, T)] == [Source.PROBE, Source.TRAFFIC]
    assert store.samples("bird", T, T)[1] == sample


def test_sqlite_store_of_version_3_gains_traffic_counts(tmp_path: Path) -> None:
    """Runs written before traffic counts existed read back with none after the migration."""
    path = tmp_path / "s.db"
    with SqliteStore(path) as store:
        store.commit(Batch(runs=[Run("bird", "api", "available", T, T + 5, (1, *ZERO[1:]))]))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("ALTER TABLE runs DROP COLUMN traffic")
        conn.execute("UPDATE schema_version SET version = 3")
    conn.close()
    with SqliteStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert [r.traffic for r in store.runs("bird", "api", T, T + 5)] == [()]


def test_incidents_filter_by_state_and_service(store: IncidentStore) -> None:
    """Listing filters by state and by service, oldest start first."""
    second = Opened("mail", "mail-1", 3, "General", T - 50, T - 40, ("smtp",))
    store.commit(Batch(events=[ev(opened()), signal_event(second, TERMS, source="replay")]))
    store.commit(Batch(events=[ev(Restored("mail", "mail-1", 3, T - 10, T + 110, ("smtp",)))]))
    assert [i.id for i in store.incidents()] == ["mail-1", "bird-1"]
    assert [i.id for i in store.incidents(state="open")] == ["bird-1"]
    assert [i.id for i in store.incidents(state="restored", service="mail")] == ["mail-1"]
    assert store.incidents(state="resolved") == []


def test_retention_drops_only_what_is_old(store: IncidentStore) -> None:
    """Old runs, samples and closed incidents go; open incidents and recent data stay."""
    day = 86_400
    store.commit(
        Batch(
            events=[
                ev(opened("old", T - 500 * day)),
                ev(Restored("bird", "old", 2, T - 500 * day + 30, T - 500 * day + 150, ("api",))),
                ev(opened("open", T - 450 * day)),
            ],
            runs=[
                Run("bird", "api", "available", T - 420 * day, T - 401 * day, ZERO),
                Run("bird", "api", "available", T - 401 * day + 1, T, ZERO),
            ],
            samples=[_attempt(T - 91 * day), _attempt(T - 89 * day)],
        )
    )
    pruned = store.prune(T, keep_runs=400 * day, keep_samples=90 * day)
    assert (pruned.runs, pruned.samples, pruned.incidents) == (1, 1, 1)
    assert [i.id for i in store.incidents()] == ["open"]
    assert store.events("old") == []
    assert [r.first for r in store.runs("bird", "api", 0, 2 * T)] == [T - 401 * day + 1]
    assert [a.second for a in store.samples("bird", 0, 2 * T)] == [T - 89 * day]


def test_sqlite_file_is_wal_full_sync_and_versioned(tmp_path: Path) -> None:
    """The file is in WAL mode at schema version SCHEMA_VERSION, and reopening it keeps its data."""
    path = tmp_path / "s.db"
    with SqliteStore(path) as store:
        store.commit(Batch(events=[ev(opened())]))
        assert store.schema_version() == SCHEMA_VERSION
    with SqliteStore(path) as again:
        assert again.get("bird-1") is not None
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_sqlite_events_are_append_only(tmp_path: Path) -> None:
    """Even a direct UPDATE of an event row is refused by the schema."""
    path = tmp_path / "s.db"
    with SqliteStore(path) as store:
        store.commit(Batch(events=[ev(opened())]))
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE events SET kind = 'resolved'")
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        pytest.param(
            "CREATE TABLE other (x INTEGER)", "not a slawatch store", id="foreign-database"
        ),
        pytest.param(None, "newer than this slawatch", id="newer-schema"),
    ],
)
def test_sqlite_refuses_files_it_cannot_own(
    tmp_path: Path, prepare: str | None, message: str
) -> None:
    """Another program's database, or a store from a newer slawatch, is refused with a reason."""
    path = tmp_path / "s.db"
    if prepare is None:
        SqliteStore(path).close()
        prepare = "UPDATE schema_version SET version = 999"
    conn = sqlite3.connect(path)
    try:
        conn.execute(prepare)
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(StoreError, match=message):
        SqliteStore(path)


def test_sqlite_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    """A text file named as the store is refused, not overwritten."""
    path = tmp_path / "s.db"
    path.write_text("hello, this is not a database\n" * 100)
    with pytest.raises(StoreError, match="not a usable slawatch store"):
        SqliteStore(path)


@pytest.mark.parametrize(
    ("config", "path", "expected"),
    [
        pytest.param("etc/slawatch.yaml", "data/s.db", "etc/data/s.db", id="relative-to-config"),
        pytest.param("etc/slawatch.yaml", "/var/lib/s.db", "/var/lib/s.db", id="absolute"),
    ],
)
def test_store_path_resolves_against_the_config_folder(
    tmp_path: Path, config: str, path: str, expected: str
) -> None:
    """A relative storage.path is found next to the config file, wherever the CLI runs."""
    resolved = store_path(str(tmp_path / config), path)
    assert resolved == (Path(expected) if expected.startswith("/") else tmp_path / expected)
