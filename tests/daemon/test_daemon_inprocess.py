"""The daemon's own loop, in process on a manual clock: retention, status and user events."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from incidents.lifecycle import user_event
from incidents.memory_store import MemoryStore
from probe.attempt import Attempt, Channel
from probe.clock import ManualClock
from probe.scheduler import MissedLaunches, missed_attempts
from slawatch.daemon import TICK_OFFSET, Daemon
from tests.support.configs import config_from_yaml
from tests.support.timeline import SECONDS, expand

T0 = 1_790_000_000
HOUR = 3_600


def _daemon(tmp_path: Path, store: MemoryStore) -> Daemon:
    config = {
        "prober": {"id": "p-1"},
        "storage": {"retention_runs": "1h", "retention_attempts": "10m"},
        "services": [
            {
                "name": "mail",
                "sla": {"policy": "megaport", "calendar": "uk"},
                "classifier": {"degraded_min_seconds": 3},
                "api": [{"name": "send", "url": "http://127.0.0.1:9/", "timeout": "1s"}],
            }
        ],
    }
    loaded = config_from_yaml(config, path=tmp_path / "slawatch.yaml")
    return Daemon(loaded, clock=ManualClock(T0), registry=CollectorRegistry(), store=store)


async def _run_seconds(daemon: Daemon, first: int, timeline: str) -> None:
    for offset, char in enumerate(expand(timeline)):
        second = first + offset
        (outcome,) = SECONDS[char].outcomes
        daemon._on_attempt(
            Attempt("mail", Channel.API, "send", "p-1", second + 0.2, 0.01, outcome, detail="HTTP")
        )
        await daemon.tick(second + 1 + TICK_OFFSET)


async def test_status_incident_and_retention(tmp_path: Path) -> None:
    """Verdicts reach the status, an incident opens, and retention drops old rows later."""
    store = MemoryStore()
    daemon = _daemon(tmp_path, store)
    await daemon.open_store()
    # A second is final once the 1 s timeout plus 1 s have passed: the last two are open.
    await _run_seconds(daemon, T0, "3. 5s 2.")
    status = daemon.status.of("mail")
    assert status["api"].verdict == "unavailable"
    assert status["api"].streak == 5
    [incident] = store.incidents()
    assert incident.severity == 2
    assert daemon.follower.open[incident.id].incident.id == incident.id
    assert store.samples("mail", T0, T0 + 20)
    # A user event goes through the same store, at once.
    updated = await daemon.record_event(
        user_event(incident.id, "provider_responded", at=T0 + 10, source="api", recorded_at=T0 + 10)
    )
    assert updated.id == incident.id
    assert [r for r in store.runs("mail", "api", T0, T0 + 20) if r.last < T0 + 10]
    # Two hours later the runs (kept an hour) and samples (kept ten minutes) that ended
    # before then are gone; the run covering the gap, which ends now, stays.
    later = T0 + 2 * HOUR
    await _run_seconds(daemon, later, ".")
    assert not [r for r in store.runs("mail", "api", T0, T0 + 20) if r.last < later - HOUR]
    assert not store.samples("mail", T0, T0 + 20)
    assert store.runs("mail", "api", later - 10, later + 10)


async def test_reload_keeps_the_per_target_shape_of_the_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """metrics.per_target is read at start-up: a reload that changes it is logged, not applied."""
    daemon = _daemon(tmp_path, MemoryStore())
    config = daemon.loaded.config.model_dump(mode="json", exclude_none=True)
    config["metrics"] = {"per_target": False}
    with caplog.at_level(logging.WARNING, logger="slawatch.daemon"):
        daemon.apply(config_from_yaml(config, path=tmp_path / "slawatch.yaml"))
    await daemon.probing.stop()
    assert daemon.metrics.table.per_target is True
    assert "metrics.per_target takes effect at the next restart" in caplog.messages


async def test_missed_launch_records_are_judged_not_counted_as_attempts(tmp_path: Path) -> None:
    """A missed launch's record makes its second no_data; it is no attempt in the metrics."""
    daemon = _daemon(tmp_path, MemoryStore())
    missed = MissedLaunches("mail", Channel.API, "send", T0, T0, 1, "stalled", slots=(T0 + 0.2,))
    for record in missed_attempts(missed, "p-1"):
        daemon._on_attempt(record)
    await daemon.tick(T0 + 3 + TICK_OFFSET)
    page = (await daemon.metrics.exposition()).decode()
    assert (
        'slawatch_attempts_total{channel="api",outcome="probe_error",service="mail",target="send"} 0.0'
        in page
    )
    assert daemon.status.channels["mail"]["api"].verdict == "no_data"
