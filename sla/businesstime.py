"""Business-time arithmetic over a Calendar: deadlines and elapsed time, with pauses subtracted."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence

from sla.calendar import Calendar

# A closed interval of UTC epoch seconds during which a clock does not run.
Pause = tuple[float, float]


def merge_pauses(pauses: Iterable[Pause]) -> list[Pause]:
    """Pauses sorted and merged, empty or reversed ones dropped."""
    merged: list[Pause] = []
    for start, end in sorted(p for p in pauses if p[1] > p[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def business_segments(
    calendar: Calendar, start: float, pauses: Iterable[Pause] = ()
) -> Iterator[tuple[float, float]]:
    """The intervals from ``start`` on in which a clock runs: working windows minus pauses."""
    pending = merge_pauses(pauses)
    index = 0
    # The windows never run out; the caller stops the walk.
    for begin, end in calendar.windows_from(start):  # pragma: no branch
        cursor = begin
        # Pauses ending before this window can no longer matter.
        while index < len(pending) and pending[index][1] <= cursor:
            index += 1
        scan = index
        while cursor < end:
            if scan < len(pending) and pending[scan][0] < end:
                pause_start, pause_end = pending[scan]
                if pause_start > cursor:
                    yield cursor, pause_start
                cursor = max(cursor, pause_end)
                scan += 1
            else:
                yield cursor, end
                cursor = end


def add_business_time(
    calendar: Calendar, start: float, duration: float, pauses: Sequence[Pause] = ()
) -> float:
    """The instant at which ``duration`` seconds of business time have run from ``start``.

    A clock started outside working hours starts at the next window; the deadline may
    fall exactly on a window's end (it is never pushed to the next window's start).
    """
    if duration < 0 or not math.isfinite(duration):
        raise ValueError(f"duration must be finite and not negative, got {duration!r}")
    remaining = duration
    for begin, end in business_segments(calendar, start, pauses):
        if end - begin >= remaining:
            return begin + remaining
        remaining -= end - begin
    raise AssertionError("unreachable: a calendar's windows never run out")  # pragma: no cover


def business_time_between(
    calendar: Calendar, a: float, b: float, pauses: Sequence[Pause] = ()
) -> float:
    """Business seconds in ``[a, b)`` outside the pauses; 0 when ``b <= a``."""
    total = 0.0
    if b <= a:
        return total
    segments = business_segments(calendar, a, pauses)
    for begin, end in itertools.takewhile(lambda segment: segment[0] < b, segments):
        total += min(end, b) - begin
    return total


def signed_business_time(
    calendar: Calendar, a: float, b: float, pauses: Sequence[Pause] = ()
) -> float:
    """Business seconds from ``a`` to ``b``, negative when ``b`` is before ``a``."""
    if b >= a:
        return business_time_between(calendar, a, b, pauses)
    return -business_time_between(calendar, b, a, pauses)
