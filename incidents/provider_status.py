"""The provider's own status page beside our verdict: readings as events, and what it declared when.

Pure. A reading of an Atlassian Statuspage-format page (``/api/v2/summary.json`` and
``/api/v2/incidents.json``, already decoded) becomes ``provider_status_changed`` events
on an open incident: one per declared component status (keyed by component, status and
the page's own change time) and one per provider incident update (keyed by its id), so
polling again, or after a restart, records nothing twice. The events change nothing of
the incident or its clocks (``incidents.lifecycle.apply``).

:class:`DeclaredTally` then lines the page up against our measurement: for each
component, how many of the unavailable seconds fell under each declared status, and how
long after our first failing second the provider posted its first incident update.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from config.timetext import TimeTextError, format_time, parse_time
from incidents.model import EventRecord, Incident, Run

KIND = "provider_status_changed"
SOURCE = "status_page"
# Statuspage's component statuses, with the words its pages show for them.
STATUS_LABELS = {
    "operational": "Operational",
    "degraded_performance": "Degraded Performance",
    "partial_outage": "Partial Outage",
    "major_outage": "Major Outage",
    "under_maintenance": "Under Maintenance",
}
# Seconds before an incident's first bad second from which provider updates are kept.
UPDATE_MARGIN_S = 3600
# A provider's update text is kept to this many characters.
MAX_BODY = 1000
# Said of seconds before the page was first read.
UNKNOWN = "unknown"


class StatusPageError(ValueError):
    """A document is not in the Statuspage format."""


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """A component's declared status and when the page says it last changed."""

    id: str
    name: str
    status: str
    changed_at: float


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """One update of a provider incident."""

    incident_id: str
    incident_name: str
    update_id: str
    status: str
    body: str
    at: float


@dataclass(frozen=True, slots=True)
class Reading:
    """What one poll of the page found."""

    components: tuple[ComponentStatus, ...] = ()
    updates: tuple[IncidentUpdate, ...] = ()


def _time(value: Any, where: str) -> float:
    try:
        return parse_time(value)
    except TimeTextError as exc:
        raise StatusPageError(f"{where}: {exc}") from None


def _list(document: Any, key: str, where: str) -> list[Any]:
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise StatusPageError(f"{where}: expected an object with a list {key!r}")
    return list(document[key])


def read_components(summary: Any, wanted: Sequence[str]) -> tuple[ComponentStatus, ...]:
    """The statuses of the ``wanted`` components (every non-group one when empty)."""
    found = []
    for index, item in enumerate(_list(summary, "components", "summary.json")):
        where = f"summary.json: components[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise StatusPageError(f"{where}: expected an object with a name")
        if (wanted and item["name"] not in wanted) or (not wanted and item.get("group")):
            continue
        status = item.get("status")
        if not isinstance(status, str):
            raise StatusPageError(f"{where}: expected a status")
        found.append(
            ComponentStatus(
                id=str(item.get("id") or item["name"]),
                name=item["name"],
                status=status,
                changed_at=_time(item.get("updated_at"), f"{where}.updated_at"),
            )
        )
    return tuple(found)


def read_updates(incidents: Any) -> tuple[IncidentUpdate, ...]:
    """Every update of every incident the page lists."""
    found = []
    for index, item in enumerate(_list(incidents, "incidents", "incidents.json")):
        where = f"incidents.json: incidents[{index}]"
        updates = _list(item, "incident_updates", where)
        name = str(item.get("name", ""))
        for number, update in enumerate(updates):
            place = f"{where}.incident_updates[{number}]"
            if not isinstance(update, dict):
                raise StatusPageError(f"{place}: expected an object")
            found.append(
                IncidentUpdate(
                    incident_id=str(item.get("id", index)),
                    incident_name=name,
                    update_id=str(update.get("id", f"{index}.{number}")),
                    status=str(update.get("status", "")),
                    body=str(update.get("body", ""))[:MAX_BODY],
                    at=_time(
                        update.get("display_at") or update.get("created_at"), f"{place}.created_at"
                    ),
                )
            )
    return tuple(found)


def status_events(incident: Incident, reading: Reading, *, recorded_at: float) -> list[EventRecord]:
    """The events a reading holds for an open incident (the store drops those it has)."""
    events = []
    for component in reading.components:
        label = STATUS_LABELS.get(component.status, component.status)
        events.append(
            EventRecord(
                incident=incident.id,
                kind=KIND,
                at=component.changed_at,
                source=SOURCE,
                recorded_at=recorded_at,
                note=f"{component.name}: {label}",
                data={"component": component.name, "status": component.status},
                key=f"component:{component.id}:{component.status}@{component.changed_at:.3f}",
            )
        )
    for update in reading.updates:
        if update.at < incident.started_at - UPDATE_MARGIN_S:
            continue
        events.append(
            EventRecord(
                incident=incident.id,
                kind=KIND,
                at=update.at,
                source=SOURCE,
                recorded_at=recorded_at,
                note=f"{update.incident_name} ({update.status}): {update.body}",
                data={
                    "provider_incident": update.incident_name,
                    "provider_incident_id": update.incident_id,
                    "status": update.status,
                },
                key=f"update:{update.incident_id}:{update.update_id}",
            )
        )
    return events


def declared_timelines(events: Iterable[EventRecord]) -> dict[str, list[tuple[float, str]]]:
    """Per component, the (time, status) changes the page declared, in time order."""
    out: dict[str, list[tuple[float, str]]] = {}
    for event in sorted(events, key=lambda e: e.at):
        component = event.data.get("component") if event.kind == KIND else None
        if isinstance(component, str):
            out.setdefault(component, []).append((event.at, str(event.data.get("status"))))
    return out


def first_update_at(events: Iterable[EventRecord]) -> float | None:
    """When the provider posted its first incident update among the events (None: never)."""
    times = [e.at for e in events if e.kind == KIND and "provider_incident" in e.data]
    return min(times, default=None)


@dataclass
class DeclaredTally:
    """Unavailable seconds by the status each component was declared in at that second."""

    timelines: Mapping[str, Sequence[tuple[float, str]]]
    seconds: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, runs: Iterable[Run], low: int, high: int) -> None:
        """Count the unavailable seconds (``combined``) of the runs within ``low..high-1``."""
        for run in runs:
            if run.channel != "combined" or run.verdict != "unavailable":
                continue
            first, end = max(run.first, low), min(run.last + 1, high)
            for component, changes in self.timelines.items():
                counts = self.seconds.setdefault(component, {})
                for status, count in _split(changes, first, end):
                    counts[status] = counts.get(status, 0) + count

    def to_json(self, started_at: int, posted_at: float | None) -> dict[str, Any]:
        """The side-by-side part of the evidence summary."""
        return {
            "declared_during_unavailability": {
                name: dict(sorted(counts.items())) for name, counts in sorted(self.seconds.items())
            },
            "first_provider_update_at": None if posted_at is None else format_time(posted_at),
            "first_provider_update_after_s": None
            if posted_at is None
            else math.floor(posted_at - started_at),
        }


def _split(changes: Sequence[tuple[float, str]], first: int, end: int) -> Iterable[tuple[str, int]]:
    """(status, seconds) over whole seconds ``first..end-1``; a second takes its start's status."""
    status = UNKNOWN
    cursor = first
    for at, declared in changes:
        change = math.ceil(at)
        if change > cursor:
            stop = min(change, end)
            if stop > cursor:
                yield status, stop - cursor
                cursor = stop
        status = declared
        if cursor >= end:
            return
    if end > cursor:
        yield status, end - cursor


def side_by_side(part: Mapping[str, Any], unavailable: int) -> list[str]:
    """Sentences setting what the page declared beside the measured unavailable seconds."""
    lines = []
    total = _span(unavailable)
    for component, counts in part.get("declared_during_unavailability", {}).items():
        shown = sorted(counts.items(), key=lambda item: -item[1])
        said = "; ".join(
            f"{STATUS_LABELS.get(status, status)} for {_span(n)}" for status, n in shown
        )
        lines.append(
            f"During the {total} of measured Unavailability, the status page showed "
            f"{component} as: {said}."
        )
    after = part.get("first_provider_update_after_s")
    if after is None:
        lines.append("The provider posted no incident on its status page.")
    elif after >= 0:
        lines.append(
            f"The provider's incident was posted {_span(after)} after our first failing second "
            f"({part['first_provider_update_at']})."
        )
    else:
        lines.append(
            f"The provider's incident was posted {_span(-after)} before our first failing "
            f"second ({part['first_provider_update_at']})."
        )
    return lines


def _span(seconds: int) -> str:
    minutes, rest = divmod(int(seconds), 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min" if not rest else f"{minutes} min {rest} s"
