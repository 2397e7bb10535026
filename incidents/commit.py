"""The commit algorithm every store runs: dedupe events by key, fold them, then write.

Pure: a store supplies two look-ups into what it already holds (inside its own
transaction) and writes what :func:`plan_events` returns. Because an incident is the fold
of its append-only events and a classifier event's key is unique per incident, a batch
may be committed again after a crash, or by two writers at once, and nothing is doubled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from incidents.lifecycle import admit, apply
from incidents.model import EventRecord, Incident


@dataclass(slots=True)
class EventPlan:
    """What a batch's events come to: the ones to append, and each touched incident after them."""

    # New events in batch order (duplicates of stored or earlier batch events left out).
    added: list[EventRecord] = field(default_factory=list)
    # Incident id → the incident after the batch, for every incident an added event touched.
    incidents: dict[str, Incident] = field(default_factory=dict)
    # Ids of incidents the batch creates (no stored event before it).
    created: set[str] = field(default_factory=set)

    def touched(self) -> list[Incident]:
        """The touched incidents, by id."""
        return [self.incidents[i] for i in sorted(self.incidents)]


def plan_events(
    events: Iterable[EventRecord],
    *,
    recorded: Callable[[str, str], bool],
    stored: Callable[[str], Incident | None],
) -> EventPlan:
    """Dedupe ``events`` by (incident, key) and fold each onto its incident.

    ``recorded(incident, key)`` says whether the store holds that keyed event already;
    ``stored(incident)`` is the incident as the store holds it (None when it has none).
    LifecycleError (nothing to write) when an event cannot apply, or a new user event
    cannot have happened as told (``incidents.lifecycle.admit``).
    """
    plan = EventPlan()
    seen: set[tuple[str, str]] = set()
    for event in events:
        if event.key is not None:
            mark = (event.incident, event.key)
            if mark in seen or recorded(*mark):
                continue
            seen.add(mark)
        current = plan.incidents.get(event.incident)
        if current is None:
            current = stored(event.incident)
            if current is None:
                plan.created.add(event.incident)
        admit(current, event)
        plan.incidents[event.incident] = apply(current, event)
        plan.added.append(event)
    return plan
