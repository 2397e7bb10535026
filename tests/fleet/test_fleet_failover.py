"""A fleet losing its finalizer or its database: kill -9, SIGSTOP, a restart, a spool.

Each location probes its own loopback provider. Every scenario checks that the pooled
verdicts are contiguous, that there is exactly one incident starting at the fault's first
second, and that each notification reached the sink with exactly one idempotency key.
Waits are on real time: the processes under test run on it.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.daemon import wait_for
from tests.support.fleet import TTL_S, finish, now, running_fleet
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.slow


def test_kill_the_finalizer_mid_outage(tmp_path: Path, postgres: PgCluster) -> None:
    """A planned handover (SIGUSR1) takes about a second; then kill -9 of the lease holder:
    another takes over within ttl + 2 s; no second lost or doubled."""
    with running_fleet(tmp_path, postgres) as fleet:
        first = fleet.leader()
        # Every member is ready once its role is settled (the holder caught up).
        for prober in fleet.ids:
            # wait_for fails the test if a member is not ready within 10 s.
            wait_for(lambda p=prober: fleet.member(p).get("/readyz")[0] == 200, 10, "ready")
        assert fleet.member(first).json("/readyz")["checks"]["cluster_role"] is True
        fleet.member(first).signal(signal.SIGUSR1)
        handed_at = now()
        old = wait_for(lambda: (h := fleet.holder()) not in (None, first) and h, 5, "a handover")
        assert now() - handed_at < TTL_S
        time.sleep(2)
        fault_at = fleet.set_down()
        time.sleep(5)
        killed_at = now()
        fleet.member(old).kill()
        new = wait_for(lambda: (h := fleet.holder()) not in (None, old) and h, 10, "a new holder")
        assert now() - killed_at <= TTL_S + 2
        assert new != old
        time.sleep(8)
        finish(fleet)
        fleet.check_invariants(fault_at)
        epochs = fleet.event_epochs()
        assert epochs == sorted(epochs)
        assert epochs[-1] >= 3
        assert "stepping down as finalizer" in [
            r["message"] for r in fleet.member(first).log_lines()
        ]


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
        finish(fleet)
        assert fleet.leader() != old or new == old
        messages = [r["message"] for r in paused.log_lines()]
        assert "stepping down as finalizer" in messages
        rows = fleet.sql("SELECT second, epoch FROM pooled_seconds ORDER BY second")
        first_new = min(int(s) for s, e in rows if int(e) > old_epoch)
        assert all(int(s) < first_new for s, e in rows if int(e) == old_epoch)
        epochs = [int(e) for _, e in rows]
        assert epochs == sorted(epochs)
        fleet.check_invariants(fault_at)


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
        healed = now()
        finish(fleet)
        verdicts = fleet.verdicts()
        assert {verdicts[s] for s in range(int(fault_at) + 2, int(healed) - 1)} == {"unavailable"}
        fleet.check_invariants(fault_at)
        reporting = fleet.sql(
            "SELECT cardinality(reporting) FROM pooled_seconds "  # noqa: S608  (integers)
            f"WHERE second BETWEEN {int(fault_at)} AND {int(healed)}"
        )
        assert {int(n) for (n,) in reporting} == {3}


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
            stopped_at = now()
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
