"""Per-second bucketing of attempts and the finality of seconds (DESIGN.md §4)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from classifier.verdict import OK_INDEX, OUTCOMES, PROBE_ERROR_INDEX
from probe.attempt import Channel

_WIDTH = len(OUTCOMES)
_CHANNELS = {channel.value: channel for channel in Channel}

# One attempt as replay reads it: service, channel name, prober, outcome (index into OUTCOMES).
# The channel is a plain str, whose hash is computed in C (an enum's hash runs Python code).
RunKey = tuple[str, str, str, int]


class Bucket:
    """The attempts started in one wall-clock second, counted by outcome."""

    __slots__ = ("attempts", "control")

    def __init__(self) -> None:
        # (service, channel) → prober → counts by outcome (OUTCOMES order). Kept per prober
        # because a prober whose control probe failed in this second has its attempts set aside.
        self.attempts: dict[tuple[str, Channel], dict[str, list[int]]] = {}
        # prober → [ok control attempts, judged control attempts] (probe_error dropped).
        self.control: dict[str, list[int]] = {}

    def add(self, service: str, channel: Channel, prober: str, outcome: int, count: int) -> None:
        """Count ``count`` attempts of one kind (``outcome`` indexes OUTCOMES)."""
        if channel is Channel.CONTROL:
            control = self.control.get(prober)
            if control is None:
                control = self.control[prober] = [0, 0]
            if outcome != PROBE_ERROR_INDEX:
                control[1] += count
                if outcome == OK_INDEX:
                    control[0] += count
            return
        key = (service, channel)
        probers = self.attempts.get(key)
        if probers is None:
            probers = self.attempts[key] = {}
        counts = probers.get(prober)
        if counts is None:
            counts = probers[prober] = [0] * _WIDTH
        counts[outcome] += count

    @classmethod
    def of_run(cls, keys: Iterable[RunKey]) -> Bucket:
        """A bucket holding the attempts of a replay run, one key an attempt."""
        bucket = cls()
        for service, channel, prober, outcome in keys:
            bucket.add(service, _CHANNELS[channel], prober, outcome, 1)
        return bucket

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
        # Replay's open seconds (``add_run``): the run keys, judged by the classifier directly.
        self.runs: dict[int, list[RunKey]] = {}
        # Replay's open repeat (``add_repeat``): ``count`` consecutive seconds from ``first``
        # with the same keys, held as one entry until judged. None: there is none.
        self.repeat: Repeat | None = None

    def add(  # noqa: PLR0917  (a hot path: positional on purpose)
        self, service: str, channel: Channel, prober: str, second: int, outcome: int, count: int = 1
    ) -> bool:
        """Count attempts (``outcome`` indexes OUTCOMES); False if their second was final."""
        if self.repeat is not None and second >= self.repeat.first:
            self.spread()
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
        bucket.add(service, channel, prober, outcome, count)
        return True

    def add_run(self, second: int, keys: list[RunKey]) -> bool:
        """Count a replay run: attempts of ``second``, one key each; False if it was final.

        The list is kept as it is (the caller hands it over) until ``second`` is judged.
        """
        repeat = self.repeat
        if repeat is not None and second >= repeat.first:
            self.spread()
        held = self.runs.get(second)
        if held is not None:
            held.extend(keys)
            return True
        next_second = self.next_second
        if next_second is not None and second < next_second:
            if self.first_second is not None:
                late = self.late
                for key in keys:
                    late[key[0]] = late.get(key[0], 0) + 1
                return False
            self.next_second = second
        elif next_second is None:
            self.next_second = second
        self.runs[second] = keys
        if self.max_second is None or second > self.max_second:
            self.max_second = second
        return True

    def add_repeat(self, first: int, keys: list[RunKey], count: int) -> None:
        """Count ``count`` consecutive seconds from ``first``, each with the attempts ``keys``.

        For replay: a steady log repeats one second's attempts for hours, and this holds such
        a stretch as one entry, judged as one run (``Classifier`` consumes it in bulk). Every
        second of it must be later than any second seen so far (so none is final, none holds
        attempts yet); the list is kept as it is.
        """
        if self.max_second is not None and first <= self.max_second:
            raise ValueError("a repeat must start after every second seen so far")
        if self.repeat is not None:
            self.spread()
        if self.next_second is None:
            self.next_second = first
        self.repeat = Repeat(first, keys, count)
        self.max_second = first + count - 1

    def spread(self) -> None:
        """Turn the open repeat back into one run per second (attempts are joining one)."""
        repeat, self.repeat = self.repeat, None
        if repeat is not None:
            runs = self.runs
            keys = repeat.keys
            for second in range(repeat.first, repeat.first + repeat.count):
                runs[second] = list(keys)

    def take_repeat(self, second: int, last: int) -> tuple[list[RunKey], int] | None:
        """The keys and the number of seconds of the repeat from ``second`` up to ``last``.

        None unless the open repeat starts at ``second``; what is left of it stays open.
        """
        repeat = self.repeat
        if repeat is None or repeat.first != second:
            return None
        taken = min(repeat.count, last - second + 1)
        if taken == repeat.count:
            self.repeat = None
        else:
            repeat.first += taken
            repeat.count -= taken
        return repeat.keys, taken

    def final_through(self, now: float) -> int:
        """The last second that is final at wall time ``now``."""
        return math.floor(now) - 1 - self.horizon

    def silent_through(self, second: int, last: int) -> int:
        """The last second of ``second..last`` before the next one holding attempts.

        Only a few seconds are ever open (those within the horizon), so this is cheap;
        it is asked only for a second that holds none.
        """
        ahead = [s for s in self._open if s > second]
        ahead += [s for s in self.runs if s > second]
        if self.repeat is not None and self.repeat.first > second:
            ahead.append(self.repeat.first)
        return min(last, min(ahead, default=last + 1) - 1)

    def skip(self, last: int) -> None:
        """Mark every second up to ``last`` final (after ``pop`` found the first one empty)."""
        self.next_second = last + 1

    def pop(self, second: int) -> Bucket | None:
        """Remove and return the bucket of ``second`` as it becomes final (None: no attempts)."""
        if self.first_second is None:
            self.first_second = second
        self.next_second = second + 1
        return self._open.pop(second, None)

    @property
    def by_second(self) -> dict[int, Bucket]:
        """The buckets of open seconds that ``add`` counted into (``add_run``'s are in ``runs``)."""
        return self._open

    def __len__(self) -> int:
        """The number of open seconds holding attempts."""
        repeated = 0 if self.repeat is None else self.repeat.count
        return len(self._open.keys() | self.runs.keys()) + repeated


class Repeat:
    """``count`` consecutive open seconds from ``first``, each with the attempts ``keys``."""

    __slots__ = ("count", "first", "keys")

    def __init__(self, first: int, keys: list[RunKey], count: int) -> None:
        self.first = first
        self.keys = keys
        self.count = count
