"""The one projection of an incident for people and programs: its JSON, clocks and links.

The API, the CLI, the pages and the notifications all show an incident through
:func:`incident_view`, so they cannot disagree about what it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from config.catalog import ClockName
from config.timetext import format_local
from incidents.lifecycle import incident_clocks
from incidents.model import EventRecord, Incident
from sla.clocks import ClockState
from sla.terms import ALWAYS_OPEN


def links(base_url: str, incident_id: str) -> dict[str, str]:
    """The incident's API page and its Markdown evidence under the daemon's public URL."""
    base = base_url.rstrip("/")
    return {
        "incident": f"{base}/api/v1/incidents/{incident_id}",
        "evidence": f"{base}/api/v1/incidents/{incident_id}/evidence?format=md",
    }


def clock_states(
    incident: Incident, events: Iterable[EventRecord], now: float
) -> tuple[dict[ClockName, ClockState], str]:
    """The incident's clocks as of ``now`` and, when its terms cannot be resolved, why not."""
    try:
        return incident_clocks(incident, events, now), ""
    except ValueError as exc:
        # PolicyError, or frozen terms a newer slawatch cannot validate: say so, keep going.
        return {}, str(exc)


def clocks_view(
    states: dict[ClockName, ClockState], zones: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Clock states as JSON, each deadline also as epoch seconds (for scripts) and local time.

    ``zones`` maps calendar names to time zones; a clock's ``deadline_local`` is its
    deadline in its calendar's zone (None without a deadline or a known zone).
    """
    zones = zones or {}
    out: dict[str, Any] = {}
    for name, state in states.items():
        zone = zones.get(state.calendar)
        local = None
        if zone is not None and state.deadline is not None:
            local = format_local(state.deadline, zone)
        out[name] = {
            **state.to_json(),
            "deadline_epoch": state.deadline,
            "time_zone": zone,
            "deadline_local": local,
        }
    return out


def calendar_zones(incident: Incident) -> dict[str, str]:
    """The time zone of every calendar the incident's frozen terms hold."""
    zones = {ALWAYS_OPEN: "UTC"}
    for name, snapshot in incident.terms.calendars.items():
        zone = snapshot.get("time_zone")
        if isinstance(zone, str):
            zones[name] = zone
    return zones


def incident_view(
    incident: Incident,
    events: list[EventRecord],
    now: float,
    *,
    base_url: str | None = None,
    with_events: bool = False,
) -> dict[str, Any]:
    """The incident's JSON with its clocks as of ``now``, links and (optionally) its events."""
    body = incident.to_json()
    states, error = clock_states(incident, events, now)
    body["clocks"] = clocks_view(states, calendar_zones(incident))
    if error:
        body["clocks_error"] = error
    if base_url is not None:
        body["links"] = links(base_url, incident.id)
    if with_events:
        body["events"] = [event.to_json() for event in events]
    return body
