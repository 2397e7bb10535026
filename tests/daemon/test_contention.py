"""Under CPU contention every launch is accounted for: made, or counted as missed and no_data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from classifier.engine import Classifier
from classifier.verdict import Verdict
from incidents.recorder import Recorder
from probe.attempt import Attempt
from probe.clock import SystemClock
from probe.scheduler import MISSED_DETAIL, MISSED_PHASE, launch_phase
from slawatch.metrics import Metrics
from slawatch.probing import Probing
from slawatch.status import Health
from tests.support.configs import config_from_yaml
from tests.support.daemon import stop_process
from tests.support.paths import ROOT
from tests.support.servers import HOST, free_port

TARGETS = 200
# The loop is blocked this long once (what a starved core does to it, made certain):
# longer than 2 s, so at least one whole second has no launch at all.
STALL_S = 2.2
BUSY = "while True: pass"


@contextlib.contextmanager
def _target_server(folder: Path) -> Iterator[int]:
    """The benchmarks' loopback HTTP server (always 200) in its own process."""
    port = free_port()
    ready = folder / "ready.json"
    command = [sys.executable, str(ROOT / "bench" / "bench_common.py"), "serve"]
    proc = subprocess.Popen([*command, "--port", str(port), "--ready", str(ready)], cwd=ROOT)
    try:
        deadline = time.perf_counter() + 30
        while not ready.exists():
            assert proc.poll() is None, "the target server exited"
            assert time.perf_counter() < deadline, "the target server did not start"
            time.sleep(0.05)
        json.loads(ready.read_text())
        yield port
    finally:
        stop_process(proc)


@contextlib.contextmanager
def _sharing_a_core_with_a_busy_process() -> Iterator[None]:
    """This process and a spinning one pinned to the same core; both undone on exit."""
    before = os.sched_getaffinity(0)
    core = min(before)
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        os.sched_setaffinity(busy.pid, {core})
        os.sched_setaffinity(0, {core})
        yield
    finally:
        os.sched_setaffinity(0, before)
        busy.kill()
        busy.wait()


def _slot_second(record: Attempt) -> int:
    """The second of the launch slot a record belongs to (at most one period before it)."""
    phase = launch_phase(record.service, record.target, 1.0)
    # The slots are k + phase (rate 1); a missed launch's record is stamped exactly at its
    # slot, which the subtraction may put a rounding error below k.
    return math.floor(record.started_at - phase + 1e-6)


def _missed_total(registry: CollectorRegistry) -> float:
    total = 0.0
    for family in registry.collect():
        if family.name == "slawatch_missed_launches":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


@pytest.mark.slow
async def test_missed_launches_are_counted_and_judged_no_data(tmp_path: Path) -> None:
    """With a busy process on the prober's core and the loop stalled once, no second goes silent.

    Each target's every second in the window has exactly one record: an attempt, or the
    record of a missed launch; the missed ones are counted in the metric, the seconds
    nobody launched in are judged no_data, and their evidence says why.
    """
    with _target_server(tmp_path) as port:
        api = [{"name": f"t{i}", "url": f"http://{HOST}:{port}/t{i}"} for i in range(TARGETS)]
        loaded = config_from_yaml(
            {"prober": {"id": "p1"}, "services": [{"name": "svc", "api": api}]}
        )
        registry = CollectorRegistry()
        metrics = Metrics(registry, "test")
        metrics.prepare(loaded.config)
        records: list[Attempt] = []
        clock = SystemClock()
        probing = Probing(
            loaded, clock=clock, metrics=metrics, health=Health(), on_attempt=records.append
        )
        with _sharing_a_core_with_a_busy_process():
            probing.start()
            started = clock.time()
            await asyncio.sleep(2.5)
            time.sleep(STALL_S)  # noqa: ASYNC251  (the stall: the loop does nothing meanwhile)
            await asyncio.sleep(2.5)
            stopped = clock.time()
            await probing.stop()

    # From the second after the launch loops began (they start as the loop first yields).
    first, last = math.floor(started) + 2, math.floor(stopped) - 1
    missed = [r for r in records if r.phase == MISSED_PHASE]
    assert missed, "the stall missed no launch"
    # Every missed launch is counted once, and stands as a record.
    assert _missed_total(registry) == len(missed)
    assert {r.detail for r in missed} <= set(MISSED_DETAIL.values())
    # No silent gap, no slot launched twice: one record per target and slot. A probe stamps
    # its attempt as its task starts, a little after the launch (more on a busy core), so
    # each record is put back on the slot it was launched for.
    per_slot = Counter((r.target, _slot_second(r)) for r in records)
    per_slot = Counter({key: n for key, n in per_slot.items() if first <= key[1] <= last})
    expected = {(f"t{i}", s) for i in range(TARGETS) for s in range(first, last + 1)}
    gaps = sorted(expected - set(per_slot))
    assert not gaps, f"launches neither made nor counted: {gaps[:5]}"
    assert set(per_slot) == expected
    assert set(per_slot.values()) == {1}

    # The classifier sees every second: those nobody launched in are no_data.
    classifier = Classifier.from_config(loaded.config, loaded.catalog)
    recorder = Recorder.from_config(loaded)
    for record in sorted(records, key=lambda r: r.started_at):
        classifier.add(record)
        recorder.attempt(record)
    found = classifier.advance_through(last)
    recorder.record(found.verdicts, found.signals, now=stopped)
    verdicts = {v.second: v.verdict for v in found.verdicts if v.channel == "api"}
    assert set(range(first, last + 1)) <= set(verdicts)
    launched = Counter(r.second for r in records if r.phase != MISSED_PHASE)
    for second in range(first, last + 1):
        if not launched[second]:
            assert verdicts[second] is Verdict.NO_DATA, second
    silent = [s for s in range(first, last + 1) if not launched[s]]
    assert silent, "the stall left no whole second without a launch"
    # The evidence of a no_data second holds the missed launches with their reason.
    samples = recorder.take().samples
    for second in silent:
        kept = [a for a in samples if a.second == second]
        assert kept
        assert {a.phase for a in kept} == {MISSED_PHASE}
        assert {a.detail for a in kept} == {MISSED_DETAIL["stalled"]}
