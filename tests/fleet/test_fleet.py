"""A fleet of three `slawatch run` processes on one PostgreSQL: pooling, failover, fencing.

Each location probes its own loopback provider. Every scenario checks that the pooled
verdicts are contiguous, that there is exactly one incident starting at the fault's first
second, and that each notification reached the sink with exactly one idempotency key.
Waits are on real time: the processes under test run on it.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from incidents.evidence import verify
from tests.support.daemon import wait_for
from tests.support.fleet import TTL_S, Fleet, running_fleet
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.slow


def _now() -> float:
    return time.time()  # noqa: TID251  (the processes under test run on real time)


def _restored(fleet: Fleet) -> bool:
    return any(r.body["event"] == "restored" for r in fleet.receiver.got)


def _finish(fleet: Fleet) -> None:
    """Heal, and wait for the restore to be notified and every member's seconds pooled."""
    healed = fleet.set_up()
    wait_for(lambda: _restored(fleet), 30, "the restore notification")
    fleet.wait_pooled(healed + 2)


def test_one_location_is_partial_all_three_is_one_incident(
    tmp_path: Path, postgres: PgCluster
) -> None:
    """Seen by 1 of 3 locations: partial, no incident; by all 3: one incident, 3 probers a second."""
    with running_fleet(tmp_path, postgres) as fleet:
        fleet.leader()
        time.sleep(3)
        one = fleet.set_down(0)
        time.sleep(10)
        fault_at = fleet.set_down()
        time.sleep(11)
        healed = _now()
        _finish(fleet)
        verdicts = fleet.verdicts()
        assert {verdicts[s] for s in range(int(one) + 2, int(fault_at) - 1)} == {"partial"}
        assert {verdicts[s] for s in range(int(fault_at) + 2, int(healed) - 1)} == {"unavailable"}
        fleet.check_invariants(fault_at)
        window = f"second BETWEEN {int(fault_at)} AND {int(healed)}"
        reporting = fleet.sql(f"SELECT cardinality(reporting) FROM pooled_seconds WHERE {window}")  # noqa: S608  (integers)
        assert {int(n) for (n,) in reporting} == {3}
        _check_evidence(fleet, incident_id=fleet.incidents()[0][0])


def _check_evidence(fleet: Fleet, incident_id: str) -> None:
    """Any member's bundle names the three vantage points, verifies, and says so in Markdown."""
    member = fleet.members[-1]
    status, raw = member.get(f"/api/v1/incidents/{incident_id}/evidence?format=json")
    assert status == 200
    assert verify(raw.decode()).ok
    vantage = json.loads(raw)["vantage"]
    assert vantage["probers"] == [{"id": f"loc{i}", "group": f"loc{i}"} for i in (1, 2, 3)]
    assert vantage["incident"]["locations_reporting"] == {"min": 3, "max": 3}
    assert all(run["probers_expected"] == 3 for run in vantage["seconds"][1:])
    status, md = member.get(f"/api/v1/incidents/{incident_id}/evidence?format=md")
    assert "**Seen from:** 3 locations and 3 probers in every second of the incident" in md.decode()


def test_kill_the_finalizer_mid_outage(tmp_path: Path, postgres: PgCluster) -> None:
    """kill -9 of the lease holder: another takes over within ttl + 2 s; no second lost or doubled."""
    with running_fleet(tmp_path, postgres) as fleet:
        old = fleet.leader()
        time.sleep(3)
        fault_at = fleet.set_down()
        time.sleep(5)
        killed_at = _now()
        fleet.member(old).kill()
        new = wait_for(lambda: (h := fleet.holder()) not in (None, old) and h, 10, "a new holder")
        assert _now() - killed_at <= TTL_S + 2
        assert new != old
        time.sleep(8)
        _finish(fleet)
        fleet.check_invariants(fault_at)
        epochs = fleet.event_epochs()
        assert epochs == sorted(epochs)
        assert epochs[-1] >= 2


def test_a_paused_finalizer_is_fenced(tmp_path: Path, postgres: PgCluster) -> None:
    """SIGSTOP of the holder past its lease, then SIGCONT: it steps down and never commits again."""
    with running_fleet(tmp_path, postgres) as fleet:
        old = fleet.leader()
        old_epoch = fleet.epoch()
        time.sleep(3)
        fault_at = fleet.set_down()
        time.sleep(3)
        paused = fleet.member(old)
        paused.signal(signal.SIGSTOP)
        try:
            new = wait_for(
                lambda: (h := fleet.holder()) not in (None, old) and h, 10, "a new holder"
            )
            time.sleep(2 * TTL_S)
        finally:
            paused.signal(signal.SIGCONT)
        new_epoch = fleet.epoch()
        assert new_epoch > old_epoch
        time.sleep(6)
        _finish(fleet)
        assert fleet.leader() != old or new == old
        messages = [r["message"] for r in paused.log_lines()]
        assert "stepping down as finalizer" in messages
        rows = fleet.sql("SELECT second, epoch FROM pooled_seconds ORDER BY second")
        first_new = min(int(s) for s, e in rows if int(e) > old_epoch)
        assert all(int(s) < first_new for s, e in rows if int(e) == old_epoch)
        epochs = [int(e) for _, e in rows]
        assert epochs == sorted(epochs)
        fleet.check_invariants(fault_at)


def test_a_prober_whose_clock_is_off_is_set_aside(tmp_path: Path, postgres: PgCluster) -> None:
    """A clock 2 s off: set aside and flagged unhealthy; one 100 ms off: judged as usual."""
    with running_fleet(tmp_path, postgres, skews={1: 0.1, 2: 2.0}) as fleet:
        fleet.leader()

        def measured() -> dict[str, float] | None:
            probers = fleet.member("loc1").json("/api/v1/cluster")["probers"]
            offsets = {p["id"]: p["clock_offset_s"] for p in probers}
            return offsets if None not in offsets.values() and len(offsets) == 3 else None

        offsets = wait_for(measured, 15, "three clock offsets")
        assert abs(offsets["loc3"] - 2.0) < 0.2
        assert abs(offsets["loc2"] - 0.1) < 0.1
        assert abs(offsets["loc1"]) < 0.1
        time.sleep(2)
        fault_at = fleet.set_down()
        time.sleep(11)
        healed = _now()
        _finish(fleet)
        rows = fleet.sql(
            "SELECT reporting, set_aside FROM pooled_seconds "  # noqa: S608  (integers)
            f"WHERE second BETWEEN {int(fault_at)} AND {int(healed)}"
        )
        assert {tuple(r) for r in rows} == {("{loc1,loc2}", "{loc3}")}
        fleet.check_invariants(fault_at)
        flagged = [n for n in fleet.prober_notes() if n["check"] == "clock_offset"]
        assert [n["id"] for n in flagged] == ["loc3"]
        assert "clock offset +2.0" in flagged[0]["detail"]
        shown = fleet.member("loc1").json("/api/v1/probers")["probers"]
        assert [p["id"] for p in shown] == ["loc1", "loc2", "loc3"]
        assert [p["healthy"] for p in shown] == [True, True, False]
        page = fleet.member("loc1").get("/")[1].decode()
        assert all(f'data-prober="{p}"' in page for p in ("loc1", "loc2", "loc3"))


def test_a_database_restart_mid_outage(tmp_path: Path, postgres: PgCluster) -> None:
    """`pg_ctl restart -m immediate` mid-outage: members keep their seconds and publish them
    after, the finalizer resumes; nothing lost or doubled."""
    with running_fleet(tmp_path, postgres) as fleet:
        fleet.leader()
        time.sleep(3)
        fault_at = fleet.set_down()
        time.sleep(4)
        postgres.restart("immediate")
        time.sleep(8)
        healed = _now()
        _finish(fleet)
        verdicts = fleet.verdicts()
        assert {verdicts[s] for s in range(int(fault_at) + 2, int(healed) - 1)} == {"unavailable"}
        fleet.check_invariants(fault_at)
        reporting = fleet.sql(
            "SELECT cardinality(reporting) FROM pooled_seconds "  # noqa: S608  (integers)
            f"WHERE second BETWEEN {int(fault_at)} AND {int(healed)}"
        )
        assert {int(n) for (n,) in reporting} == {3}


def test_a_prober_cut_off_the_database(tmp_path: Path, postgres: PgCluster) -> None:
    """One prober partitioned for 20 s mid-outage: judged without it, then its seconds arrive
    late (counted, none would change a verdict) and nothing is lost."""
    with running_fleet(tmp_path, postgres, proxied=[0, 1, 2]) as fleet:
        leader = fleet.leader()
        cut = next(p for p in fleet.ids if p != leader)
        time.sleep(3)
        fault_at = fleet.set_down()
        time.sleep(3)
        cut_at = fleet.partition(cut)
        time.sleep(20)
        healed_at = fleet.partition(cut, partitioned=False)
        wait_for(
            lambda: (
                int(fleet.sql(f"SELECT watermark FROM probers WHERE id = '{cut}'")[0][0])  # noqa: S608
                > healed_at
            ),
            20,
            "the cut prober's seconds published",
        )
        time.sleep(3)
        _finish(fleet)
        fleet.check_invariants(fault_at)
        judged = fleet.sql(
            "SELECT reporting FROM pooled_seconds "  # noqa: S608  (integers)
            # Seconds ending more than horizon + grace before the heal were judged without it.
            f"WHERE second BETWEEN {int(cut_at) + 8} AND {int(healed_at) - 5}"
        )
        assert judged
        assert all(cut not in row[0] for row in judged)
        late = fleet.sql(f"SELECT second, would_change FROM late_batches WHERE prober = '{cut}'")  # noqa: S608
        assert 20 - 6 <= len(late) <= 20 + 6, late
        assert {w for _, w in late} == {"f"}
        unpublished = fleet.member(cut).get("/metrics")[1].decode()
        assert "slawatch_spool_rows 0.0" in unpublished


def test_the_finalizer_cut_off_the_database(tmp_path: Path, postgres: PgCluster) -> None:
    """The finalizer partitioned: another takes over within ttl + 2 s; the old one never
    commits again and rejoins as a follower."""
    with running_fleet(tmp_path, postgres, proxied=[0, 1, 2]) as fleet:
        old = fleet.leader()
        old_epoch = fleet.epoch()
        time.sleep(3)
        fault_at = fleet.set_down()
        time.sleep(3)
        cut_at = fleet.partition(old)
        new = wait_for(lambda: (h := fleet.holder()) not in (None, old) and h, 15, "a new holder")
        assert _now() - cut_at <= TTL_S + 2 + 1
        time.sleep(6)
        fleet.partition(old, partitioned=False)
        wait_for(
            lambda: (
                fleet.member(old).json("/api/v1/cluster")["role"] == "follower"
                and any(
                    p["id"] == old and p["live"]
                    for p in fleet.member(new).json("/api/v1/cluster")["probers"]
                )
            ),
            20,
            "the old finalizer back as a follower",
        )
        _finish(fleet)
        rows = fleet.sql("SELECT second, epoch FROM pooled_seconds ORDER BY second")
        first_new = min(int(s) for s, e in rows if int(e) > old_epoch)
        assert all(int(s) < first_new for s, e in rows if int(e) == old_epoch)
        assert fleet.holder() != old or fleet.epoch() > old_epoch + 1
        fleet.check_invariants(fault_at)


def test_a_member_restarted_while_the_database_is_down_keeps_its_seconds(
    tmp_path: Path, postgres: PgCluster
) -> None:
    """The database stops; a member spools its seconds, is restarted, and publishes them."""
    with running_fleet(tmp_path, postgres) as fleet:
        fleet.leader()
        time.sleep(3)
        member = fleet.member("loc3")
        postgres.stop()
        try:
            stopped_at = _now()
            time.sleep(6)
            assert member.stop() == 0
        finally:
            postgres.start()
        spool = member.folder / "slawatch.db.spool"
        with sqlite3.connect(spool) as db:
            kept = [s for (s,) in db.execute("SELECT second FROM spool")]
        assert any(s >= stopped_at for s in kept)
        member.start()
        wanted = int(stopped_at) + 1
        wait_for(
            lambda: fleet.sql(
                f"SELECT 1 FROM prober_seconds WHERE prober = 'loc3' AND second = {wanted}"  # noqa: S608
            ),
            20,
            "the spooled seconds published",
        )
        with sqlite3.connect(spool) as db:
            assert db.execute("SELECT count(*) FROM spool").fetchone() == (0,)
        assert all(m.proc is not None and m.proc.poll() is None for m in fleet.members)


@pytest.mark.parametrize(
    "replicas", [pytest.param(1, id="replicas-1"), pytest.param(2, id="replicas-2")]
)
def test_kill_a_prober_in_a_sharded_group(
    tmp_path: Path, postgres: PgCluster, replicas: int
) -> None:
    """Two members share a group's 20 targets: each target is probed by `replicas` of them;
    after a kill -9 the survivor takes them all within prober_timeout + 2 s (replicas 1),
    or loses no coverage at all (replicas 2)."""
    with running_fleet(
        tmp_path, postgres, count=2, groups=["eu", "eu"], targets=20, replicas=replicas
    ) as fleet:
        survivor = fleet.leader()
        victim = next(p for p in fleet.ids if p != survivor)
        # Sharded once both are live and the switch took effect.
        wait_for(
            lambda: (
                fleet.sql("SELECT members FROM assignments ORDER BY version DESC LIMIT 1")
                == [["{loc1,loc2}"]]
            ),
            15,
            "both members assigned",
        )
        time.sleep(5)
        killed_at = _now()
        fleet.member(victim).kill()
        time.sleep(3 + 2 + 5)
        fleet.wait_pooled(_now() - 4)
        first, last = int(killed_at) - 4, int(_now()) - 4
        mine, theirs = fleet.attempts(survivor, first, last), fleet.attempts(victim, first, last)
        before = [s for s in range(first, int(killed_at) - 1) if s in theirs]
        assert before
        # Every target once per replica, between both members.
        assert {mine[s] + theirs[s] for s in before} == {20 * replicas}
        if replicas == 1:
            assert all(mine[s] < 20 for s in before)
            after = range(int(killed_at) + 3 + 2 + 1, last + 1)
        else:
            after = range(first, last + 1)
        assert {mine[s] for s in after} == {20}, mine
