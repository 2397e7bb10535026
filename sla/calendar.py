"""Business calendars: a time zone, weekly working windows and holidays, as UTC intervals."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_pkg

from config.model import CalendarConfig, HolidaySource

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
SNAPSHOT_VERSION = 1

# Weekday (0 = Monday) → sorted, non-overlapping [(start_minute, end_minute)] of local time.
Weekly = Mapping[int, Sequence[tuple[int, int]]]


class CalendarError(ValueError):
    """A calendar that cannot be built: no working hours, bad windows, a malformed snapshot."""


class Calendar:
    """A business calendar whose working windows are answered as UTC epoch intervals.

    Holidays are generated per year from the ``holidays`` package (plus ``add``, minus
    ``remove``) and cached on the object. A calendar rebuilt from a snapshot uses the
    snapshot's explicit dates for the years it covers, so a stored incident keeps the
    holidays it was opened under even after the package or the config changes.
    """

    def __init__(
        self,
        name: str,
        time_zone: str,
        weekly: Weekly,
        *,
        source: HolidaySource | None = None,
        add: Iterable[date] = (),
        remove: Iterable[date] = (),
        fixed: Mapping[int, frozenset[date]] | None = None,
    ) -> None:
        try:
            self.zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CalendarError(f"calendar {name!r}: unknown time zone {time_zone!r}") from None
        self.name = name
        self.time_zone = time_zone
        self.weekly = _checked_weekly(name, weekly)
        self.source = source
        self.add = frozenset(add)
        self.remove = frozenset(remove)
        # Years whose holiday list is frozen (from a snapshot); other years are generated.
        self._fixed = dict(fixed or {})
        # Per-object cache: each Calendar owns its generated years, nothing module-wide.
        self._years: dict[int, frozenset[date]] = {}

    def __repr__(self) -> str:
        return f"Calendar({self.name!r}, {self.time_zone!r})"

    @classmethod
    def from_config(cls, name: str, config: CalendarConfig) -> Calendar:
        """Build the calendar a config (or the catalog) defines under ``name``."""
        return cls(
            name,
            config.time_zone,
            config.weekly(),
            source=config.holidays,
            add=config.add,
            remove=config.remove,
        )

    def holidays(self, year: int) -> frozenset[date]:
        """The non-working dates of ``year``: generated + add - remove, or the snapshot's."""
        if year in self._fixed:
            return self._fixed[year]
        cached = self._years.get(year)
        if cached is None:
            generated: set[date] = set()
            if self.source is not None:
                generated.update(
                    holidays_pkg.country_holidays(
                        self.source.country,
                        subdiv=self.source.subdiv,
                        years=year,
                        observed=self.source.observed,
                    ).keys()
                )
            generated |= {day for day in self.add if day.year == year}
            generated -= self.remove
            cached = self._years[year] = frozenset(generated)
        return cached

    def is_holiday(self, day: date) -> bool:
        """True when ``day`` (a local date) has no working hours because it is a holiday."""
        return day in self.holidays(day.year)

    def local_date(self, at: float) -> date:
        """The local date of the instant ``at`` (UTC epoch seconds)."""
        return datetime.fromtimestamp(at, UTC).astimezone(self.zone).date()

    def windows_on(self, day: date) -> list[tuple[float, float]]:
        """Working windows of local date ``day`` as UTC epoch (start, end); none on holidays."""
        spans = self.weekly.get(day.weekday(), ())
        if not spans or self.is_holiday(day):
            return []
        return [(self._instant(day, start), self._instant(day, end)) for start, end in spans]

    def windows_from(self, start: float) -> Iterator[tuple[float, float]]:
        """Working windows from ``start`` on, in order, the first clipped to begin at ``start``.

        Endless: the caller stops. A window of a local day always ends by the next local
        midnight, so the walk can begin at the local date of ``start``.
        """
        day = self.local_date(start)
        while True:
            for begin, end in self.windows_on(day):
                if end > start:
                    yield max(begin, start), end
            day += timedelta(days=1)

    def snapshot(self, first_year: int, last_year: int) -> dict[str, Any]:
        """A JSON-able copy: time zone, weekly windows, the explicit holidays of the years given."""
        if last_year < first_year:
            raise CalendarError(f"snapshot years run backwards: {first_year}..{last_year}")
        source = None
        if self.source is not None:
            source = {
                "country": self.source.country,
                "subdiv": self.source.subdiv,
                "observed": self.source.observed,
            }
        dates = sorted(
            day for year in range(first_year, last_year + 1) for day in self.holidays(year)
        )
        return {
            "version": SNAPSHOT_VERSION,
            "name": self.name,
            "time_zone": self.time_zone,
            "weekly": {
                WEEKDAYS[weekday]: [[start, end] for start, end in spans]
                for weekday, spans in sorted(self.weekly.items())
            },
            "holidays": {
                "years": [first_year, last_year],
                "dates": [day.isoformat() for day in dates],
                # Kept so years outside the frozen range can still be generated.
                "source": source,
                "add": sorted(day.isoformat() for day in self.add),
                "remove": sorted(day.isoformat() for day in self.remove),
            },
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Calendar:
        """Rebuild a calendar from :meth:`snapshot` output; CalendarError if it is malformed."""
        try:
            return _from_snapshot(cls, data)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CalendarError):
                raise
            raise CalendarError(f"malformed calendar snapshot: {exc!r}") from None

    def _instant(self, day: date, minute: int) -> float:
        """UTC epoch of local ``day`` at ``minute`` (1440 = next midnight), DST exact."""
        if minute == MINUTES_PER_DAY:
            day, minute = day + timedelta(days=1), 0
        wall = datetime.combine(day, time(minute // 60, minute % 60), self.zone)
        first = wall.timestamp()
        second = wall.replace(fold=1).timestamp()
        if second >= first:
            # An existing wall time; fold=0 picks the earlier of an ambiguous pair.
            return first
        # A wall time skipped by a forward DST jump: the window edge is the jump itself,
        # the first real instant after it. Transitions fall on whole seconds.
        offset_after = datetime.fromtimestamp(first, self.zone).utcoffset()
        low, high = int(second), int(first)
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, self.zone).utcoffset() == offset_after:
                high = middle
            else:
                low = middle
        return float(high)


def always_open(name: str = "24x7") -> Calendar:
    """A calendar that never closes (UTC, every minute of every day, no holidays)."""
    return Calendar(name, "UTC", {day: [(0, MINUTES_PER_DAY)] for day in range(7)})


def calendars_from(configs: Mapping[str, CalendarConfig]) -> dict[str, Calendar]:
    """Build a Calendar for each named config (e.g. ``LoadedConfig.calendars()``)."""
    return {name: Calendar.from_config(name, config) for name, config in configs.items()}


def _checked_weekly(name: str, weekly: Weekly) -> dict[int, tuple[tuple[int, int], ...]]:
    out: dict[int, tuple[tuple[int, int], ...]] = {}
    for weekday, spans in weekly.items():
        if weekday not in range(7):
            raise CalendarError(f"calendar {name!r}: weekday {weekday!r} is not 0-6")
        ordered = tuple(sorted((int(start), int(end)) for start, end in spans))
        previous_end = 0
        for start, end in ordered:
            if not previous_end <= start < end <= MINUTES_PER_DAY:
                raise CalendarError(
                    f"calendar {name!r}: bad or overlapping window {start}-{end} on "
                    f"{WEEKDAYS[weekday]}"
                )
            previous_end = end
        if ordered:
            out[weekday] = ordered
    if not out:
        raise CalendarError(f"calendar {name!r} has no working hours")
    return out


def _from_snapshot(cls: type[Calendar], data: Mapping[str, Any]) -> Calendar:
    if data.get("version") != SNAPSHOT_VERSION:
        raise CalendarError(f"unsupported calendar snapshot version {data.get('version')!r}")
    weekly = {
        WEEKDAYS.index(day): [(int(start), int(end)) for start, end in spans]
        for day, spans in data["weekly"].items()
    }
    hols = data["holidays"]
    first_year, last_year = (int(year) for year in hols["years"])
    fixed: dict[int, set[date]] = {year: set() for year in range(first_year, last_year + 1)}
    for text in hols["dates"]:
        day = date.fromisoformat(text)
        if day.year not in fixed:
            raise CalendarError(f"snapshot holiday {text} is outside its years")
        fixed[day.year].add(day)
    raw_source = hols["source"]
    source = None if raw_source is None else HolidaySource.model_validate(raw_source)
    return cls(
        str(data["name"]),
        str(data["time_zone"]),
        weekly,
        source=source,
        add=[date.fromisoformat(text) for text in hols["add"]],
        remove=[date.fromisoformat(text) for text in hols["remove"]],
        fixed={year: frozenset(days) for year, days in fixed.items()},
    )
