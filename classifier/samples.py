"""The most telling attempts of a second and lane, kept as evidence: failures, then the slowest.

One selection for every path that keeps sample attempts: a single instance's recorder
(``incidents/recorder.py``) and a fleet member's slices (``classifier/pooling.py``), whose
samples the finalizer pools through the same recorder. Pure: no clock, no I/O.
"""

from __future__ import annotations

import heapq

from probe.attempt import Attempt, Outcome


def priority(attempt: Attempt) -> tuple[int, float]:
    """How telling an attempt is: a failure beats a success, then the slower beats the faster."""
    return (int(attempt.outcome is not Outcome.OK), attempt.duration_s)


class Telling:
    """At most ``cap`` attempts, the most telling of those added (ties: the first added)."""

    __slots__ = ("_heap", "_order", "cap")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        # A min-heap of (priority, -order, attempt): its root is the least telling attempt kept.
        self._heap: list[tuple[tuple[int, float], int, Attempt]] = []
        self._order = 0

    def add(self, attempt: Attempt) -> None:
        """Keep ``attempt`` if it is among the ``cap`` most telling so far."""
        if self.cap <= 0:
            return
        self._order += 1
        item = (priority(attempt), -self._order, attempt)
        if len(self._heap) < self.cap:
            heapq.heappush(self._heap, item)
        elif item[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, item)

    def ranked(self) -> list[Attempt]:
        """The kept attempts, the most telling first."""
        return [item[2] for item in sorted(self._heap, key=lambda item: item[:2], reverse=True)]

    def in_time_order(self) -> list[Attempt]:
        """The kept attempts in the order they started."""
        return sorted((item[2] for item in self._heap), key=lambda a: a.started_at)

    def __len__(self) -> int:
        return len(self._heap)
