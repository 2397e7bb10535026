"""A fleet member's spool: its seconds the database refused, kept in a local SQLite file.

While the shared database cannot be reached, a prober keeps probing; the seconds it could
not publish wait here (as well as in memory) so that a restart during the outage loses
none. The spool is bounded: past ``cap`` rows the oldest are dropped and counted. On
reconnect the member publishes them oldest first and empties the spool. Written only
while publishing fails: a healthy member never touches it. Each second keeps its sample
failures with its counts, so spooled seconds reach the evidence as published ones do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from classifier.pooling import LaneKey, PackError, ProberSecond


class Spool:
    """Unpublished seconds of one prober in a SQLite file (used from one thread)."""

    def __init__(self, path: Path, *, prober: str, cap: int) -> None:
        self.path = path
        self.prober = prober
        self.cap = cap
        # Rows dropped since the spool was opened (past the cap, or unreadable).
        self.dropped = 0
        self._db = sqlite3.connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (second INTEGER PRIMARY KEY, counts BLOB NOT NULL, "
            "control_ok INTEGER NOT NULL, control_judged INTEGER NOT NULL, samples BLOB)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(spool)")}
        if "samples" not in columns:
            # A spool an older slawatch left: its seconds carry no samples.
            self._db.execute("ALTER TABLE spool ADD COLUMN samples BLOB")
        self._db.commit()
        self.rows = self._count()

    def _count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def save(self, slices: Sequence[ProberSecond], lanes: Sequence[LaneKey]) -> None:
        """Keep ``slices`` (those already kept stay), then drop the oldest past the cap."""
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO spool (second, counts, control_ok, control_judged, samples) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (s.second, s.pack(lanes), s.control_ok, s.control_judged, s.pack_samples(lanes))
                    for s in slices
                ],
            )
            over = self._count() - self.cap
            if over > 0:
                self._db.execute(
                    "DELETE FROM spool WHERE second IN "
                    "(SELECT second FROM spool ORDER BY second LIMIT ?)",
                    (over,),
                )
                self.dropped += over
        self.rows = self._count()

    def load(self, lanes: Sequence[LaneKey]) -> list[ProberSecond]:
        """Every kept second, oldest first; rows the configuration cannot read are dropped."""
        out = []
        rows = self._db.execute(
            "SELECT second, counts, control_ok, control_judged, samples FROM spool ORDER BY second"
        ).fetchall()
        for second, counts, ok, judged, samples in rows:
            try:
                out.append(
                    ProberSecond.unpack(
                        self.prober,
                        second,
                        counts,
                        lanes,
                        control_ok=ok,
                        control_judged=judged,
                        samples=samples,
                    )
                )
            except PackError:
                self.dropped += 1
        return out

    def clear(self) -> None:
        """Forget every kept second (they are published)."""
        if self.rows:
            with self._db:
                self._db.execute("DELETE FROM spool")
            self.rows = 0

    def close(self) -> None:
        """Close the file."""
        self._db.close()
