"""The fleet tables on a real PostgreSQL: joining, atomic publishing, the fenced lease, claims."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from classifier.pooling import PackError, ProberSecond, pool
from classifier.verdict import OUTCOME_INDEX, OUTCOMES
from incidents.lifecycle import signal_event
from incidents.outbox import Notification
from incidents.store import Batch
from probe.attempt import Attempt, Channel, Outcome
from probe.clock import SystemClock
from tests.incidents.test_store import TERMS, opened
from tests.support.postgres import PgCluster

LANES = (("bird", Channel.API), ("bird", Channel.SMTP))
T0 = 1_790_000_000
DIGEST = "d" * 64


def _counts(**by_outcome: int) -> tuple[int, ...]:
    row = [0] * len(OUTCOMES)
    for name, n in by_outcome.items():
        row[OUTCOME_INDEX[Outcome(name)]] = n
    return tuple(row)


@pytest.fixture
def db(postgres: PgCluster) -> Iterator[tuple[str, Any]]:
    """A fresh database with the slawatch schema: its URL and a store on it."""
    from incidents.pg_store import PgStore

    url = postgres.new_database()
    store = PgStore(url)
    yield url, store
    store.close()


def _fleet(store: Any, member: str, *, join: bool = True) -> Any:
    from incidents.pg_fleet import PgFleet

    fleet = PgFleet(store, member=member)
    if join:
        fleet.join(group="eu", version="0.1.0", digest=DIGEST, prober_timeout=5.0)
    return fleet


def _sql(store: Any, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
    def run(cur: Any) -> list[Any]:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []

    result: list[Any] = store.transaction(run)
    return result


def test_the_fleet_schema_is_a_forward_migration(db: tuple[str, Any]) -> None:
    """Version 3 adds the fleet tables, 4 the slices' samples; the lease starts free at epoch 0."""
    from incidents.pg_store import SCHEMA_VERSION

    _, store = db
    assert store.schema_version() == SCHEMA_VERSION == 4
    columns = _sql(
        store,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'prober_seconds'",
    )
    assert ("samples",) in columns
    lease = _fleet(store, "p1", join=False).lease()
    assert (lease.holder, lease.epoch, lease.held) == (None, 0, False)


def test_a_publish_is_slices_and_heartbeat_in_one_transaction(db: tuple[str, Any]) -> None:
    """Slices go in once (a repeat keeps the first); the watermark follows the newest second."""
    _, store = db
    fleet = _fleet(store, "p1")
    first = ProberSecond("p1", T0, {LANES[0]: _counts(ok=2, timeout=1)}, 1, 1)
    fleet.publish([first, ProberSecond("p1", T0 + 1)], LANES)
    fleet.publish([ProberSecond("p1", T0, {LANES[0]: _counts(ok=9)})], LANES)
    stored = fleet.slices(T0, T0 + 5, LANES)
    assert [s.slice for s in stored] == [first, ProberSecond("p1", T0 + 1)]
    assert all(s.ingested_at > T0 for s in stored)
    (info,) = fleet.probers(prober_timeout=5.0)
    assert (info.id, info.group, info.watermark, info.live) == ("p1", "eu", T0 + 1, True)
    assert info.to_json() == {
        "id": "p1",
        "group": "eu",
        "live": True,
        "watermark": T0 + 1,
        "clock_offset_s": None,
        "version": "0.1.0",
    }


def _failure(prober: str, started_at: float, duration_s: float, **fields: Any) -> Attempt:
    return Attempt(
        service="bird",
        channel=Channel.API,
        target="send",
        prober=prober,
        started_at=started_at,
        duration_s=duration_s,
        outcome=fields.pop("outcome", Outcome.TIMEOUT),
        phase="headers",
        detail=fields.pop("detail", "read timeout"),
        timings={"connect": 0.125},
        **fields,
    )


def test_a_slice_and_its_samples_are_one_row(db: tuple[str, Any]) -> None:
    """A slice's sample failures go in with its counts and come back with them."""
    _, store = db
    fleet = _fleet(store, "p1")
    failures = (_failure("p1", T0 + 0.25, 1.5), _failure("p1", T0 + 0.5, 0.75))
    first = ProberSecond("p1", T0, {LANES[0]: _counts(timeout=2)}, 1, 1, samples=failures)
    fleet.publish([first, ProberSecond("p1", T0 + 1)], LANES)
    assert [s.slice for s in fleet.slices(T0, T0 + 1, LANES)] == [first, ProberSecond("p1", T0 + 1)]
    rows = _sql(store, "SELECT second, samples IS NULL FROM prober_seconds ORDER BY second")
    assert rows == [(T0, False), (T0 + 1, True)]


def test_a_publish_that_fails_writes_nothing(db: tuple[str, Any]) -> None:
    """A slice that cannot be packed fails the whole publish: no row, no heartbeat move."""
    _, store = db
    fleet = _fleet(store, "p1")
    bad = ProberSecond("p1", T0 + 1, {("other", Channel.API): _counts(ok=1)})
    with pytest.raises(PackError):
        fleet.publish([ProberSecond("p1", T0), bad], LANES)
    assert fleet.slices(T0, T0 + 5, LANES) == []
    assert fleet.probers(5.0)[0].watermark is None


def test_a_member_judging_by_other_rules_is_refused(db: tuple[str, Any]) -> None:
    """A different judging digest is refused while a member with the other one is live."""
    from incidents.pg_fleet import FleetError, PgFleet

    _, store = db
    _fleet(store, "p1")
    other = PgFleet(store, member="p2")
    with pytest.raises(FleetError, match="prober 'p2' judges by other rules than live member 'p1'"):
        other.join(group="us", version="0.1.0", digest="e" * 64, prober_timeout=5.0)
    _sql(store, "UPDATE probers SET heartbeat_at = clock_timestamp() - interval '1 minute'")
    other.join(group="us", version="0.1.0", digest="e" * 64, prober_timeout=5.0)
    live = {p.id: p.live for p in other.probers(prober_timeout=5.0)}
    assert live == {"p1": False, "p2": True}


def test_the_clock_offset_is_measured_against_the_database(db: tuple[str, Any]) -> None:
    """A local clock 2 s ahead measures about +2 s; the offset is recorded on the prober."""
    _, store = db
    fleet = _fleet(store, "p1")
    clock = SystemClock()
    assert abs(fleet.measure_offset(clock.time)) < 0.1
    ahead = fleet.measure_offset(lambda: clock.time() + 2.0)
    assert abs(ahead - 2.0) < 0.1
    fleet.set_clock_offset(ahead)
    assert abs(fleet.probers(5.0)[0].clock_offset_s - ahead) < 0.001
    assert abs(fleet.now() - clock.time()) < 1.0


def _batch(epoch_note: str = "bird-1") -> Batch:
    return Batch(events=[signal_event(opened(epoch_note), TERMS, source="classifier")])


def test_one_holder_at_a_time_and_renewal_keeps_the_epoch(db: tuple[str, Any]) -> None:
    """The first candidate takes the lease at epoch 1; the second waits; renewing keeps 1."""
    _, store = db
    a, b = _fleet(store, "a"), _fleet(store, "b")
    assert a.acquire(3.0) == 1
    assert b.acquire(3.0) is None
    assert a.acquire(3.0) == 1
    lease = b.lease()
    assert (lease.holder, lease.epoch, lease.held) == ("a", 1, True)
    assert 2.0 < lease.remaining_s <= 3.0


def test_a_paused_leader_is_fenced(db: tuple[str, Any]) -> None:
    """The old leader's lease lapses, another takes over, and the old one's commit is refused."""
    from incidents.pg_fleet import Fenced, event_epochs

    _, store = db
    old, new = _fleet(store, "old"), _fleet(store, "new")
    epoch = old.acquire(3.0)
    assert epoch == 1
    # The old leader stops here (a pause, a partition) while its lease runs out.
    _sql(store, "UPDATE lease SET expires_at = clock_timestamp() - interval '1 second'")
    assert new.acquire(3.0) == 2
    pooled = pool(T0, [ProberSecond("old", T0)], live=["old"])
    with pytest.raises(Fenced, match="fenced at epoch 1"):
        old.finalize(epoch, 3.0, batch=_batch("bird-1"), pooled=[pooled])
    assert store.incidents() == []
    assert old.pooled_through() is None
    new.finalize(2, 3.0, batch=_batch("bird-2"), pooled=[pooled])
    assert [i.id for i in store.incidents()] == ["bird-2"]
    assert [epoch for _, epoch in event_epochs(store)] == [2]
    assert new.pooled(T0, T0) == [
        {"second": T0, "epoch": 2, "reporting": ["old"], "set_aside": [], "expected": ["old"]}
    ]


def test_a_lapsed_lease_fences_its_holder_even_unclaimed(db: tuple[str, Any]) -> None:
    """Past its expiry the holder's writes are refused; taking it again bumps the epoch."""
    from incidents.pg_fleet import Fenced

    _, store = db
    leader = _fleet(store, "a")
    assert leader.acquire(3.0) == 1
    _sql(store, "UPDATE lease SET expires_at = clock_timestamp() - interval '1 second'")
    with pytest.raises(Fenced):
        leader.finalize(1, 3.0, batch=_batch())
    assert leader.acquire(3.0) == 2
    assert leader.finalize(2, 3.0, batch=_batch())[0].id == "bird-1"


def test_a_candidate_never_hangs_on_a_renewal_in_progress(
    db: tuple[str, Any], postgres: PgCluster
) -> None:
    """While the lease row is locked by an open transaction, a candidate gives up within a second."""
    import psycopg

    url, store = db
    candidate = _fleet(store, "b")
    with psycopg.connect(url) as holder:
        holder.execute("UPDATE lease SET holder = 'a', epoch = 5 WHERE name = 'finalizer'")
        # The transaction stays open: the row lock is held, as by a paused leader mid-renewal.
        assert candidate.acquire(3.0) is None
        holder.rollback()
    assert candidate.acquire(3.0) == 1


def test_a_planned_step_down_frees_the_lease_at_once(db: tuple[str, Any]) -> None:
    """`release` ends the lease now; another takes over at the next epoch."""
    _, store = db
    a, b = _fleet(store, "a"), _fleet(store, "b")
    assert a.acquire(5.0) == 1
    assert b.release(1) is False
    assert a.release(1) is True
    assert b.acquire(5.0) == 2


def test_late_slices_are_found_once_and_recorded(db: tuple[str, Any]) -> None:
    """A slice published after its second was pooled is listed until recorded as late."""
    from incidents.pg_fleet import LateSlice

    _, store = db
    p1, p2 = _fleet(store, "p1"), _fleet(store, "p2")
    p1.publish([ProberSecond("p1", T0, {LANES[0]: _counts(timeout=1)})], LANES)
    epoch = p1.acquire(3.0)
    rows = [s.slice for s in p1.slices(T0, T0, LANES)]
    p1.finalize(epoch, 3.0, batch=Batch(), pooled=[pool(T0, rows, live=["p1", "p2"])])
    assert p1.unpooled(T0 - 10, T0, LANES) == []
    p2.publish([ProberSecond("p2", T0, {LANES[0]: _counts(ok=1)})], LANES)
    (late,) = p1.unpooled(T0 - 10, T0, LANES)
    assert late.slice.prober == "p2"
    record = LateSlice(T0, "p2", late.ingested_at, would_change=True)
    p1.finalize(epoch, 3.0, batch=Batch(), late=[record])
    assert p1.unpooled(T0 - 10, T0, LANES) == []
    (kept,) = p1.late()
    assert (kept.second, kept.prober, kept.would_change) == (T0, "p2", True)
    assert abs(kept.ingested_at - late.ingested_at) < 0.001


def _note(key: str) -> Notification:
    return Notification(key=key, channel="ops", event="opened", created_at=T0, document={"k": key})


def test_each_notification_is_claimed_by_one_instance(db: tuple[str, Any]) -> None:
    """Claims skip rows another instance holds; a claim lapses after its hold."""
    _, store = db
    a, b = _fleet(store, "a", join=False), _fleet(store, "b", join=False)
    assert a.acquire(3.0) == 1
    a.enqueue(1, 3.0, [_note("k1"), _note("k2")], cursor=None)
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(2)

    def claim(fleet: Any) -> None:
        barrier.wait()
        got[fleet.member] = [n.key for n in fleet.claim(T0, hold=30.0, limit=1)]

    threads = [threading.Thread(target=claim, args=(f,)) for f in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got["a"] + got["b"]) == ["k1", "k2"]
    assert a.claim(T0 + 1, hold=30.0) == []
    assert sorted(n.key for n in b.claim(T0 + 31, hold=30.0)) == ["k1", "k2"]
    store.mark_delivered("k1", at=T0 + 32)
    assert [n.key for n in a.claim(T0 + 100, hold=30.0)] == ["k2"]
    assert _sql(store, "SELECT key, epoch FROM outbox ORDER BY key") == [("k1", 1), ("k2", 1)]


def test_an_enqueue_by_a_fenced_finalizer_writes_nothing(db: tuple[str, Any]) -> None:
    """Notifications from a finalizer that lost its lease are not queued."""
    from incidents.pg_fleet import Fenced

    _, store = db
    leader = _fleet(store, "a", join=False)
    with pytest.raises(Fenced):
        leader.enqueue(1, 3.0, [_note("k1")], cursor=4)
    assert store.notifications() == []
    assert store.notify_cursor() == 0


def test_the_vantage_of_pooled_seconds(db: tuple[str, Any]) -> None:
    """Runs of equal counts (the records' columns), the probers with their groups, and how
    many saw the incident."""
    _, store = db
    p1, p2 = _fleet(store, "p1"), _fleet(store, "p2")
    assert store.vantage(T0, T0 + 10, (T0, T0 + 10)) is None
    epoch = p1.acquire(3.0)
    pooled = [
        pool(T0, [ProberSecond("p1", T0)], live=["p1", "p2"]),
        pool(T0 + 1, [ProberSecond("p1", T0 + 1), ProberSecond("p2", T0 + 1)], live=["p1", "p2"]),
        pool(T0 + 2, [ProberSecond("p1", T0 + 2), ProberSecond("p2", T0 + 2)], live=["p1", "p2"]),
    ]
    p1.finalize(epoch, 3.0, batch=Batch(), pooled=pooled)
    del p2
    assert store.vantage_seconds(T0, T0 + 10) == [(T0, T0, 1, 2), (T0 + 1, T0 + 2, 2, 2)]
    assert store.vantage_seconds(T0 + 1, T0 + 1) == [(T0 + 1, T0 + 1, 2, 2)]
    assert store.vantage_seconds(T0 + 5, T0 + 10) == []
    vantage = store.vantage(T0, T0 + 10, (T0 + 1, T0 + 2))
    assert vantage["probers"] == [{"id": "p1", "group": "eu"}, {"id": "p2", "group": "eu"}]
    assert [(r["probers_reporting"], r["probers_expected"]) for r in vantage["seconds"]] == [
        (1, 2),
        (2, 2),
    ]
    assert vantage["seconds"][1]["to"] == "2026-09-21T14:13:22Z"
    assert vantage["incident"] == {
        "probers_reporting": {"min": 2, "max": 2},
        "locations_reporting": {"min": 1, "max": 1},
    }
    spread = store.vantage(T0, T0 + 10, (T0, T0 + 2))["incident"]["probers_reporting"]
    assert spread == {"min": 1, "max": 2}
    assert store.vantage(T0, T0 + 10, (T0 + 5, T0 + 6))["incident"]["probers_reporting"] is None


MEMBER_CONFIG = """
prober: {{id: {prober}, group: {group}}}
storage: {{url: "{url}", attempts_per_second: 2}}
cluster: {{lease_ttl: 5s, prober_timeout: 5s, grace: 1s}}
services:
  - name: bird
    api: [{{name: send, url: "http://127.0.0.1:9/", timeout: 1s}}]
"""


def test_the_finalizer_keeps_the_pooled_sample_failures(db: tuple[str, Any], tmp_path: Any) -> None:
    """The store's samples of a fleet are its probers' failures: per second the single
    instance's selection over the pool, for seconds not judged available."""
    from prometheus_client import CollectorRegistry

    from config import load_config_text
    from slawatch.fleet import FleetMember

    url, store = db
    clock = SystemClock()
    members = []
    for prober, group in (("p1", "eu"), ("p2", "us")):
        text = MEMBER_CONFIG.format(prober=prober, group=group, url=url)
        loaded = load_config_text(text, str(tmp_path / f"{prober}.yaml"), {})
        member = FleetMember(
            loaded, store, version="t", local_time=clock.time, registry=CollectorRegistry()
        )
        member.start(clock.time())
        members.append(member)
    p1, p2 = members
    base = int(clock.time()) - 30
    # base: every attempt fails (unavailable); +1: one of two fails (partial); +2: healthy.
    for member, duration in ((p1, 1.0), (p1, 3.0), (p2, 2.0)):
        member.add(_failure(member.id, base + duration / 10, duration))
    p1.add(_failure("p1", base + 1.5, 0.5, outcome=Outcome.SERVER_ERROR, detail="HTTP 503"))
    p2.add(_failure("p2", base + 1.5, 0.25, outcome=Outcome.OK, detail=""))
    p2.add(_failure("p2", base + 2.5, 0.25, outcome=Outcome.OK, detail=""))
    for member in members:
        member.publish(member.cut(0.0, through=base + 2))
    p1.finalize()
    assert p1.leader
    pooled = p1.fleet.pooled(base, base + 2)
    assert [(p["second"], p["reporting"]) for p in pooled] == [
        (second, ["p1", "p2"]) for second in range(base, base + 3)
    ]
    kept = [
        (a.second, a.prober, a.duration_s, a.detail) for a in store.samples("bird", base, base + 2)
    ]
    assert kept == [
        (base, "p2", 2.0, "read timeout"),
        (base, "p1", 3.0, "read timeout"),
        (base + 1, "p1", 0.5, "HTTP 503"),
    ]
    vantage = store.vantage(base, base + 2, (base, base + 1))
    assert vantage["probers"] == [{"id": "p1", "group": "eu"}, {"id": "p2", "group": "us"}]
    for member in members:
        member.release()


def test_retention_prunes_the_fleet_tables(db: tuple[str, Any]) -> None:
    """Slices go with the samples' retention; pooled seconds and late slices with the runs'."""
    _, store = db
    fleet = _fleet(store, "p1")
    fleet.publish([ProberSecond("p1", T0), ProberSecond("p1", T0 + 50)], LANES)
    for second in (T0, T0 + 50):
        _sql(
            store,
            "INSERT INTO pooled_seconds (second, epoch, reporting, set_aside, expected) "
            "VALUES (%s, 1, '{p1}', '{}', '{p1}')",
            (second,),
        )
        _sql(
            store,
            "INSERT INTO late_batches (second, prober, ingested_at, would_change) "
            "VALUES (%s, 'p2', now(), false)",
            (second,),
        )
    # Samples are kept 20 s, runs 80 s: at T0 + 60 the slice of T0 goes, its pooled second stays.
    store.prune(T0 + 60, keep_runs=80, keep_samples=20)
    assert _sql(store, "SELECT second FROM prober_seconds ORDER BY 1") == [(T0 + 50,)]
    assert _sql(store, "SELECT second FROM pooled_seconds ORDER BY 1") == [(T0,), (T0 + 50,)]
    store.prune(T0 + 100, keep_runs=80, keep_samples=20)
    assert _sql(store, "SELECT second FROM prober_seconds") == []
    assert _sql(store, "SELECT second FROM pooled_seconds") == [(T0 + 50,)]
    assert _sql(store, "SELECT second FROM late_batches") == [(T0 + 50,)]


def test_a_candidate_stalled_mid_acquire_does_not_keep_the_lease_row(
    postgres: PgCluster,
) -> None:
    """A candidate stuck between its lease UPDATE and COMMIT (a half-open link) loses its
    session after the lease's ttl, so another candidate takes the lease meanwhile."""
    from incidents.pg_fleet import PgFleet
    from incidents.pg_store import PgStore

    url = postgres.new_database()
    stalled_store, other_store = PgStore(url), PgStore(url)
    try:
        stalled = PgFleet(stalled_store, member="p1")
        other = PgFleet(other_store, member="p2")
        inner = stalled_store.transaction
        first = threading.Event()

        def stalling(func: Any) -> Any:
            def run(cur: Any) -> Any:
                found = func(cur)
                if not first.is_set():
                    first.set()
                    # Idle in transaction with the row locked, as if the link went dead.
                    time.sleep(4)
                return found

            return inner(run)

        stalled_store.transaction = stalling  # type: ignore[method-assign]
        thread = threading.Thread(target=lambda: _quietly(stalled.acquire, 1.0))
        thread.start()
        first.wait(5)
        clock = SystemClock()
        started = clock.monotonic()
        epoch = None
        while epoch is None and clock.monotonic() - started < 3.5:
            epoch = other.acquire(1.0)
        taken_after = clock.monotonic() - started
        thread.join(10)
        assert epoch is not None, "the stalled candidate kept the lease row locked"
        assert taken_after < 3.0
        assert other.lease().holder == "p2"
    finally:
        stalled_store.close()
        other_store.close()


def _quietly(func: Any, *args: Any) -> None:
    """Call ``func``; its session may be ended under it (that is the point), which is fine."""
    with contextlib.suppress(Exception):
        func(*args)
