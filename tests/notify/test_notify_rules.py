"""Which events notify which channels, and the outbox: against the memory and the SQLite store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from classifier.signals import Opened
from config import LoadedConfig
from incidents.lifecycle import LifecycleError, incident_clocks, signal_event, user_event
from incidents.memory_store import MemoryStore
from incidents.sqlite_store import SCHEMA_VERSION, SqliteStore
from incidents.store import Batch, IncidentStore
from notify.rules import NotifyRules
from sla.terms import freeze_terms
from slawatch.follower import EventFollower
from tests.notify.notify_fixtures import BASE_URL, EVENTS, INCIDENT, STORY, T0, config, story


def rules_for(channels: str) -> tuple[NotifyRules, object]:
    loaded = config(channels)
    return NotifyRules(loaded.config.notify, base_url=BASE_URL, prober="eu-1"), loaded


ALL = "  - {name: all, type: slack, url: https://hooks.example.com/a}\n"


def test_every_event_type_is_queued_once(store: IncidentStore) -> None:
    """An incident's whole life queues one notification per event type, in order, none twice."""
    loaded = config(ALL)
    rules = NotifyRules(loaded.config.notify, base_url=BASE_URL, prober="eu-1")
    story(loaded, rules, store)
    notes = store.pending("all")
    assert [n.event for n in notes] == STORY
    assert sorted({n.event for n in notes}) == sorted(EVENTS)
    assert len({n.key for n in notes}) == len(notes)
    assert all(n.document["idempotency_key"] == n.key for n in notes)
    assert [n.seq for n in notes] == sorted(n.seq for n in notes)  # type: ignore[type-var]


def test_document_carries_the_incident_clocks_and_links(store: IncidentStore) -> None:
    """The upgrade's document: service, provider severity, times, clocks and links."""
    loaded = config(ALL)
    rules = NotifyRules(loaded.config.notify, base_url=BASE_URL + "/", prober="eu-1")
    story(loaded, rules, store)
    by_event = {n.event: n.document for n in store.pending("all")}
    upgraded = by_event["upgraded"]
    # DESIGN.md §10's incident object (the one incident projection carries more besides).
    design = {
        "id": INCIDENT,
        "service": "bird",
        "state": "open",
        "severity": 1,
        "provider_severity": "Critical Issue",
        "started_at": "2026-11-02T10:00:00Z",
        "detected_at": "2026-11-02T10:00:10Z",
        "restored_at": None,
        "resolved_at": None,
        "channels": ["api"],
        "ticket": None,
    }
    assert {k: v for k, v in upgraded["incident"].items() if k in design} == design
    assert upgraded["incident"]["severity_changes"] == [
        {"at": "2026-11-02T10:01:00Z", "from": 2, "to": 1, "source": "classifier"}
    ]
    assert upgraded["previous_severity"] == 2
    assert upgraded["previous_provider_severity"] == "Non-Critical Issue"
    assert upgraded["clocks"]["first_response"]["deadline"] == "2026-11-02T10:15:10Z"
    assert upgraded["links"] == {
        "incident": f"{BASE_URL}/api/v1/incidents/{INCIDENT}",
        "evidence": f"{BASE_URL}/api/v1/incidents/{INCIDENT}/evidence?format=md",
    }
    assert by_event["clock_due"]["clock"] == "first_response"
    assert by_event["clock_breached"]["clocks"]["first_response"]["state"] == "breached"
    assert by_event["clock_breached"]["escalation"] == "Severity 1 line, 24x7x365"
    assert by_event["restored"]["incident"]["restored_at"] == "2026-11-02T10:16:40Z"
    assert by_event["resolved"]["incident"]["state"] == "resolved"
    assert by_event["resolved"]["note"] == "fixed"
    assert by_event["prober_unhealthy"]["prober"] == {
        "id": "eu-1",
        "check": "misconfigured:bird/send",
        "service": "bird",
        "target": "send",
        "detail": "misconfigured: bad URL",
    }


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param("", list(EVENTS), id="everything"),
        pytest.param("events: [opened, resolved]", ["opened", "resolved"], id="events"),
        pytest.param("services: [other]", [], id="other-service"),
        pytest.param("services: [bird]", list(EVENTS), id="this-service"),
        pytest.param(
            "severities: [2]", ["opened", "prober_unhealthy"], id="severity-2-before-upgrade"
        ),
        pytest.param("severities: [1], events: [clock_breached]", ["clock_breached"], id="both"),
    ],
)
def test_channel_filters(filters: str, expected: list[str]) -> None:
    """Each channel's events, services and severities filters select what it is sent."""
    extra = f", {filters}" if filters else ""
    loaded = config(f"  - {{name: f, type: slack, url: https://h.example.com/x{extra}}}\n")
    rules = NotifyRules(loaded.config.notify, base_url=BASE_URL)
    store = MemoryStore()
    story(loaded, rules, store)
    got = [n.event for n in store.pending("f")]
    assert sorted(got) == sorted(expected)


def follower_of(store: IncidentStore, loaded: LoadedConfig) -> EventFollower:
    """A follower of ``store`` as a (re)started daemon has one."""
    follower = EventFollower(NotifyRules(loaded.config.notify, base_url=BASE_URL))
    follower.start(store)
    return follower


def test_retried_batch_and_restart_queue_nothing_twice(store: IncidentStore) -> None:
    """A batch committed again, a log read again, or clocks re-examined after a restart add
    no notification: the keys come from the causes, the cursor is stored with the outbox."""
    loaded = config(ALL)
    terms = freeze_terms(loaded.config.service("bird"), loaded.catalog, loaded.calendars(), at=T0)
    event = signal_event(
        Opened("bird", INCIDENT, 1, "Critical Issue", T0, T0 + 10, ("api",)),
        terms,
        source="classifier",
    )
    follower = follower_of(store, loaded)
    store.commit(Batch(events=[event]))
    store.commit(Batch(events=[event]))
    follower.sync(store)
    follower.cursor = 0  # a reader that reads the whole log again
    follower.sync(store)
    at = T0 + 10 + 901
    for fresh in (follower, follower_of(store, loaded)):
        fresh.refresh(at, ["bird"])
        fresh.sync(store)
    assert [n.event for n in store.pending()] == ["opened", "clock_breached"]
    assert store.notify_cursor() == 1


def test_events_of_any_writer_notify_once(store: IncidentStore) -> None:
    """A user event written by another process (no rules at hand) notifies at the next sync."""
    loaded = config(ALL)
    terms = freeze_terms(loaded.config.service("bird"), loaded.catalog, loaded.calendars(), at=T0)
    opened = Opened("bird", INCIDENT, 1, "Critical Issue", T0, T0 + 10, ("api",))
    store.commit(Batch(events=[signal_event(opened, terms, source="classifier")]))
    follower = follower_of(store, loaded)
    follower.sync(store)
    resolved = user_event(INCIDENT, "resolved", at=T0 + 50, source="cli", recorded_at=T0 + 50)
    store.commit(Batch(events=[resolved]))
    assert INCIDENT in follower.open
    follower.sync(store)
    follower.sync(store)
    assert [n.event for n in store.pending()] == ["opened", "resolved"]
    assert INCIDENT not in follower.open


def test_replayed_history_notifies_nobody(store: IncidentStore) -> None:
    """Events filed by ``slawatch replay --store`` are history, not news."""
    loaded = config(ALL)
    terms = freeze_terms(loaded.config.service("bird"), loaded.catalog, loaded.calendars(), at=T0)
    opened = Opened("bird", INCIDENT, 1, "Critical Issue", T0, T0 + 10, ("api",))
    store.commit(Batch(events=[signal_event(opened, terms, source="replay")]))
    follower = follower_of(store, loaded)
    follower.sync(store)
    assert store.pending() == []
    assert store.notify_cursor() == 1


def test_a_refused_event_queues_nothing(store: IncidentStore) -> None:
    """An event that cannot apply is not written, so nothing follows from it."""
    loaded = config(ALL)
    follower = follower_of(store, loaded)
    bad = user_event("nope", "resolved", at=T0, source="cli", recorded_at=T0)
    with pytest.raises(LifecycleError):
        store.commit(Batch(events=[bad]))
    follower.sync(store)
    assert store.pending() == []


@pytest.mark.parametrize(
    ("before_deadline", "due"),
    [
        pytest.param(601, False, id="601s-before"),
        pytest.param(600, True, id="600s-before"),
        pytest.param(1, True, id="1s-before"),
        pytest.param(0, False, id="at-deadline"),
    ],
)
def test_due_soon_lead(before_deadline: int, *, due: bool) -> None:
    """``clock_due`` is queued within the 10-minute lead of a running clock's deadline."""
    loaded = config(ALL)
    rules = NotifyRules(loaded.config.notify, base_url=BASE_URL)
    store = MemoryStore()
    terms = freeze_terms(loaded.config.service("bird"), loaded.catalog, loaded.calendars(), at=T0)
    opened = Opened("bird", INCIDENT, 1, "Critical Issue", T0, T0 + 10, ("api",))
    store.commit(Batch(events=[signal_event(opened, terms, source="classifier")]))
    incident = store.get(INCIDENT)
    assert incident is not None
    now = T0 + 10 + 900 - before_deadline
    notes = rules.clocks(incident, incident_clocks(incident, store.events(INCIDENT), now), now)
    assert ["clock_due"] * due == [n.event for n in notes if n.event == "clock_due"]


def test_prober_health_notifies_once_per_fault() -> None:
    """A check that stays unhealthy notifies once; after recovering, a new fault notifies again."""
    loaded = config(ALL)
    rules = NotifyRules(loaded.config.notify, base_url=BASE_URL, prober="eu-1")
    notes = [
        note
        for at, healthy in [(1, False), (2, False), (3, True), (4, True), (5, False)]
        for note in rules.prober_health(
            "launch_lag", healthy=healthy, now=T0 + at, detail="lag 2.5s"
        )
    ]
    assert [n.document["at"] for n in notes] == ["2026-11-02T10:00:01Z", "2026-11-02T10:00:05Z"]


def test_outbox_states_and_counts(store: IncidentStore) -> None:
    """Delivered and dead notifications leave the queue; counts and the record say so."""
    loaded = config(ALL)
    rules = NotifyRules(loaded.config.notify, base_url=BASE_URL)
    story(loaded, rules, store)
    first, second, *rest = store.pending("all")
    store.mark_failed(first.key, tries=1, next_at=T0 + 5, error="HTTP 503")
    (again,) = store.pending("all", limit=1)
    assert (again.key, again.tries, again.next_at, again.last_error) == (
        first.key,
        1,
        T0 + 5,
        "HTTP 503",
    )
    store.mark_delivered(first.key, at=T0 + 6)
    store.mark_dead(second.key, tries=10, at=T0 + 7, error="HTTP 500")
    assert [n.key for n in store.pending("all")] == [n.key for n in rest]
    assert store.outbox_counts() == {
        ("all", "pending"): len(rest),
        ("all", "delivered"): 1,
        ("all", "dead"): 1,
    }
    (dead,) = store.notifications(incident=INCIDENT, state="dead")
    assert (dead.tries, dead.done_at, dead.last_error) == (10, T0 + 7, "HTTP 500")
    (delivered,) = store.notifications(state="delivered")
    assert (delivered.tries, delivered.done_at) == (2, T0 + 6)
    # Retention drops finished notifications with the runs, never pending ones.
    store.prune(T0 + 100, keep_runs=10, keep_samples=10)
    assert store.outbox_counts() == {("all", "pending"): len(rest)}


def test_sqlite_outbox_migration(tmp_path: Path) -> None:
    """The outbox arrives as a new schema version, and survives reopening the file."""
    path = tmp_path / "s.db"
    loaded = config(ALL)
    with SqliteStore(path) as store:
        # The outbox came with version 3; later versions keep it.
        assert store.schema_version() == SCHEMA_VERSION >= 3
        story(loaded, NotifyRules(loaded.config.notify, base_url=BASE_URL), store)
    with SqliteStore(path) as store:
        assert len(store.pending()) == 8


def test_sqlite_migration_starts_the_cursor_after_existing_events(tmp_path: Path) -> None:
    """A store from before the event-log cursor does not notify its old events again."""
    path = tmp_path / "s.db"
    loaded = config(ALL)
    terms = freeze_terms(loaded.config.service("bird"), loaded.catalog, loaded.calendars(), at=T0)
    opened = Opened("bird", INCIDENT, 1, "Critical Issue", T0, T0 + 10, ("api",))
    with SqliteStore(path) as store:
        store.commit(Batch(events=[signal_event(opened, terms, source="classifier")]))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM state WHERE key = 'notify_cursor'")
        # Back to version 2: without what later versions added.
        conn.execute("ALTER TABLE runs DROP COLUMN traffic")
        conn.execute("UPDATE schema_version SET version = 2")
    conn.close()
    with SqliteStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.notify_cursor() == 1
        follower_of(store, loaded).sync(store)
        assert store.pending() == []
