"""A fleet group sharing its targets: rendezvous shares, a kill -9, replicas 1 and 2.

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
from tests.support.fleet import now, running_fleet
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.slow


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
        time.sleep(10)
        killed_at = now()
        fleet.member(victim).kill()
        time.sleep(3 + 2 + 5)
        fleet.wait_pooled(now() - 4)
        # From the switch second itself: both members switch exactly at its start.
        (effective,) = fleet.sql(
            "SELECT max(effective_second) FROM assignments WHERE cardinality(members) = 2"
        )[0]
        first, last = int(effective), int(now()) - 4
        mine, theirs = fleet.attempts(survivor, first, last), fleet.attempts(victim, first, last)
        before = [s for s in range(first, int(killed_at) - 1) if s in theirs]
        assert len(before) >= 4, (before, effective, killed_at)
        # Every target once per replica, between both members: never more. A loaded machine
        # can miss a launch now and then (counted as missed launches), so a few seconds may
        # hold fewer; a whole share missing would be a gap.
        share = 20 * replicas
        totals = [mine[s] + theirs[s] for s in before]
        assert max(totals) == share
        # Never twice in the switch second: the old owners' launches ended before it.
        assert mine.get(first, 0) + theirs.get(first, 0) <= share
        assert sum(t == share for t in totals) >= 0.8 * len(totals), totals
        if replicas == 1:
            assert all(mine[s] < 20 for s in before)
            after = range(int(killed_at) + 3 + 2 + 1, last + 1)
        else:
            after = range(first, last + 1)
        survived = [mine.get(s, 0) for s in after]
        assert max(survived) == 20
        assert sum(n == 20 for n in survived) >= 0.8 * len(survived), survived
        assert min(survived) >= 15, survived
