"""A fleet member cut off the database by a half-open partition (sockets open, bytes dropped).

Each location probes its own loopback provider. Every scenario checks that the pooled
verdicts are contiguous, that there is exactly one incident starting at the fault's first
second, and that each notification reached the sink with exactly one idempotency key.
Waits are on real time: the processes under test run on it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.daemon import wait_for
from tests.support.fleet import TTL_S, finish, now, running_fleet
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.slow


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
        finish(fleet)
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
        assert now() - cut_at <= TTL_S + 2 + 1
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
        finish(fleet)
        rows = fleet.sql("SELECT second, epoch FROM pooled_seconds ORDER BY second")
        first_new = min(int(s) for s, e in rows if int(e) > old_epoch)
        assert all(int(s) < first_new for s, e in rows if int(e) == old_epoch)
        assert fleet.holder() != old or fleet.epoch() > old_epoch + 1
        fleet.check_invariants(fault_at)
