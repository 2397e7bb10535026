"""Availability reports over a period: seconds by verdict, availability, commitment, incidents.

The formula, per channel and for the service (``combined``, the contract's "and/or"):

    observed     = seconds judged available, partial or unavailable
    availability = (observed - unavailable) / observed x 100 %

``no_data`` and ``inconclusive`` seconds, and seconds slawatch did not run at all
("unmonitored"), are neither available nor unavailable: they leave the denominator.
A ``partial`` second (some attempts failed, not all) is *not* Unavailability by the
contract's definition, so it counts as available. The commitment (``sla.commitment``)
is met when the service's availability is at least the commitment; the budget is
``floor(observed x (100 - commitment) / 100)`` unavailable seconds, and what remains of
it is the budget minus the unavailable seconds (negative once overspent).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, Literal, get_args

from classifier.verdict import COMBINED, VERDICTS
from config.catalog import ClockName
from config.timetext import format_time
from incidents.lifecycle import incident_clocks
from incidents.model import Incident, Run
from incidents.store import IncidentStore
from sla.clocks import ClockState
from sla.policy import PolicyError

ReportFormat = Literal["text", "json", "md", "csv"]
REPORT_FORMATS: tuple[ReportFormat, ...] = get_args(ReportFormat)
DAY_S = 86_400
# Digits of the availability percentage shown (the exact fraction is in the JSON).
PERCENT_DIGITS = 6


class ReportError(ValueError):
    """A report period that cannot be used (malformed month, empty or reversed range)."""


def month_range(text: str) -> tuple[int, int]:
    """``YYYY-MM`` as the UTC calendar month [first second, first second of the next)."""
    try:
        start = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ReportError(f"invalid month {text!r} (expected YYYY-MM, e.g. 2026-11)") from None
    following = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return int(start.timestamp()), int(following.timestamp())


@dataclass(frozen=True, slots=True)
class ChannelFigures:
    """The seconds of one channel (or ``combined``) in the period, and its availability."""

    channel: str
    # Seconds by verdict (VERDICTS order names), from the stored runs.
    seconds: Mapping[str, int]
    # Seconds of the period no run covers: slawatch was not running.
    unmonitored: int

    @property
    def observed(self) -> int:
        """Seconds judged available, partial or unavailable."""
        return self.seconds["available"] + self.seconds["partial"] + self.seconds["unavailable"]

    @property
    def unavailable(self) -> int:
        """Seconds of Unavailability."""
        return self.seconds["unavailable"]

    @property
    def availability(self) -> Fraction | None:
        """Available share of the observed seconds, as an exact percentage (None: none observed)."""
        if not self.observed:
            return None
        return Fraction(100 * (self.observed - self.unavailable), self.observed)

    @property
    def ratio(self) -> float | None:
        """The availability as a fraction 0-1 (what pages carry in ``data-availability``)."""
        share = self.availability
        return None if share is None else float(share / 100)

    def to_json(self) -> dict[str, Any]:
        """The figures as JSON (the percentage rounded, and exact as a fraction)."""
        share = self.availability
        return {
            "seconds": dict(self.seconds),
            "unmonitored": self.unmonitored,
            "observed": self.observed,
            "unavailable": self.unavailable,
            "available": self.observed - self.unavailable,
            "availability": self.ratio,
            "availability_percent": None if share is None else round(float(share), PERCENT_DIGITS),
            # Exact, as a fraction (or an integer) of percent: 71650/717 is 99.930265...
            "availability_percent_exact": None if share is None else str(share),
        }


@dataclass(frozen=True, slots=True)
class IncidentLine:
    """One incident of the period with its clocks as of the report."""

    incident: Incident
    clocks: Mapping[ClockName, ClockState] = field(default_factory=dict)
    clocks_error: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """What a service did over [start, end), against its commitment."""

    service: str
    start: int
    end: int
    channels: Sequence[ChannelFigures]
    commitment: float | None
    incidents: Sequence[IncidentLine]

    @property
    def combined(self) -> ChannelFigures:
        """The service-level figures."""
        return next(c for c in self.channels if c.channel == COMBINED)

    @property
    def budget(self) -> int | None:
        """Unavailable seconds the commitment allows over the observed seconds."""
        if self.commitment is None:
            return None
        allowed = Fraction(self.combined.observed) * (100 - Fraction(repr(self.commitment))) / 100
        return math.floor(allowed)

    @property
    def remaining(self) -> int | None:
        """Unavailable seconds the budget still allows (negative once overspent)."""
        budget = self.budget
        return None if budget is None else budget - self.combined.unavailable

    @property
    def met(self) -> bool | None:
        """Whether the availability reached the commitment (None: no commitment or no data)."""
        share = self.combined.availability
        if self.commitment is None or share is None:
            return None
        return share >= Fraction(repr(self.commitment))

    def to_json(self) -> dict[str, Any]:
        """The report as JSON."""
        budget = self.budget
        return {
            "service": self.service,
            "from": format_time(self.start),
            "to": format_time(self.end),
            "seconds": self.end - self.start,
            "channels": {c.channel: c.to_json() for c in self.channels if c.channel != COMBINED},
            "combined": self.combined.to_json(),
            "commitment": None
            if self.commitment is None
            else {
                "percent": self.commitment,
                "met": self.met,
                "budget_seconds": budget,
                "used_seconds": self.combined.unavailable,
                "remaining_seconds": self.remaining,
            },
            "incidents": [
                {
                    **line.incident.to_json(),
                    "clocks": {
                        name: {
                            "deadline": None
                            if state.deadline is None
                            else format_time(state.deadline),
                            "state": state.state,
                        }
                        for name, state in line.clocks.items()
                    },
                    "clocks_error": line.clocks_error,
                }
                for line in self.incidents
            ],
        }


def figures(runs: Iterable[Run], channel: str, start: int, end: int) -> ChannelFigures:
    """Seconds by verdict of one channel's runs, clipped to [start, end)."""
    seconds = {str(v): 0 for v in VERDICTS}
    for run in runs:
        if run.channel != channel:
            continue
        overlap = min(run.last + 1, end) - max(run.first, start)
        if overlap > 0:
            seconds[run.verdict] = seconds.get(run.verdict, 0) + overlap
    return ChannelFigures(
        channel=channel, seconds=seconds, unmonitored=(end - start) - sum(seconds.values())
    )


def daily(runs: Iterable[Run], channel: str, first_day: int, days: int) -> list[ChannelFigures]:
    """The figures of each UTC day from ``first_day`` on (the status page's daily bars).

    The same as :func:`figures` for each day, in one pass over the runs (90 days of a
    flapping service are thousands of runs).
    """
    seconds = [{str(v): 0 for v in VERDICTS} for _ in range(days)]
    end = first_day + days * DAY_S
    for run in runs:
        if run.channel != channel or run.last < first_day or run.first >= end:
            continue
        first_index = max(0, (run.first - first_day) // DAY_S)
        last_index = min(days - 1, (run.last - first_day) // DAY_S)
        for index in range(first_index, last_index + 1):
            start = first_day + index * DAY_S
            overlap = min(run.last + 1, start + DAY_S) - max(run.first, start)
            counts = seconds[index]
            counts[run.verdict] = counts.get(run.verdict, 0) + overlap
    return [
        ChannelFigures(channel=channel, seconds=day, unmonitored=DAY_S - sum(day.values()))
        for day in seconds
    ]


def build_report(
    service: str,
    runs: Sequence[Run],
    incidents: Iterable[IncidentLine],
    *,
    start: int,
    end: int,
    commitment: float | None,
) -> Report:
    """The report of a service from its runs and incidents (channels: those the runs have)."""
    if end <= start:
        raise ReportError("the report period is empty (its end is not after its start)")
    names = sorted({r.channel for r in runs} - {COMBINED})
    return Report(
        service=service,
        start=start,
        end=end,
        channels=[figures(runs, name, start, end) for name in (*names, COMBINED)],
        commitment=commitment,
        incidents=list(incidents),
    )


def overlaps(incident: Incident, start: int, end: int) -> bool:
    """Whether an incident belongs to the period [start, end): it was open during some of it."""
    if incident.started_at >= end:
        return False
    return incident.restored_at is None or incident.restored_at >= start


def figures_for(
    store: IncidentStore, service: str, *, start: int, end: int, commitment: float | None
) -> Report:
    """The figures of a service's report without its incidents (for pages that poll)."""
    runs = store.runs(service, None, start, end - 1)
    return build_report(service, runs, [], start=start, end=end, commitment=commitment)


def report_for(
    store: IncidentStore,
    service: str,
    *,
    start: int,
    end: int,
    commitment: float | None,
    now: float,
) -> Report:
    """The report of a service from what the store holds; clocks as of ``now``."""
    figures_only = figures_for(store, service, start=start, end=end, commitment=commitment)
    lines = []
    for incident in store.incidents(service=service):
        if not overlaps(incident, start, end):
            continue
        try:
            clocks = incident_clocks(incident, store.events(incident.id), now)
            lines.append(IncidentLine(incident, clocks))
        except PolicyError as exc:
            lines.append(IncidentLine(incident, clocks_error=str(exc)))
    return dataclasses.replace(figures_only, incidents=lines)


def render_report(report: Report, fmt: str) -> str:
    """The report as text, JSON or Markdown."""
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2) + "\n"
    if fmt == "text":
        return _text(report)
    if fmt == "md":
        return _markdown(report)
    if fmt == "csv":
        return render_csv([report])
    raise ReportError(f"unknown format {fmt!r} (one of: {', '.join(REPORT_FORMATS)})")


CSV_HEAD = (
    "service",
    "from",
    "to",
    "channel",
    "observed",
    "unavailable",
    "partial",
    "no_data",
    "inconclusive",
    "unmonitored",
    "availability",
    "availability_percent",
    "commitment_percent",
    "met",
    "budget_seconds",
    "remaining_seconds",
)


def csv_rows(report: Report) -> list[tuple[object, ...]]:
    """One CSV row per channel (``combined`` last) of a report; the commitment on each."""

    def blank(value: object) -> object:
        return "" if value is None else value

    met = {True: "true", False: "false", None: ""}[report.met]
    return [
        (
            report.service,
            format_time(report.start),
            format_time(report.end),
            c.channel,
            c.observed,
            c.unavailable,
            c.seconds["partial"],
            c.seconds["no_data"],
            c.seconds["inconclusive"],
            c.unmonitored,
            blank(c.ratio),
            "" if c.availability is None else f"{float(c.availability):.{PERCENT_DIGITS}f}",
            blank(report.commitment),
            met,
            blank(report.budget),
            blank(report.remaining),
        )
        for c in report.channels
    ]


def render_csv(reports: Iterable[Report]) -> str:
    """Reports as one CSV table (the reports page downloads every service's month as this)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEAD)
    for report in reports:
        writer.writerows(csv_rows(report))
    return out.getvalue()


def percent_text(share: Fraction | None) -> str:
    """An availability percentage as the reports print it ("99.930265 %", "n/a")."""
    return "n/a" if share is None else f"{float(share):.{PERCENT_DIGITS}f} %"


def _rows(report: Report) -> list[tuple[str, ...]]:
    return [
        (
            c.channel,
            str(c.observed),
            str(c.unavailable),
            str(c.seconds["partial"]),
            str(c.seconds["no_data"] + c.seconds["inconclusive"]),
            str(c.unmonitored),
            percent_text(c.availability),
        )
        for c in report.channels
    ]


_HEAD = ("channel", "observed", "unavailable", "partial", "no data", "unmonitored", "availability")


def _commitment_line(report: Report) -> str:
    if report.commitment is None:
        return "commitment: none configured (sla.commitment)"
    budget = report.budget
    verdict = {True: "met", False: "NOT met", None: "not judged (nothing observed)"}[report.met]
    used = report.combined.unavailable
    remaining = "n/a" if budget is None else str(budget - used)
    return (
        f"commitment {report.commitment:g} %: {verdict} "
        f"(availability {percent_text(report.combined.availability)}); "
        f"budget {budget} s, used {used} s, remaining {remaining} s"
    )


def _incident_line(line: IncidentLine) -> str:
    incident = line.incident
    restored = "still open" if incident.restored_at is None else format_time(incident.restored_at)
    clocks = ", ".join(
        f"{name} {state.state}"
        + ("" if state.deadline is None else f" (deadline {format_time(state.deadline)})")
        for name, state in line.clocks.items()
    )
    return (
        f"{incident.id}  severity {incident.severity} ({incident.provider_severity})  "
        f"{incident.state}  started {format_time(incident.started_at)}  restored {restored}"
        f"  clocks: {clocks or line.clocks_error or 'none'}"
    )


def _text(report: Report) -> str:
    rows = [_HEAD, *_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEAD))]
    lines = [
        f"service {report.service}  {format_time(report.start)} .. {format_time(report.end)} "
        f"({report.end - report.start} s)",
        "",
    ]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines += ["", _commitment_line(report), f"incidents: {len(report.incidents)}"]
    lines += [f"  {_incident_line(line)}" for line in report.incidents]
    return "\n".join(lines) + "\n"


def _markdown(report: Report) -> str:
    lines = [
        f"# Availability of {report.service}",
        "",
        f"Period: {format_time(report.start)} to {format_time(report.end)} "
        f"({report.end - report.start} s, UTC).",
        "",
        "| " + " | ".join(_HEAD) + " |",
        "|" + "---|" * len(_HEAD),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(report)]
    lines += [
        "",
        _commitment_line(report).replace("NOT met", "**NOT met**"),
        "",
        "Availability = (observed - unavailable) / observed; observed seconds are those "
        "judged available, partial or unavailable; a partial second is not Unavailability.",
        "",
        f"## Incidents ({len(report.incidents)})",
        "",
    ]
    lines += [f"- {_incident_line(line)}" for line in report.incidents] or ["None."]
    return "\n".join(lines) + "\n"
