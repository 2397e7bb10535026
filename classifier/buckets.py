"""Per-second bucketing of attempts and the finality of seconds (DESIGN.md §4)."""

from __future__ import annotations

import math

from classifier.verdict import OK_INDEX, OUTCOMES, PROBE_ERROR_INDEX
from probe.attempt import Channel

_WIDTH = len(OUTCOMES)


class Bucket:
    """The attempts started in one wall-clock second, counted by outcome."""

    __slots__ = ("attempts", "control")

    def __init__(self) -> None:
        # (service, channel) → prober → counts by outcome (OUTCOMES order). Kept per prober
        # because a prober whose control probe failed in this second has its attempts set aside.
        self.attempts: dict[tuple[str, Channel], dict[str, list[int]]] = {}
        # prober → [ok control attempts, judged control attempts] (probe_error dropped).
        self.control: dict[str, list[int]] = {}

    def failed_probers(self) -> frozenset[str]:
        """Probers whose control probe ran in this second and never succeeded."""
        if not self.control:
            return frozenset()
        return frozenset(p for p, (ok, judged) in self.control.items() if judged and not ok)


class SecondBuckets:
    """Open (not yet final) seconds; a second is final once ``horizon`` seconds have passed its end.

    ``horizon`` is the longest time an attempt can take (its timeout, plus slack), so a
    second ``s`` is final when ``now >= s + 1 + horizon``: every attempt launched in it has
    finished. Replay uses the latest ``started_at`` seen as ``now``: a log is written as
    attempts finish, so nothing launched in a final second can still be ahead.
    """

    def __init__(self, horizon: int, start: int | None = None) -> None:
        if horizon < 0:
            raise ValueError("horizon must be >= 0")
        self.horizon = horizon
        # The oldest second not yet final; None until the first attempt (or ``start``) sets it.
        self.next_second: int | None = start
        # The first second ever finalized (the start of the span the verdicts cover).
        self.first_second: int | None = None
        # The latest second an attempt was seen in (replay finishes up to it).
        self.max_second: int | None = None
        # Attempts for seconds already final, by service: counted and reported, not silently lost.
        self.late: dict[str, int] = {}
        self._open: dict[int, Bucket] = {}

    def add(  # noqa: PLR0917  (the hot path of replay: positional on purpose)
        self, service: str, channel: Channel, prober: str, second: int, outcome: int, count: int = 1
    ) -> bool:
        """Count attempts (``outcome`` indexes OUTCOMES); False if their second was final."""
        bucket = self._open.get(second)
        if bucket is None:
            next_second = self.next_second
            if next_second is not None and second < next_second:
                if self.first_second is not None:
                    self.late[service] = self.late.get(service, 0) + count
                    return False
                # Nothing is final yet: the span simply starts earlier.
                self.next_second = second
            elif next_second is None:
                self.next_second = second
            bucket = self._open[second] = Bucket()
            if self.max_second is None or second > self.max_second:
                self.max_second = second
        if channel is Channel.CONTROL:
            control = bucket.control.get(prober)
            if control is None:
                control = bucket.control[prober] = [0, 0]
            if outcome != PROBE_ERROR_INDEX:
                control[1] += count
                if outcome == OK_INDEX:
                    control[0] += count
            return True
        key = (service, channel)
        probers = bucket.attempts.get(key)
        if probers is None:
            probers = bucket.attempts[key] = {}
        counts = probers.get(prober)
        if counts is None:
            counts = probers[prober] = [0] * _WIDTH
        counts[outcome] += count
        return True

    def final_through(self, now: float) -> int:
        """The last second that is final at wall time ``now``."""
        return math.floor(now) - 1 - self.horizon

    def pop(self, second: int) -> Bucket | None:
        """Remove and return the bucket of ``second`` as it becomes final (None: no attempts)."""
        if self.first_second is None:
            self.first_second = second
        self.next_second = second + 1
        return self._open.pop(second, None)

    def __len__(self) -> int:
        """The number of open seconds holding attempts."""
        return len(self._open)
