"""Business calendars: local windows as UTC, DST edges, holidays, snapshots."""

from __future__ import annotations

import json
from datetime import date
from itertools import islice
from typing import Any

import pytest

from config import load_catalog
from config.model import CalendarConfig
from config.timetext import format_time, parse_time
from sla.calendar import Calendar, CalendarError, always_open, calendars_from
from tests.support.configs import shipped_calendar


def shown(windows: list[tuple[float, float]]) -> list[tuple[str, str]]:
    """Windows as RFC 3339 pairs, for readable expectations."""
    return [(format_time(a), format_time(b)) for a, b in windows]


@pytest.mark.parametrize(
    ("calendar", "day", "expected"),
    [
        pytest.param(
            "us-eastern",
            date(2026, 11, 16),
            [("2026-11-16T14:00:00Z", "2026-11-16T22:00:00Z")],
            id="eastern-standard-time",
        ),
        pytest.param(
            "us-eastern",
            date(2026, 7, 6),
            [("2026-07-06T13:00:00Z", "2026-07-06T21:00:00Z")],
            id="eastern-daylight-time",
        ),
        pytest.param(
            "us-pacific",
            date(2026, 11, 16),
            [("2026-11-16T17:00:00Z", "2026-11-17T01:00:00Z")],
            id="pacific-window-crosses-utc-midnight",
        ),
        pytest.param(
            "uk",
            date(2026, 7, 6),
            [("2026-07-06T07:30:00Z", "2026-07-06T15:30:00Z")],
            id="uk-summer-time",
        ),
        pytest.param("us-eastern", date(2026, 11, 21), [], id="saturday"),
        pytest.param("us-eastern", date(2026, 11, 26), [], id="thanksgiving"),
        pytest.param("us-eastern", date(2026, 7, 3), [], id="independence-day-observed-friday"),
        pytest.param("uk", date(2026, 4, 6), [], id="easter-monday-needs-england"),
        pytest.param("uk", date(2027, 12, 27), [], id="christmas-substitute-day"),
        pytest.param("uk", date(2027, 12, 28), [], id="boxing-day-substitute-day"),
        pytest.param(
            "24x7",
            date(2026, 12, 25),
            [("2026-12-25T00:00:00Z", "2026-12-26T00:00:00Z")],
            id="24x7-knows-no-holidays",
        ),
    ],
)
def test_windows_on(calendar: str, day: date, expected: list[tuple[str, str]]) -> None:
    """Local working hours become UTC intervals; weekends and holidays have none."""
    assert shown(shipped_calendar(calendar).windows_on(day)) == expected


@pytest.mark.parametrize(
    ("hours", "day", "expected"),
    [
        pytest.param(
            {"sun": "01:00-02:30,03:00-05:00"},
            date(2026, 3, 8),
            [
                ("2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"),
                ("2026-03-08T07:00:00Z", "2026-03-08T09:00:00Z"),
            ],
            id="edge-in-the-spring-gap-is-the-jump",
        ),
        pytest.param(
            {"sun": "02:00-04:00"},
            date(2026, 3, 8),
            [("2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z")],
            id="window-starting-in-the-gap-is-one-hour",
        ),
        pytest.param(
            {"sun": "00:00-01:30,01:30-03:00"},
            date(2026, 11, 1),
            [
                ("2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z"),
                ("2026-11-01T05:30:00Z", "2026-11-01T08:00:00Z"),
            ],
            id="ambiguous-edge-is-the-first-occurrence",
        ),
        pytest.param(
            {"sun": "00:00-24:00"},
            date(2026, 11, 1),
            [("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z")],
            id="fall-back-day-lasts-25-hours",
        ),
    ],
)
def test_dst_edges(hours: dict[str, str], day: date, expected: list[tuple[str, str]]) -> None:
    """Window edges in a DST gap or overlap map to real instants, never overlapping."""
    config = CalendarConfig(time_zone="America/New_York", hours=hours)
    assert shown(Calendar.from_config("custom", config).windows_on(day)) == expected


def test_config_add_and_remove() -> None:
    """A config's add and remove lists edit the generated holiday set."""
    config = CalendarConfig(
        time_zone="Europe/Berlin",
        holidays={"country": "DE", "subdiv": "BE"},
        add=[date(2026, 12, 24)],
        remove=[date(2026, 12, 25)],
    )
    calendar = Calendar.from_config("berlin", config)
    assert calendar.is_holiday(date(2026, 12, 24))
    assert not calendar.is_holiday(date(2026, 12, 25))
    assert calendar.is_holiday(date(2026, 12, 26))
    assert not calendar.is_holiday(date(2026, 12, 23))


def test_observed_false_keeps_holidays_on_their_day() -> None:
    """A bank calendar (observed: false) does not move a Saturday holiday to Friday."""
    config = CalendarConfig(
        time_zone="America/New_York",
        holidays={"country": "US", "observed": False},
    )
    calendar = Calendar.from_config("bank", config)
    assert not calendar.is_holiday(date(2026, 7, 3))
    assert shipped_calendar("us-eastern").is_holiday(date(2026, 7, 3))


def test_holidays_are_cached_per_calendar() -> None:
    """The same year's set is returned again without regenerating it."""
    calendar = shipped_calendar("uk")
    assert calendar.holidays(2026) is calendar.holidays(2026)
    assert date(2026, 12, 28) in calendar.holidays(2026)


def test_windows_from_clips_the_first_window() -> None:
    """The walk starts at the given instant, inside or between windows."""
    calendar = shipped_calendar("us-eastern")
    windows = list(islice(calendar.windows_from(parse_time("2026-11-20T20:00:00Z")), 2))
    assert shown(windows) == [
        ("2026-11-20T20:00:00Z", "2026-11-20T22:00:00Z"),
        ("2026-11-23T14:00:00Z", "2026-11-23T22:00:00Z"),
    ]


def test_local_date_uses_the_time_zone() -> None:
    """An instant's local date can differ from its UTC date."""
    assert shipped_calendar("us-pacific").local_date(parse_time("2026-11-17T03:00:00Z")) == date(
        2026, 11, 16
    )


def test_snapshot_round_trips_through_json() -> None:
    """A snapshot is JSON-able and rebuilds a calendar with the same snapshot."""
    calendar = shipped_calendar("uk")
    snapshot = calendar.snapshot(2026, 2027)
    rebuilt = Calendar.from_snapshot(json.loads(json.dumps(snapshot)))
    assert rebuilt.snapshot(2026, 2027) == snapshot
    assert snapshot["time_zone"] == "Europe/London"
    assert snapshot["weekly"]["mon"] == [[510, 990]]
    assert "2027-12-28" in snapshot["holidays"]["dates"]
    assert repr(rebuilt) == "Calendar('uk', 'Europe/London')"


def test_snapshot_years_are_frozen_and_others_generated() -> None:
    """Inside its years a snapshot's list wins; outside them the source generates holidays."""
    snapshot = shipped_calendar("us-eastern").snapshot(2026, 2026)
    snapshot["holidays"]["dates"] = ["2026-11-27"]
    calendar = Calendar.from_snapshot(snapshot)
    assert calendar.is_holiday(date(2026, 11, 27))
    assert not calendar.is_holiday(date(2026, 11, 26))
    assert calendar.is_holiday(date(2027, 11, 25))


def test_snapshot_without_source() -> None:
    """A calendar without generated holidays snapshots and rebuilds as such."""
    snapshot = always_open().snapshot(2026, 2026)
    assert snapshot["holidays"]["source"] is None
    assert Calendar.from_snapshot(snapshot).holidays(2030) == frozenset()


def _broken(change: dict[str, Any]) -> dict[str, Any]:
    snapshot = shipped_calendar("us-eastern").snapshot(2026, 2026)
    for key, value in change.items():
        if key.startswith("holidays."):
            snapshot["holidays"][key.removeprefix("holidays.")] = value
        else:
            snapshot[key] = value
    return snapshot


@pytest.mark.parametrize(
    ("snapshot", "message"),
    [
        pytest.param(
            _broken({"version": 9}), "unsupported calendar snapshot version", id="version"
        ),
        pytest.param(_broken({"weekly": {"funday": [[0, 60]]}}), "malformed", id="weekday-name"),
        pytest.param(_broken({"holidays.years": [2026]}), "malformed", id="years-shape"),
        pytest.param(
            _broken({"holidays.dates": ["2025-01-01"]}), "outside its years", id="date-range"
        ),
        pytest.param(_broken({"holidays.dates": ["not a date"]}), "malformed", id="date-text"),
        pytest.param(_broken({"holidays.source": {"country": "XX"}}), "malformed", id="country"),
        pytest.param(_broken({"time_zone": "Mars/Olympus"}), "unknown time zone", id="zone"),
        pytest.param({"version": 1}, "malformed", id="missing-keys"),
    ],
)
def test_malformed_snapshots(snapshot: dict[str, Any], message: str) -> None:
    """A damaged snapshot is a CalendarError saying what is wrong."""
    with pytest.raises(CalendarError, match=message):
        Calendar.from_snapshot(snapshot)


@pytest.mark.parametrize(
    ("weekly", "message"),
    [
        pytest.param({}, "has no working hours", id="no-hours"),
        pytest.param({0: []}, "has no working hours", id="only-empty-days"),
        pytest.param({7: [(0, 60)]}, "weekday 7 is not 0-6", id="weekday"),
        pytest.param({0: [(60, 30)]}, "bad or overlapping window 60-30", id="reversed"),
        pytest.param({0: [(0, 120), (60, 180)]}, "bad or overlapping window 60-180", id="overlap"),
        pytest.param({0: [(0, 1500)]}, "bad or overlapping window 0-1500", id="past-midnight"),
    ],
)
def test_bad_weekly_windows(weekly: dict[int, list[tuple[int, int]]], message: str) -> None:
    """Windows must be inside the day, ordered and disjoint, and some must exist."""
    with pytest.raises(CalendarError, match=message):
        Calendar("bad", "UTC", weekly)


def test_snapshot_years_must_not_run_backwards() -> None:
    """Asking for a snapshot of an empty year range is an error."""
    with pytest.raises(CalendarError, match="run backwards"):
        shipped_calendar("uk").snapshot(2027, 2026)


def test_calendars_from_builds_every_catalog_calendar() -> None:
    """Each shipped calendar config becomes a Calendar of the same name and zone."""
    calendars = calendars_from(load_catalog().calendars)
    assert {name: c.time_zone for name, c in calendars.items()} == {
        "24x7": "UTC",
        "us-eastern": "America/New_York",
        "us-pacific": "America/Los_Angeles",
        "uk": "Europe/London",
    }
