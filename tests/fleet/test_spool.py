"""The fleet member's spool: seconds kept across a restart, bounded, emptied once published."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from classifier.pooling import ProberSecond
from classifier.verdict import OUTCOME_INDEX, OUTCOMES
from probe.attempt import Attempt, Channel, Outcome
from slawatch.spool import Spool

LANES = (("mail", Channel.API),)
T0 = 1_790_000_000


def _slice(second: int, timeouts: int = 1) -> ProberSecond:
    counts = [0] * len(OUTCOMES)
    counts[OUTCOME_INDEX[Outcome.TIMEOUT]] = timeouts
    return ProberSecond("p1", second, {LANES[0]: tuple(counts)}, 1, 1)


def test_seconds_survive_a_restart(tmp_path: Path) -> None:
    """Saved seconds load again from a new spool on the same file, oldest first."""
    spool = Spool(tmp_path / "s.spool", prober="p1", cap=100)
    spool.save([_slice(T0 + 1), _slice(T0)], LANES)
    spool.save([_slice(T0), _slice(T0 + 2, timeouts=3)], LANES)
    assert spool.rows == 3
    spool.close()
    again = Spool(tmp_path / "s.spool", prober="p1", cap=100)
    assert again.load(LANES) == [_slice(T0), _slice(T0 + 1), _slice(T0 + 2, timeouts=3)]
    again.clear()
    assert (again.rows, again.load(LANES)) == (0, [])
    again.close()


def test_the_spool_is_bounded(tmp_path: Path) -> None:
    """Past the cap the oldest seconds go, and are counted."""
    spool = Spool(tmp_path / "s.spool", prober="p1", cap=3)
    spool.save([_slice(T0 + i) for i in range(5)], LANES)
    assert [s.second for s in spool.load(LANES)] == [T0 + 2, T0 + 3, T0 + 4]
    assert (spool.rows, spool.dropped) == (3, 2)
    spool.close()


def test_rows_another_configuration_wrote_are_dropped(tmp_path: Path) -> None:
    """Seconds packed for other lanes cannot be read: dropped and counted, not guessed."""
    spool = Spool(tmp_path / "s.spool", prober="p1", cap=10)
    spool.save([_slice(T0)], LANES)
    other = (("mail", Channel.API), ("mail", Channel.SMTP))
    assert spool.load(other) == []
    assert spool.dropped == 1
    spool.close()


def test_spooled_seconds_keep_their_sample_failures(tmp_path: Path) -> None:
    """A second's sample failures come back from the spool with its counts."""
    failure = Attempt(
        service="mail",
        channel=Channel.API,
        target="send",
        prober="p1",
        started_at=T0 + 0.5,
        duration_s=1.25,
        outcome=Outcome.TIMEOUT,
        phase="headers",
        detail="read timeout",
        timings={"connect": 0.5},
    )
    kept = replace(_slice(T0), samples=(failure,))
    spool = Spool(tmp_path / "s.spool", prober="p1", cap=10)
    spool.save([kept, _slice(T0 + 1)], LANES)
    spool.close()
    again = Spool(tmp_path / "s.spool", prober="p1", cap=10)
    assert again.load(LANES) == [kept, _slice(T0 + 1)]
    again.close()


def test_a_spool_an_older_slawatch_left_still_loads(tmp_path: Path) -> None:
    """A spool without the samples column gains it; its seconds load without samples."""
    path = tmp_path / "s.spool"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE spool (second INTEGER PRIMARY KEY, counts BLOB NOT NULL, "
            "control_ok INTEGER NOT NULL, control_judged INTEGER NOT NULL)"
        )
        db.execute("INSERT INTO spool VALUES (?, ?, 1, 1)", (T0, _slice(T0).pack(LANES)))
    db.close()
    spool = Spool(path, prober="p1", cap=10)
    assert spool.load(LANES) == [_slice(T0)]
    spool.save([_slice(T0 + 1)], LANES)
    assert [s.second for s in spool.load(LANES)] == [T0, T0 + 1]
    spool.close()
