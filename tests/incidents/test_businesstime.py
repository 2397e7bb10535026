"""Business-time arithmetic: hand-computed deadlines on the shipped calendars, and properties."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.timetext import format_time, parse_time
from sla.businesstime import (
    Pause,
    add_business_time,
    business_time_between,
    merge_pauses,
    signed_business_time,
)
from tests.support.configs import shipped_calendar

HOUR = 3600.0


# A shipped calendar, built once per test session.
shipped = cache(shipped_calendar)


def t(text: str) -> float:
    """RFC 3339 to epoch seconds."""
    return parse_time(text)


@pytest.mark.parametrize(
    ("calendar", "start", "hours", "pauses", "expected"),
    [
        pytest.param(
            "us-eastern",
            "2026-11-20T16:00:00-05:00",
            3,
            [],
            "2026-11-23T16:00:00Z",
            id="weekend-fri-1h-mon-2h",
        ),
        pytest.param(
            "us-eastern",
            "2026-11-25T15:00:00-05:00",
            3,
            [],
            "2026-11-27T15:00:00Z",
            id="thanksgiving-skipped",
        ),
        pytest.param(
            "uk",
            "2026-12-24T16:00:00Z",
            1,
            [],
            "2026-12-29T09:00:00Z",
            id="england-christmas-and-boxing-day-substitute-2026",
        ),
        pytest.param(
            "uk",
            "2027-12-24T15:30:00Z",
            3,
            [],
            "2027-12-29T10:30:00Z",
            id="england-both-substitute-days-2027",
        ),
        pytest.param(
            "us-eastern",
            "2026-03-06T16:00:00-05:00",
            2,
            [],
            "2026-03-09T14:00:00Z",
            id="new-york-spring-forward",
        ),
        pytest.param(
            "us-eastern",
            "2026-10-30T16:00:00-04:00",
            2,
            [],
            "2026-11-02T15:00:00Z",
            id="new-york-fall-back",
        ),
        pytest.param(
            "uk",
            "2026-03-13T16:00:00Z",
            1,
            [],
            "2026-03-16T09:00:00Z",
            id="london-still-gmt-while-new-york-is-on-edt",
        ),
        pytest.param(
            "us-eastern",
            "2026-03-13T16:30:00-04:00",
            1,
            [],
            "2026-03-16T13:30:00Z",
            id="new-york-on-edt-while-london-is-on-gmt",
        ),
        pytest.param(
            "uk",
            "2026-03-27T16:00:00Z",
            1,
            [],
            "2026-03-30T08:00:00Z",
            id="london-spring-forward",
        ),
        pytest.param(
            "uk",
            "2026-10-23T16:00:00+01:00",
            1,
            [],
            "2026-10-26T09:00:00Z",
            id="london-fall-back",
        ),
        pytest.param(
            "us-eastern",
            "2026-11-26T12:00:00-05:00",
            1,
            [],
            "2026-11-27T15:00:00Z",
            id="start-on-a-holiday",
        ),
        pytest.param(
            "us-pacific",
            "2026-11-17T06:00:00-08:00",
            2,
            [],
            "2026-11-17T19:00:00Z",
            id="start-before-opening",
        ),
        pytest.param(
            "us-pacific",
            "2026-11-17T18:00:00-08:00",
            2,
            [],
            "2026-11-18T19:00:00Z",
            id="start-after-closing",
        ),
        pytest.param(
            "us-eastern",
            "2026-11-16T09:00:00-05:00",
            8,
            [],
            "2026-11-16T22:00:00Z",
            id="land-exactly-at-closing",
        ),
        pytest.param(
            "24x7",
            "2026-01-31T23:30:00Z",
            1,
            [],
            "2026-02-01T00:30:00Z",
            id="24x7-midnight-and-month-end",
        ),
        pytest.param(
            "24x7",
            "2026-02-28T22:00:00Z",
            3,
            [],
            "2026-03-01T01:00:00Z",
            id="24x7-end-of-february",
        ),
        pytest.param(
            "us-eastern",
            "2026-11-16T09:00:00-05:00",
            3,
            [("2026-11-16T10:00:00-05:00", "2026-11-16T11:00:00-05:00")],
            "2026-11-16T18:00:00Z",
            id="pause-inside-business-hours",
        ),
        pytest.param(
            "us-eastern",
            "2026-11-16T16:00:00-05:00",
            2,
            [("2026-11-16T16:30:00-05:00", "2026-11-17T10:00:00-05:00")],
            "2026-11-17T16:30:00Z",
            id="pause-spanning-a-night",
        ),
        pytest.param(
            "us-eastern",
            "2026-11-16T09:00:00-05:00",
            2,
            [
                ("2026-11-16T10:30:00-05:00", "2026-11-16T11:00:00-05:00"),
                ("2026-11-16T09:30:00-05:00", "2026-11-16T10:00:00-05:00"),
                ("2026-11-16T09:45:00-05:00", "2026-11-16T09:50:00-05:00"),
            ],
            "2026-11-16T17:00:00Z",
            id="overlapping-and-unsorted-pauses",
        ),
        pytest.param(
            "us-eastern",
            "2026-11-16T09:00:00-05:00",
            1,
            [("2026-11-16T10:00:00-05:00", "2026-11-16T11:00:00-05:00")],
            "2026-11-16T15:00:00Z",
            id="pause-starting-at-the-deadline-does-not-move-it",
        ),
        pytest.param(
            "us-eastern",
            "2026-11-16T12:00:00-05:00",
            1,
            [("2026-11-13T10:00:00-05:00", "2026-11-13T11:00:00-05:00")],
            "2026-11-16T18:00:00Z",
            id="pause-before-the-start-is-irrelevant",
        ),
        pytest.param(
            "us-eastern",
            "2026-11-21T12:00:00Z",
            0,
            [],
            "2026-11-23T14:00:00Z",
            id="zero-duration-outside-hours-is-the-next-opening",
        ),
    ],
)
def test_add_business_time(
    calendar: str, start: str, hours: float, pauses: list[tuple[str, str]], expected: str
) -> None:
    """The deadline is hand-computed from local business hours, holidays and pauses."""
    spans: list[Pause] = [(t(a), t(b)) for a, b in pauses]
    deadline = add_business_time(shipped(calendar), t(start), hours * HOUR, spans)
    assert format_time(deadline) == expected
    assert business_time_between(shipped(calendar), t(start), deadline, spans) == hours * HOUR


@pytest.mark.parametrize(
    ("calendar", "a", "b", "pauses", "hours"),
    [
        pytest.param(
            "us-eastern",
            "2026-11-20T16:00:00-05:00",
            "2026-11-23T11:00:00-05:00",
            [],
            3,
            id="over-a-weekend",
        ),
        pytest.param(
            "uk",
            "2026-12-23T00:00:00Z",
            "2026-12-30T00:00:00Z",
            [],
            24,
            id="christmas-week-has-three-working-days",
        ),
        pytest.param(
            "us-eastern",
            "2026-11-23T11:00:00-05:00",
            "2026-11-20T16:00:00-05:00",
            [],
            0,
            id="reversed-is-zero",
        ),
        pytest.param(
            "us-eastern",
            "2026-11-16T00:00:00Z",
            "2026-11-17T00:00:00Z",
            [("2026-11-16T12:00:00-05:00", "2026-11-16T13:00:00-05:00")],
            7,
            id="minus-a-pause",
        ),
        pytest.param(
            "24x7",
            "2026-11-16T00:00:00Z",
            "2026-11-16T00:30:00Z",
            [],
            0.5,
            id="24x7-is-wall-time",
        ),
    ],
)
def test_business_time_between(
    calendar: str, a: str, b: str, pauses: list[tuple[str, str]], hours: float
) -> None:
    """Elapsed business time counts only working windows outside pauses."""
    spans: list[Pause] = [(t(x), t(y)) for x, y in pauses]
    assert business_time_between(shipped(calendar), t(a), t(b), spans) == hours * HOUR


def test_signed_business_time_is_negative_backwards() -> None:
    """Going backwards in time gives the same amount of business time, negated."""
    cal = shipped("us-eastern")
    a, b = t("2026-11-20T16:00:00-05:00"), t("2026-11-23T11:00:00-05:00")
    assert signed_business_time(cal, a, b) == 3 * HOUR
    assert signed_business_time(cal, b, a) == -3 * HOUR


@pytest.mark.parametrize(
    "duration",
    [
        pytest.param(-1.0, id="negative"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="infinite"),
    ],
)
def test_add_business_time_rejects_bad_durations(duration: float) -> None:
    """A negative or non-finite duration is a ValueError, not an endless walk."""
    with pytest.raises(ValueError, match="duration must be finite"):
        add_business_time(shipped("24x7"), 0.0, duration)


@pytest.mark.parametrize(
    ("pauses", "expected"),
    [
        pytest.param([], [], id="none"),
        pytest.param([(5.0, 5.0), (9.0, 3.0)], [], id="empty-and-reversed-dropped"),
        pytest.param([(4.0, 6.0), (1.0, 2.0)], [(1.0, 2.0), (4.0, 6.0)], id="sorted"),
        pytest.param([(1.0, 3.0), (2.0, 5.0), (5.0, 6.0)], [(1.0, 6.0)], id="overlap-and-touch"),
        pytest.param([(1.0, 9.0), (2.0, 3.0)], [(1.0, 9.0)], id="contained"),
    ],
)
def test_merge_pauses(pauses: list[Pause], expected: list[Pause]) -> None:
    """Pauses are sorted and merged so each instant is subtracted once."""
    assert merge_pauses(pauses) == expected


# Whole seconds keep float arithmetic exact (epoch values are far below 2**53).
STARTS = st.integers(
    int(datetime(2025, 1, 1, tzinfo=UTC).timestamp()),
    int(datetime(2028, 12, 31, tzinfo=UTC).timestamp()),
).map(float)
DURATIONS = st.integers(0, 120 * 3600).map(float)
CALENDARS = st.sampled_from(["us-eastern", "us-pacific", "uk", "24x7"])
PAUSES = st.lists(st.tuples(st.integers(0, 30 * 86400), st.integers(1, 3 * 86400)), max_size=4)


@settings(max_examples=60, deadline=None)
@given(calendar=CALENDARS, start=STARTS, duration=DURATIONS)
def test_between_inverts_add(calendar: str, start: float, duration: float) -> None:
    """The business time between a start and its deadline is the duration added."""
    cal = shipped(calendar)
    assert business_time_between(cal, start, add_business_time(cal, start, duration)) == duration


@settings(max_examples=60, deadline=None)
@given(calendar=CALENDARS, start=STARTS, first=DURATIONS, second=DURATIONS)
def test_deadlines_are_monotonic(calendar: str, start: float, first: float, second: float) -> None:
    """A longer duration never gives an earlier deadline."""
    cal = shipped(calendar)
    short, long = sorted((first, second))
    assert add_business_time(cal, start, short) <= add_business_time(cal, start, long)


@settings(max_examples=60, deadline=None)
@given(calendar=CALENDARS, start=STARTS, duration=DURATIONS, offsets=PAUSES)
def test_pauses_never_make_a_deadline_earlier(
    calendar: str, start: float, duration: float, offsets: list[tuple[int, int]]
) -> None:
    """Subtracting pauses can only push a deadline later."""
    cal = shipped(calendar)
    pauses = [(start + offset, start + offset + length) for offset, length in offsets]
    assert add_business_time(cal, start, duration, pauses) >= add_business_time(
        cal, start, duration
    )


@settings(max_examples=60, deadline=None)
@given(start=STARTS, duration=DURATIONS, other=STARTS)
def test_24x7_is_plain_utc_arithmetic(start: float, duration: float, other: float) -> None:
    """On 24x7, adding and measuring business time is ordinary arithmetic."""
    cal = shipped("24x7")
    assert add_business_time(cal, start, duration) == start + duration
    assert business_time_between(cal, start, other) == max(0.0, other - start)
