"""The scheduler: launches every probe ``rate`` times a second at fixed, wall-clock-aligned offsets.

Each target gets one launch loop. Its launches fall at ``(k + 0.9 h) / rate`` seconds of
epoch time for whole ``k``, where ``h`` in [0, 1) is a stable hash of ``service/target``:
aligned to absolute seconds (never ``sleep(1)`` in a loop, so no drift), evenly spaced
when ``rate`` > 1, and spread over the first nine tenths of the period across targets, so
a thousand targets do not all start at the boundary and every launch has a tenth of a
period of slack before its second ends. Each attempt runs in its own task: attempts
overlap when they outlast their period (up to ``max_in_flight`` per target, default
``ceil(timeout * rate) + 1``), and a slow or hung target never delays another's launch.

Every launch reports its lag (actual minus scheduled wall time) through ``on_launch``.
When the loop stalls past the end of a launch's second (before the launch, or between
the launch and its task's start), the launch is not made late into another second: the
seconds are reported through ``on_missed`` (reason ``stalled``), as is a launch refused
because the target has too many attempts in flight (reason ``in_flight``), with the slots
they were due at: :func:`missed_attempts` turns them into ``probe_error`` records for the
classifier and the evidence.

Catching up: after a stall every lane wakes at once, and launching all of their late
slots together would be a burst that makes the next seconds late too. Late launches
(more than ``LATE_AFTER`` behind) are therefore paced: at most ``CATCH_UP_BURST`` at
once, then at ``CATCH_UP_FACTOR`` times the scheduler's normal launch rate. A late launch
the pace pushes past the end of its second is missed (``stalled``), never moved into the
next one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from probe.attempt import Attempt, Channel, Outcome
from probe.base import Probe
from probe.clock import Clock

# Under "slawatch", the logger slawatch.logs configures (formatted and redacted).
log = logging.getLogger("slawatch.probe")

# How long past the latest deadline stop() waits before cancelling overrunning attempts.
STOP_GRACE = 0.25
# The phase of the probe_error attempt that stands for a launch that did not happen.
MISSED_PHASE = "launch"
MISSED_DETAIL = {
    "stalled": "launch missed: the prober's event loop was busy past the launch's second",
    "in_flight": "launch refused: the target already had its most attempts in flight",
}
# Per lane and stall, attempts made for at most this many seconds of missed launches (the
# latest); the count in ``MissedLaunches`` stays exact. A longer stall is the prober down.
MISSED_RECORD_SECONDS = 30
# The part of each period the launches are spread over (see launch_phase).
LAUNCH_SPREAD = 0.9
# A launch this late (seconds) is a catch-up launch, paced as the module docstring says.
LATE_AFTER = 0.005
CATCH_UP_BURST = 20
CATCH_UP_FACTOR = 2.0


@dataclass(frozen=True, slots=True)
class Launch:
    """One launch as it happened: when it was due and how late it came (seconds)."""

    service: str
    channel: Channel
    target: str
    scheduled: float
    lag: float


@dataclass(frozen=True, slots=True)
class MissedLaunches:
    """Launches that did not happen: the seconds they belonged to get no attempt from us."""

    service: str
    channel: Channel
    target: str
    first_second: int
    last_second: int
    count: int
    # "stalled": the loop woke after the launch's second had ended;
    # "in_flight": the target already had max_in_flight attempts running.
    reason: str
    # The scheduled wall times of the missed launches (the latest MISSED_RECORD_SECONDS
    # of them when a stall was longer), for the records that stand for them.
    slots: tuple[float, ...] = ()


def missed_attempts(missed: MissedLaunches, prober: str) -> list[Attempt]:
    """The ``probe_error`` attempts that stand for missed launches, one per slot.

    Stamped with the slot (so each belongs to its second), phase ``launch`` and the
    reason in the detail: the classifier drops them before judging, so a second with
    nothing else is ``no_data``, and its evidence shows why it has no attempt.
    """
    detail = MISSED_DETAIL[missed.reason]
    return [
        Attempt(
            service=missed.service,
            channel=missed.channel,
            target=missed.target,
            prober=prober,
            started_at=slot,
            duration_s=0.0,
            outcome=Outcome.PROBE_ERROR,
            phase=MISSED_PHASE,
            detail=detail,
        )
        for slot in missed.slots
    ]


def launch_offset(service: str, target: str) -> float:
    """The stable fraction, in [0, 1), of a target's place among the launches of a period."""
    digest = hashlib.sha256(f"{service}/{target}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def launch_phase(service: str, target: str, period: float) -> float:
    """When in each of its periods a target launches (seconds after the period's start).

    The launches are spread over the first ``LAUNCH_SPREAD`` of the period, so every
    launch has at least the rest of it before its second ends: a stall shorter than that
    delays a launch but never costs one.
    """
    return launch_offset(service, target) * LAUNCH_SPREAD * period


def slot_free_lead(rates: Iterable[float]) -> float:
    """A time before each second's start at which no launch slot of these rates falls.

    Launches leave the last ``1 - LAUNCH_SPREAD`` of every period free; this is half of
    that for the fastest rate, so a change of the launched targets made this long before a
    second takes effect exactly at it.
    """
    return (1 - LAUNCH_SPREAD) / 2 / max(rates, default=1.0)


def default_max_in_flight(timeout: float, rate: float) -> int:
    """Enough room for every attempt that can still be running, plus one."""
    return math.ceil(timeout * rate) + 1


@dataclass(eq=False)
class _Lane:
    """One target's launch loop and its attempts in flight."""

    probe: Probe
    period: float
    phase: float
    max_in_flight: int
    task: asyncio.Task[None] | None = None
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)


def _key(probe: Probe) -> tuple[str, str, str]:
    return (probe.service, str(probe.channel), probe.target)


class Scheduler:
    """Launches attempts for a replaceable set of probes and hands each finished one to a sink."""

    def __init__(
        self,
        *,
        clock: Clock,
        on_attempt: Callable[[Attempt], object],
        prober: str = "",
        on_launch: Callable[[Launch], object] | None = None,
        on_missed: Callable[[MissedLaunches], object] | None = None,
    ) -> None:
        self._clock = clock
        # Stamped on the probe_error attempts the scheduler makes itself.
        self._prober = prober
        self._on_attempt = on_attempt
        self._on_launch = on_launch
        self._on_missed = on_missed
        self._lanes: dict[tuple[str, str, str], _Lane] = {}
        # Every attempt task with its deadline (monotonic), across lanes old and new, so
        # stop() can wait for them and a reload never drops one.
        self._attempts: dict[asyncio.Task[None], float] = {}
        # Launch loops cancelled by a reload, awaited by stop().
        self._retired: set[asyncio.Task[None]] = set()
        self._stopped = False
        # Catch-up pacing (a GCRA): the wall time the next late launch is due at, and the
        # spacing of late launches (from the sum of every lane's rate).
        self._pace_at = -math.inf
        self._pace_step = 1.0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def in_flight(self) -> int:
        """Attempts running now."""
        return len(self._attempts)

    def targets(self) -> list[tuple[str, str, str]]:
        """(service, channel, target) of every scheduled probe."""
        return sorted(self._lanes)

    def replace(self, probes: Iterable[Probe], *, since: float | None = None) -> None:
        """Schedule exactly ``probes``: unchanged ones keep their loops; no attempt is dropped.

        A new lane's first slot is the first at or after ``since`` (default: now), not after
        its loop first runs: a slot that falls while the loop is busy is launched late, or
        reported missed, never silently skipped.
        """
        if self._stopped:
            raise RuntimeError("the scheduler has been stopped")
        since = self._clock.time() if since is None else since
        wanted = {_key(probe): probe for probe in probes}
        for key, lane in list(self._lanes.items()):
            new = wanted.get(key)
            if new is None or new.fingerprint != lane.probe.fingerprint:
                self._retire(lane)
                del self._lanes[key]
        for key, probe in wanted.items():
            if key not in self._lanes:
                self._lanes[key] = self._start(probe, since)
        total_rate = sum(lane.probe.rate for lane in self._lanes.values())
        self._pace_step = 1.0 / (CATCH_UP_FACTOR * total_rate) if total_rate else 1.0

    async def stop(self) -> None:
        """Stop launching; let attempts in flight finish up to their deadlines, then cancel."""
        self._stopped = True
        for lane in self._lanes.values():
            self._retire(lane)
        self._lanes.clear()
        if self._retired:
            await asyncio.gather(*self._retired, return_exceptions=True)
        while self._attempts:
            latest = max(self._attempts.values())
            wall = self._clock.time() + (latest - self._clock.monotonic()) + STOP_GRACE
            tasks = set(self._attempts)
            waiter = asyncio.ensure_future(self._clock.sleep_until(wall))
            try:
                await asyncio.wait({*tasks, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if waiter.done():
                    # Past every deadline and the grace: what still runs overran its deadline.
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                waiter.cancel()
                await asyncio.gather(waiter, return_exceptions=True)

    def _start(self, probe: Probe, since: float) -> _Lane:
        period = 1.0 / probe.rate
        lane = _Lane(
            probe=probe,
            period=period,
            phase=launch_phase(probe.service, probe.target, period),
            max_in_flight=probe.max_in_flight or default_max_in_flight(probe.timeout, probe.rate),
        )
        lane.task = asyncio.create_task(
            self._run(lane, since), name=f"launch {'/'.join(_key(probe))}"
        )
        return lane

    def _retire(self, lane: _Lane) -> None:
        if lane.task is not None and not lane.task.done():
            lane.task.cancel()
            self._retired.add(lane.task)
            lane.task.add_done_callback(self._retired.discard)

    async def _run(self, lane: _Lane, since: float) -> None:
        """Launch one target's attempts at its slots from ``since`` until cancelled."""
        clock = self._clock
        period, phase = lane.period, lane.phase
        k = math.ceil((since - phase) / period)
        while True:
            slot = k * period + phase
            await clock.sleep_until(slot)
            now = clock.time()
            end = math.floor(slot) + 1
            if now >= end:
                # Woken after the slot's whole second: report every slot whose second has
                # ended, and resume with the first slot of the current second.
                last = math.ceil((math.floor(now) - phase) / period) - 1
                self._missed(lane, k, last, "stalled")
                k = last + 1
                continue
            if now - slot > LATE_AFTER:
                at = self._pace(now)
                if at >= end:
                    self._missed(lane, k, k, "stalled")
                    k += 1
                    continue
                if at > now:
                    await clock.sleep_until(at)
                    now = clock.time()
                    if now >= end:
                        self._missed(lane, k, k, "stalled")
                        k += 1
                        continue
            self._launch(lane, slot, now)
            k += 1

    def _pace(self, now: float) -> float:
        """When a late launch asked for at ``now`` may go, and reserve that place."""
        step = self._pace_step
        at = max(self._pace_at, now)
        self._pace_at = at + step
        # The first CATCH_UP_BURST late launches in a row go at once.
        return max(now, at - step * (CATCH_UP_BURST - 1))

    def _launch(self, lane: _Lane, slot: float, now: float) -> None:
        probe = lane.probe
        if self._on_launch is not None:
            self._notify(
                self._on_launch,
                Launch(probe.service, probe.channel, probe.target, slot, now - slot),
            )
        if len(lane.in_flight) >= lane.max_in_flight:
            k = round((slot - lane.phase) / lane.period)
            self._missed(lane, k, k, "in_flight")
            return
        deadline = self._clock.monotonic() + probe.timeout
        task = asyncio.create_task(self._attempt(lane, slot, now, deadline))
        lane.in_flight.add(task)
        self._attempts[task] = deadline
        task.add_done_callback(lane.in_flight.discard)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._attempts.pop(task, None)

    async def _attempt(self, lane: _Lane, slot: float, launched: float, deadline: float) -> None:
        """Run one attempt and deliver it; a probe that raises is a ``probe_error``.

        A task that only starts after its launch's second has ended (the loop stalled in
        between) makes no attempt: that second had none, so it is reported missed.
        """
        probe = lane.probe
        if self._clock.time() >= math.floor(slot) + 1:
            k = round((slot - lane.phase) / lane.period)
            self._missed(lane, k, k, "stalled")
            return
        try:
            attempt = await probe.attempt(deadline=deadline)
        except asyncio.CancelledError:
            self._deliver(self._probe_error(probe, launched, "cancelled past its deadline"))
            raise
        except Exception as exc:
            log.exception("probe %s/%s raised", probe.service, probe.target)
            attempt = self._probe_error(probe, launched, f"probe raised {type(exc).__name__}")
        self._deliver(attempt)

    def _probe_error(self, probe: Probe, launched: float, detail: str) -> Attempt:
        return Attempt(
            service=probe.service,
            channel=probe.channel,
            target=probe.target,
            prober=self._prober,
            started_at=launched,
            duration_s=max(0.0, self._clock.time() - launched),
            outcome=Outcome.PROBE_ERROR,
            detail=detail,
        )

    def _missed(self, lane: _Lane, first: int, last: int, reason: str) -> None:
        """Report slots ``first..last`` of ``lane`` as missed, and deliver their records."""
        probe = lane.probe
        period, phase = lane.period, lane.phase
        kept = max(1, math.ceil(MISSED_RECORD_SECONDS / period))
        if self._on_missed is not None:
            self._notify(
                self._on_missed,
                MissedLaunches(
                    service=probe.service,
                    channel=probe.channel,
                    target=probe.target,
                    first_second=math.floor(first * period + phase),
                    last_second=math.floor(last * period + phase),
                    count=last - first + 1,
                    reason=reason,
                    slots=tuple(
                        k * period + phase for k in range(max(first, last - kept + 1), last + 1)
                    ),
                ),
            )

    def _deliver(self, attempt: Attempt) -> None:
        self._notify(self._on_attempt, attempt)

    @staticmethod
    def _notify(callback: Callable[[Any], object], value: object) -> None:
        # A failing sink must not stop the probing: log it and carry on.
        try:
            callback(value)
        except Exception:
            log.exception("scheduler callback %r failed", callback)
