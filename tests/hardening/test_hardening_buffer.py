"""The daemon's write buffer while the store refuses writes: bounded, and nothing judged is lost."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from classifier.signals import IncidentSignal
from incidents.memory_store import MemoryStore
from incidents.model import Incident
from incidents.store import Batch, StoreError
from probe.attempt import Attempt, Channel, Outcome
from probe.clock import ManualClock
from slawatch.daemon import TICK_OFFSET, Daemon
from slawatch.writer import MAX_PENDING_BATCHES
from tests.support.configs import config_from_yaml
from tests.support.timeline import expand

T0 = 1_790_000_000
# One cycle: a 30-second outage of server errors (opens at its 10th second), then 150 good
# seconds (restores).
CYCLE = expand("30s 150.")
SAMPLES_PER_SECOND = 3


class RefusingStore(MemoryStore):
    """A memory store that refuses every commit while ``full`` is set, like a full disk."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False
        self.refused = 0

    def commit(self, batch: Batch) -> list[Incident]:
        """Refuse while full, else store the batch."""
        if self.full:
            self.refused += 1
            raise StoreError("database or disk is full")
        return super().commit(batch)


def _config(folder: Path) -> dict[str, object]:
    return {
        "prober": {"id": "buf-1"},
        "storage": {"path": "store.db", "attempts_per_second": SAMPLES_PER_SECOND},
        "services": [
            {
                "name": "mail",
                "sla": {"policy": "megaport", "calendar": "uk"},
                "api": [{"name": "send", "url": "http://127.0.0.1:9/", "timeout": "1s"}],
            }
        ],
    }


def _attempts(second: int, bad: bool) -> list[Attempt]:
    outcome = Outcome.SERVER_ERROR if bad else Outcome.OK
    return [
        Attempt(
            service="mail",
            channel=Channel.API,
            target="send",
            prober="buf-1",
            started_at=second + 0.1 * (i + 1),
            duration_s=0.01,
            outcome=outcome,
            detail="HTTP 500" if bad else "HTTP 200",
        )
        for i in range(4)
    ]


def _held(daemon: Daemon) -> tuple[int, int, int]:
    """Batches, runs and samples the daemon keeps in memory."""
    pending = daemon.writer._pending
    return len(pending), sum(len(b.runs) for b in pending), sum(len(b.samples) for b in pending)


def _assert_caught_up(store: RefusingStore, signals: list[IncidentSignal]) -> None:
    last = store.high_water()[("mail", "combined")]
    for channel in ("api", "combined"):
        runs = store.runs("mail", channel, T0, last)
        assert runs[0].first == T0
        # Every judged second is in exactly one run: no gap, no overlap.
        for before, after in itertools.pairwise(runs):
            assert after.first == before.last + 1, (before, after)
        assert runs[-1].last == last
    kept = store.incidents()
    assert len(kept) == 1
    # Every signal became an event (open, reopens, restores), none lost in the merge.
    assert len(store.events(kept[0].id)) >= len(signals)
    sampled = {a.second for a in store.samples("mail", T0, last)}
    assert sampled
    assert min(sampled) > T0


async def test_full_store_buffers_within_bound_then_catches_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Over an hour past MAX_PENDING_BATCHES of refused writes the buffer stays bounded;
    on recovery every judged second, run and incident event reaches the store."""
    loaded = config_from_yaml(_config(tmp_path), path=tmp_path / "slawatch.yaml")
    clock = ManualClock(T0)
    store = RefusingStore()
    signals: list[IncidentSignal] = []
    daemon = Daemon(
        loaded, clock=clock, registry=CollectorRegistry(), store=store, on_signal=signals.append
    )
    await daemon.open_store()
    store.full = True
    seconds = MAX_PENDING_BATCHES + 600
    peak_runs = 0
    try:
        with caplog.at_level(logging.INFO, logger="slawatch"):
            for offset in range(seconds):
                second = T0 + offset
                for attempt in _attempts(second, CYCLE[offset % len(CYCLE)] == "s"):
                    daemon._on_attempt(attempt)
                clock.advance(1)
                await daemon.tick(second + 1 + TICK_OFFSET)
                batches, runs, samples = _held(daemon)
                peak_runs = max(peak_runs, runs)
                assert batches <= MAX_PENDING_BATCHES
                # Samples go first: only batches not yet merged keep theirs.
                assert samples <= batches * 3 * SAMPLES_PER_SECOND
            assert not daemon.health.store_writable
            assert daemon.health.pending_batches == MAX_PENDING_BATCHES
            assert "database or disk is full" in daemon.health.store_error
            # An hour of failures: one error line a minute, never one a second.
            errors = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == -(-seconds // 60)
            assert all(getattr(r, "error", "") == "database or disk is full" for r in errors)
            # Runs are upserts: a merged batch keeps the latest version of each run only.
            distinct = {
                (r.service, r.channel, r.first)
                for batch in daemon.writer._pending
                for r in batch.runs
            }
            # Two channels (api, combined): at most one growing run of each per batch.
            assert peak_runs <= len(distinct) + 2 * MAX_PENDING_BATCHES
            opened = [s for s in signals if type(s).__name__ in ("Opened", "Reopened")]
            assert len(opened) >= seconds // len(CYCLE) - 1

            store.full = False
            clock.advance(1)
            await daemon.tick(T0 + seconds + 1 + TICK_OFFSET)
        assert daemon.health.store_writable
        assert daemon.health.pending_batches == 0
        assert "store writable again; caught up" in caplog.messages
        _assert_caught_up(store, signals)
    finally:
        await daemon.probing.stop()
        daemon.writer.close()
