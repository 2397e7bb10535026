"""Clocks: the one place that reads real time, and a manual clock for tests and replays."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Wall time for stamps, monotonic time for deadlines, and a way to wait until a wall time."""

    def time(self) -> float:
        """UTC epoch seconds."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""

    async def sleep_until(self, wall: float) -> None:
        """Return once wall time has reached ``wall``."""


class SystemClock:
    """The real clock, used at the edge (the daemon and the CLI)."""

    def time(self) -> float:
        """UTC epoch seconds."""
        return time.time()

    def monotonic(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    async def sleep_until(self, wall: float) -> None:
        """Sleep until the wall clock reaches ``wall`` (re-checked, so clock steps are survived)."""
        # asyncio.sleep runs on the monotonic clock; re-check the wall clock after it.
        while (delay := wall - time.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)


class ManualClock:
    """A clock that only moves when told to; sleepers wake when it passes their time."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        """The current manual wall time."""
        return self._now

    def monotonic(self) -> float:
        """Manual monotonic time (moves with ``advance``)."""
        return self._mono

    async def sleep_until(self, wall: float) -> None:
        """Wait until ``advance`` has moved the clock to ``wall``."""
        if wall <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((wall, future))
        await future

    def next_wake(self) -> float | None:
        """The earliest wall time a sleeper still waits for (None when nobody sleeps)."""
        pending = [wall for wall, future in self._waiters if not future.done()]
        return min(pending) if pending else None

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self._now += seconds
        self._mono += seconds
        due = [w for w in self._waiters if w[0] <= self._now]
        self._waiters = [w for w in self._waiters if w[0] > self._now]
        for _, future in sorted(due, key=lambda w: w[0]):
            if not future.done():
                future.set_result(None)
