"""The scheduler on a manual clock: aligned offsets, overlap, isolation, missed seconds, stop, reload."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Hashable
from dataclasses import dataclass, field

import pytest

from probe.attempt import Attempt, Channel, Outcome
from probe.clock import ManualClock
from probe.scheduler import (
    CATCH_UP_BURST,
    CATCH_UP_FACTOR,
    LATE_AFTER,
    MISSED_DETAIL,
    MISSED_PHASE,
    MISSED_RECORD_SECONDS,
    Launch,
    MissedLaunches,
    Scheduler,
    default_max_in_flight,
    launch_offset,
    launch_phase,
    missed_attempts,
    slot_free_lead,
)

START = 1_790_000_000.0


async def settle() -> None:
    """Let every task that can run, run (a few hops: wake, launch, attempt)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def run_until(clock: ManualClock, until: float) -> None:
    """Move the clock to each sleeper's exact wake time up to ``until``, running tasks between."""
    await settle()
    while (wake := clock.next_wake()) is not None and wake <= until:
        clock.advance(max(0.0, wake - clock.time()))
        await settle()
    clock.advance(until - clock.time())
    await settle()


async def stop(scheduler: Scheduler, clock: ManualClock) -> None:
    """Stop the scheduler, moving the clock to each wake-up until in-flight attempts are done."""
    task = asyncio.create_task(scheduler.stop())
    idle = 0
    while not task.done():
        await settle()
        wake = clock.next_wake()
        if wake is None:
            idle += 1
            assert idle < 100, "stop() is waiting for something the clock cannot bring"
            continue
        clock.advance(max(0.0, wake - clock.time()))
    await task


@dataclass(eq=False)
class ClockedProbe:
    """A probe whose attempts take ``duration`` manual-clock seconds, cut at the deadline."""

    clock: ManualClock
    target: str
    duration: float = 0.1
    timeout: float = 1.0
    rate: float = 1.0
    max_in_flight: int | None = None
    # Honour the deadline (a well-behaved probe) or overrun it (a buggy one).
    obey_deadline: bool = True
    service: str = "svc"
    channel: Channel = Channel.API
    fingerprint: Hashable = "v1"
    starts: list[float] = field(default_factory=list)

    async def attempt(self, *, deadline: float) -> Attempt:
        """Wait ``duration`` (or until the deadline), then report ok or timeout."""
        clock = self.clock
        started, mono = clock.time(), clock.monotonic()
        self.starts.append(started)
        wait = self.duration
        if self.obey_deadline:
            wait = min(wait, deadline - mono)
        await clock.sleep_until(started + wait)
        late = clock.monotonic() >= deadline and self.duration >= self.timeout
        return Attempt(
            service=self.service,
            channel=self.channel,
            target=self.target,
            prober="p",
            started_at=started,
            duration_s=clock.monotonic() - mono,
            outcome=Outcome.TIMEOUT if late else Outcome.OK,
        )


@dataclass
class Recorder:
    """Collects everything the scheduler reports."""

    attempts: list[Attempt] = field(default_factory=list)
    launches: list[Launch] = field(default_factory=list)
    missed: list[MissedLaunches] = field(default_factory=list)

    def scheduler(self, clock: ManualClock) -> Scheduler:
        """A scheduler on ``clock`` reporting into this recorder."""
        return Scheduler(
            clock=clock,
            on_attempt=self.attempts.append,
            on_launch=self.launches.append,
            on_missed=self.missed.append,
            prober="p",
        )

    def of(self, target: str) -> list[Attempt]:
        """The attempts of one target, in launch order."""
        return sorted((a for a in self.attempts if a.target == target), key=lambda a: a.started_at)


@pytest.mark.parametrize(
    ("rate", "seconds", "launches"),
    [
        pytest.param(1.0, 3, 3, id="rate-1"),
        pytest.param(4.0, 2, 8, id="rate-4"),
        pytest.param(0.5, 4, 2, id="rate-half"),
    ],
)
async def test_launches_on_exact_offsets(rate: float, seconds: int, launches: int) -> None:
    """Launches fall exactly on (k + hash offset) / rate of absolute time, evenly spaced."""
    clock = ManualClock(START)
    recorder = Recorder()
    probe = ClockedProbe(clock, "t", rate=rate)
    scheduler = recorder.scheduler(clock)
    scheduler.replace([probe])
    await run_until(clock, START + seconds)
    await stop(scheduler, clock)
    period = 1 / rate
    phase = launch_phase("svc", "t", period)
    first = math.ceil((START - phase) / period)
    expected = [(first + i) * period + phase for i in range(launches)]
    assert probe.starts == expected
    assert [launch.scheduled for launch in recorder.launches] == expected
    assert [launch.lag for launch in recorder.launches] == [0.0] * launches
    assert [a.started_at for a in recorder.of("t")] == expected
    assert recorder.missed == []


async def test_targets_spread_over_the_second() -> None:
    """Different targets get different, stable offsets, each launched once per second."""
    clock = ManualClock(START)
    recorder = Recorder()
    probes = [ClockedProbe(clock, f"t{i}") for i in range(20)]
    scheduler = recorder.scheduler(clock)
    scheduler.replace(probes)
    await run_until(clock, START + 2)
    await stop(scheduler, clock)
    offsets = {round(launch.scheduled % 1, 9) for launch in recorder.launches}
    assert len(offsets) == 20
    assert sorted(launch_phase("svc", f"t{i}", 1.0) for i in range(20)) == pytest.approx(
        sorted(launch.scheduled % 1 for launch in recorder.launches[:20]), abs=1e-6
    )
    per_second = [math.floor(launch.scheduled) for launch in recorder.launches]
    assert per_second.count(int(START)) == 20
    assert per_second.count(int(START) + 1) == 20


async def test_slow_attempts_overlap() -> None:
    """Attempts longer than a second overlap instead of delaying the next launch."""
    clock = ManualClock(START)
    recorder = Recorder()
    probe = ClockedProbe(clock, "slow", duration=2.5, timeout=3.0)
    scheduler = recorder.scheduler(clock)
    scheduler.replace([probe])
    await run_until(clock, START + 3.99)
    assert scheduler.in_flight == 3
    await run_until(clock, START + 6)
    await stop(scheduler, clock)
    attempts = recorder.of("slow")
    starts = [a.started_at for a in attempts]
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx(
        [1.0] * (len(starts) - 1)
    )
    assert [a.duration_s for a in attempts] == pytest.approx([2.5] * len(attempts))
    assert [launch.lag for launch in recorder.launches] == [0.0] * len(recorder.launches)


async def test_hung_target_does_not_delay_others() -> None:
    """A target that hangs to its deadline never moves another target's launches."""
    clock = ManualClock(START)
    recorder = Recorder()
    hung = ClockedProbe(clock, "hung", duration=math.inf, timeout=5.0)
    healthy = ClockedProbe(clock, "healthy")
    scheduler = recorder.scheduler(clock)
    scheduler.replace([hung, healthy])
    await run_until(clock, START + 10)
    await stop(scheduler, clock)
    healthy_launches = [x for x in recorder.launches if x.target == "healthy"]
    assert len(healthy_launches) == 10
    assert {x.lag for x in healthy_launches} == {0.0}
    assert {a.outcome for a in recorder.of("healthy")} == {Outcome.OK}
    hung_attempts = recorder.of("hung")
    assert len(hung_attempts) == 10  # the last five finished at their deadlines during stop()
    assert {a.outcome for a in hung_attempts} == {Outcome.TIMEOUT}
    assert [a.duration_s for a in hung_attempts] == pytest.approx([5.0] * 10)
    assert recorder.missed == []


async def test_missed_seconds_reported_after_a_stall() -> None:
    """When the loop stalls past whole seconds, those seconds are reported, not skipped silently."""
    clock = ManualClock(START)
    recorder = Recorder()
    probe = ClockedProbe(clock, "t")
    scheduler = recorder.scheduler(clock)
    scheduler.replace([probe])
    await run_until(clock, START + 2)
    launched_before = len(probe.starts)
    # A stall: 3.5 s pass while no task runs.
    clock.advance(3.5)
    await run_until(clock, START + 8)
    await stop(scheduler, clock)
    offset = launch_phase("svc", "t", 1.0)
    stall_end = START + 5.5
    assert len(recorder.missed) == 1
    missed = recorder.missed[0]
    first = int(START) + launched_before
    last = math.floor(stall_end) - 1
    assert (missed.first_second, missed.last_second) == (first, last)
    assert missed.count == last - first + 1
    assert missed.reason == "stalled"
    launched_seconds = [math.floor(s) for s in probe.starts]
    assert not set(range(first, last + 1)) & set(launched_seconds)
    # The stall's own second is still launched (late) if its slot had passed within it.
    if offset < stall_end % 1:
        resumed = next(x for x in recorder.launches if math.floor(x.scheduled) == last + 1)
        assert resumed.lag == pytest.approx(stall_end - resumed.scheduled)
    assert launched_seconds[-1] == int(START) + 7


async def test_in_flight_cap_reports_refused_launches() -> None:
    """A probe overrunning its deadlines is capped at max_in_flight; refused launches are reported."""
    clock = ManualClock(START)
    recorder = Recorder()
    probe = ClockedProbe(
        clock, "stuck", duration=100.0, timeout=1.0, max_in_flight=2, obey_deadline=False
    )
    scheduler = recorder.scheduler(clock)
    scheduler.replace([probe])
    await run_until(clock, START + 5)
    assert len(probe.starts) == 2
    assert [(m.reason, m.count) for m in recorder.missed] == [("in_flight", 1)] * 3
    await stop(scheduler, clock)
    # Cancelled past their deadline: delivered as probe errors, never as unavailability.
    assert [a.outcome for a in recorder.of("stuck")] == [Outcome.PROBE_ERROR] * 2
    assert recorder.of("stuck")[0].detail == "cancelled past its deadline"


async def test_stop_lets_in_flight_attempts_finish() -> None:
    """stop() launches nothing more and waits for attempts still inside their deadlines."""
    clock = ManualClock(START)
    recorder = Recorder()
    probe = ClockedProbe(clock, "t", duration=0.8, timeout=2.0)
    scheduler = recorder.scheduler(clock)
    scheduler.replace([probe])
    await run_until(clock, START + 1 + launch_phase("svc", "t", 1.0) + 0.1)
    assert scheduler.in_flight == 1
    await stop(scheduler, clock)
    assert len(probe.starts) == 2
    assert [a.outcome for a in recorder.of("t")] == [Outcome.OK, Outcome.OK]
    assert scheduler.in_flight == 0
    with pytest.raises(RuntimeError, match="stopped"):
        scheduler.replace([probe])


async def test_replace_keeps_unchanged_and_in_flight() -> None:
    """A reload keeps unchanged targets' loops, finishes changed targets' attempts, adds new ones."""
    clock = ManualClock(START)
    recorder = Recorder()
    kept = ClockedProbe(clock, "kept")
    changed = ClockedProbe(clock, "changed", duration=0.9, timeout=2.0)
    removed = ClockedProbe(clock, "removed")
    scheduler = recorder.scheduler(clock)
    scheduler.replace([kept, changed, removed])
    await run_until(clock, START + 1.999)
    changed_v2 = ClockedProbe(clock, "changed", fingerprint="v2")
    added = ClockedProbe(clock, "added")
    kept_again = ClockedProbe(clock, "kept")  # same fingerprint: the old loop stays
    scheduler.replace([kept_again, changed_v2, added])
    assert scheduler.targets() == [
        ("svc", "api", "added"),
        ("svc", "api", "changed"),
        ("svc", "api", "kept"),
    ]
    await run_until(clock, START + 4)
    await stop(scheduler, clock)
    assert len(kept.starts) == 4
    assert kept_again.starts == []
    assert len(removed.starts) == 2
    assert len(changed.starts) == 2
    assert len(changed_v2.starts) >= 1
    assert len(added.starts) >= 1
    # Every launched attempt was delivered, including the changed target's last one.
    launched = sum(len(p.starts) for p in (kept, changed, removed, changed_v2, added))
    assert len(recorder.attempts) == launched


@dataclass(eq=False)
class RaisingProbe(ClockedProbe):
    """A buggy probe that raises instead of returning an Attempt."""

    async def attempt(self, *, deadline: float) -> Attempt:
        """Raise, as a bug would."""
        self.starts.append(self.clock.time())
        raise ZeroDivisionError


async def test_probe_bug_and_sink_bug_are_contained(caplog: pytest.LogCaptureFixture) -> None:
    """A raising probe yields probe_error attempts; a raising sink is logged, probing goes on."""
    clock = ManualClock(START)
    delivered: list[Attempt] = []

    def sink(attempt: Attempt) -> None:
        delivered.append(attempt)
        raise RuntimeError("sink down")

    scheduler = Scheduler(clock=clock, on_attempt=sink, prober="p")
    scheduler.replace([RaisingProbe(clock, "bug")])
    await run_until(clock, START + 3)
    await stop(scheduler, clock)
    assert [(a.outcome, a.detail) for a in delivered] == [
        (Outcome.PROBE_ERROR, "probe raised ZeroDivisionError")
    ] * 3
    assert "sink down" in caplog.text


@pytest.mark.parametrize(
    ("timeout", "rate", "cap"),
    [
        pytest.param(10.0, 1.0, 11, id="10s-1hz"),
        pytest.param(0.5, 1.0, 2, id="half-second"),
        pytest.param(2.0, 2.5, 6, id="2s-2.5hz"),
    ],
)
def test_default_max_in_flight(timeout: float, rate: float, cap: int) -> None:
    """The default cap is ceil(timeout * rate) + 1."""
    assert default_max_in_flight(timeout, rate) == cap


def test_launch_offset_is_stable() -> None:
    """The offset is a pure function of service and target, in [0, 1)."""
    assert launch_offset("svc", "t") == launch_offset("svc", "t")
    assert launch_offset("svc", "t") != launch_offset("svc", "u")
    assert all(0 <= launch_offset("s", str(i)) < 1 for i in range(100))
    assert launch_offset("sparkpost", "account") == pytest.approx(0.92861, abs=1e-5)
    # Every launch leaves a tenth of its period before its second ends.
    assert all(0 <= launch_phase("s", str(i), 0.5) < 0.45 for i in range(100))
    assert launch_phase("sparkpost", "account", 1.0) == pytest.approx(0.83575, abs=1e-5)


async def test_catch_up_after_a_stall_is_paced_not_a_burst() -> None:
    """After a stall, late launches go CATCH_UP_BURST at once, then at twice the normal rate.

    Whatever the pace cannot fit into a launch's own second is reported missed: each slot
    is launched in its second or counted, never moved into the next second.
    """
    clock = ManualClock(START)
    recorder = Recorder()
    probes = [ClockedProbe(clock, f"t{i}", duration=0.01) for i in range(400)]
    scheduler = recorder.scheduler(clock)
    scheduler.replace(probes)
    await run_until(clock, START + 2)
    recorder.launches.clear()
    recorder.missed.clear()
    # A stall of 0.9 s inside one second: every slot it passed is now late at once.
    stalled_second = math.floor(clock.time())
    clock.advance(0.9)
    stall_end = clock.time()
    await run_until(clock, stalled_second + 3)
    await stop(scheduler, clock)
    passed_by = [x for x in recorder.launches if math.floor(x.scheduled) == stalled_second]
    passed_by = [x for x in passed_by if x.scheduled < stall_end]
    late = [x for x in passed_by if x.lag > LATE_AFTER]
    at_once = [x for x in late if abs(x.scheduled + x.lag - stall_end) < 1e-6]
    assert len(at_once) == CATCH_UP_BURST
    step = 1 / (CATCH_UP_FACTOR * len(probes))
    starts = sorted(x.scheduled + x.lag for x in late)
    gaps = [b - a for a, b in itertools.pairwise(starts[CATCH_UP_BURST - 1 :])]
    assert min(gaps) == pytest.approx(step, abs=1e-6)
    # Every launch stays in its second; those the pace pushed past it are counted.
    assert all(math.floor(x.scheduled + x.lag) == math.floor(x.scheduled) for x in passed_by)
    missed = sum(m.count for m in recorder.missed if m.first_second == stalled_second)
    passed = sum(
        1 for p in probes if stalled_second + launch_phase("svc", p.target, 1.0) < stall_end
    )
    assert missed > 0
    assert len(passed_by) + missed == passed
    assert {m.reason for m in recorder.missed} == {"stalled"}


def test_missed_attempts_stand_for_each_slot() -> None:
    """Missed launches become probe_error records at their slots, the reason in the detail."""
    missed = MissedLaunches(
        "svc", Channel.API, "t", 100, 101, 4, "stalled", slots=(100.25, 100.75, 101.25, 101.75)
    )
    records = missed_attempts(missed, "p1")
    assert [r.started_at for r in records] == [100.25, 100.75, 101.25, 101.75]
    assert {r.outcome for r in records} == {Outcome.PROBE_ERROR}
    assert {(r.phase, r.detail, r.prober) for r in records} == {
        (MISSED_PHASE, MISSED_DETAIL["stalled"], "p1")
    }


async def test_long_stall_keeps_records_of_its_latest_seconds_and_the_exact_count() -> None:
    """A stall longer than MISSED_RECORD_SECONDS counts every slot but keeps records of the last."""
    clock = ManualClock(START)
    recorder = Recorder()
    probe = ClockedProbe(clock, "t", rate=2.0)
    scheduler = recorder.scheduler(clock)
    scheduler.replace([probe])
    await run_until(clock, START + 1)
    clock.advance(MISSED_RECORD_SECONDS + 20)
    await run_until(clock, clock.time() + 1)
    await stop(scheduler, clock)
    (missed,) = recorder.missed
    assert missed.count >= (MISSED_RECORD_SECONDS + 19) * 2
    assert len(missed.slots) == MISSED_RECORD_SECONDS * 2
    assert missed.slots == tuple(sorted(missed.slots))
    assert math.floor(missed.slots[-1]) == missed.last_second


@pytest.mark.parametrize(
    ("busy", "launched"),
    [
        pytest.param(0.05, True, id="busy-within-the-second-launches-late"),
        pytest.param(1.0, False, id="busy-past-the-second-is-missed"),
    ],
)
async def test_a_lane_starts_from_its_replace_not_its_first_run(
    busy: float, launched: bool
) -> None:
    """A slot passing between replace() and the lane's first run is launched late or missed."""
    offset = launch_phase("svc", "t", 1.0)
    # Busy for a second from just before the slot: past the slot's second, not its next slot.
    assert 0.01 < offset < 0.9
    since = START + offset - 0.01
    clock = ManualClock(since)
    recorder = Recorder()
    probe = ClockedProbe(clock, "t")
    scheduler = recorder.scheduler(clock)
    scheduler.replace([probe])
    clock.advance(busy)  # the loop is busy before the new lane's task first runs
    await run_until(clock, START + 3)
    await stop(scheduler, clock)
    slot = START + offset
    if launched:
        assert recorder.launches[0].scheduled == slot
        assert recorder.launches[0].lag == pytest.approx(since + busy - slot)
        assert recorder.missed == []
    else:
        assert [(m.reason, m.count, m.first_second) for m in recorder.missed] == [
            ("stalled", 1, int(START))
        ]
        assert recorder.launches[0].scheduled == slot + 1
    assert [math.floor(s) for s in probe.starts] == list(
        range(int(START) + (not launched), int(START) + 3)
    )


async def test_attempt_whose_task_starts_after_its_second_is_missed() -> None:
    """A launch whose task only runs once its second is over makes no attempt: it is missed."""
    clock = ManualClock(START)
    recorder = Recorder()
    probe = ClockedProbe(clock, "t")
    scheduler = recorder.scheduler(clock)
    scheduler.replace([probe])
    await settle()
    slot = clock.next_wake()
    assert slot is not None
    clock.advance(slot - clock.time())
    await asyncio.sleep(0)  # the launch loop wakes and creates the attempt's task
    assert len(recorder.launches) == 1
    clock.advance(1.0)  # ... which only gets to run in the next second
    await settle()
    await stop(scheduler, clock)
    assert math.floor(slot) not in [math.floor(start) for start in probe.starts]
    assert [(m.reason, m.count, m.first_second) for m in recorder.missed] == [
        ("stalled", 1, math.floor(slot))
    ]


@pytest.mark.parametrize("rate", [pytest.param(1.0, id="rate-1"), pytest.param(4.0, id="rate-4")])
async def test_a_switch_just_before_a_second_takes_effect_exactly_at_it(rate: float) -> None:
    """Targets replaced slot_free_lead() before a second: the old ones' last launch is in the
    second before, the new ones' first in that second (no slot falls in between)."""
    clock = ManualClock(START)
    recorder = Recorder()
    scheduler = recorder.scheduler(clock)
    old = [ClockedProbe(clock, f"old{i}", rate=rate) for i in range(40)]
    new = [ClockedProbe(clock, f"new{i}", rate=rate) for i in range(40)]
    scheduler.replace(old)
    switch = int(START) + 3
    await run_until(clock, switch - slot_free_lead([rate]))
    scheduler.replace(new)
    await run_until(clock, switch + 2)
    await stop(scheduler, clock)
    seconds = {
        name: {math.floor(x.scheduled) for x in recorder.launches if x.target.startswith(name)}
        for name in ("old", "new")
    }
    assert max(seconds["old"]) == switch - 1
    assert min(seconds["new"]) == switch
    # Every target launched in every second on its side of the switch.
    assert len([x for x in recorder.launches if math.floor(x.scheduled) == switch - 1]) == 40 * rate
    assert len([x for x in recorder.launches if math.floor(x.scheduled) == switch]) == 40 * rate
