"""The event-log follower: the daemon's view of incidents, derived from the store's events only.

Whoever wrote an event (this daemon's classifier, the API, ``slawatch incidents event`` from
another process, another instance of a fleet), the follower reads it from
``IncidentStore.events_since`` within a tick and derives from it: the open incidents and
their SLA clocks, the incident metrics, and the notifications, which go to the outbox with
their idempotency keys. The notification cursor is stored with them, so a restart resumes
where the last run stopped and a second reader duplicates nothing.

:meth:`EventFollower.sync` does blocking store calls: the daemon runs it on its store
thread. It publishes a new ``open`` mapping rather than changing the one readers hold.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from incidents.lifecycle import apply
from incidents.model import EventRecord, Incident
from incidents.outbox import Notification
from incidents.store import IncidentStore
from incidents.view import clock_states
from notify.rules import NotifyRules

log = logging.getLogger("slawatch.incidents")
# Events read from the log per query (a backlog is read in several).
PAGE = 1000


class IncidentMetrics(Protocol):
    """The metrics the follower keeps (slawatch.metrics.Metrics implements them)."""

    def incident_opened(self, service: str, severity: int) -> None:
        """Count an opened or reopened incident."""

    def breach(self, service: str, severity: int, clock: str) -> None:
        """Count one breached SLA clock."""

    def set_open(self, counts: Mapping[tuple[str, int], int], services: list[str]) -> None:
        """Set the open-incident gauges."""

    def set_deadlines(
        self, deadlines: Mapping[tuple[str, str], float | None], services: list[str]
    ) -> None:
        """Set the earliest pending deadline per (service, clock)."""


@dataclass(slots=True)
class OpenIncident:
    """An open incident as its events say it is, with its events (for the clocks)."""

    incident: Incident
    events: list[EventRecord]
    # Breaches already counted per clock (the metric counts each once per process).
    breaches: dict[str, int] = field(default_factory=dict)
    # Why its clocks cannot be computed, once logged ("" while they can).
    clock_error: str = ""


class EventFollower:
    """Follows the event log; ``open`` is the view of the open incidents it derives."""

    def __init__(self, rules: NotifyRules, metrics: IncidentMetrics | None = None) -> None:
        self.rules = rules
        self.metrics = metrics
        self.open: dict[str, OpenIncident] = {}
        # The last event seq taken into the view (its notifications are produced).
        self.cursor = 0
        # Notifications produced but not yet in the outbox (the store may refuse writes),
        # and whether the cursor moved since the outbox last took it.
        self._unsent: list[Notification] = []
        self._cursor_unsaved = False
        self._lock = threading.Lock()

    def start(self, store: IncidentStore) -> None:
        """Resume from the store: its notification cursor and its open incidents."""
        self.cursor = store.notify_cursor()
        opened = {}
        for incident in store.incidents(state="open"):
            opened[incident.id] = OpenIncident(incident, store.events(incident.id))
            log.info(
                "resumed open incident",
                extra={"incident": incident.id, "service": incident.service},
            )
        self.open = opened

    def queue(self, notes: list[Notification]) -> None:
        """Notifications for the outbox at the next sync (clock and prober notices)."""
        if notes:
            with self._lock:
                self._unsent.extend(notes)

    def sync(self, store: IncidentStore) -> None:
        """Take every event written since the last sync into the view, then fill the outbox."""
        while True:
            events = store.events_since(self.cursor, limit=PAGE)
            if not events:
                break
            self._take(store, events)
            if len(events) < PAGE:
                break
        self.flush(store)

    @property
    def unsent(self) -> bool:
        """Whether notifications or the cursor wait for the outbox."""
        return bool(self._unsent) or self._cursor_unsaved

    def flush(self, store: IncidentStore) -> None:
        """Write the notifications produced so far, and the cursor, to the outbox."""
        with self._lock:
            notes = list(self._unsent)
        if not notes and not self._cursor_unsaved:
            return
        try:
            store.enqueue(notes, cursor=self.cursor)
        except Exception as exc:  # noqa: BLE001  (kept, and tried again at the next sync)
            log.warning("cannot queue notifications yet", extra={"error": str(exc)})
            return
        self._cursor_unsaved = False
        with self._lock:
            del self._unsent[: len(notes)]

    def _take(self, store: IncidentStore, events: list[EventRecord]) -> None:
        arrived: dict[str, set[int | None]] = {}
        for event in events:
            arrived.setdefault(event.incident, set()).add(event.seq)
        opened = dict(self.open)
        for incident_id, seqs in arrived.items():
            history = store.events(incident_id)
            incident = self._follow(history, seqs)
            if incident is None:
                continue
            kept = opened.get(incident.id)
            if incident.state != "open":
                if opened.pop(incident.id, None) is not None:
                    self.rules.forget([incident.id])
            elif kept is None:
                opened[incident.id] = OpenIncident(incident, history)
            else:
                opened[incident.id] = OpenIncident(
                    incident, history, kept.breaches, kept.clock_error
                )
        self.open = opened
        self.cursor = max(self.cursor, *(e.seq or 0 for e in events))
        self._cursor_unsaved = True

    def _follow(self, history: list[EventRecord], arrived: set[int | None]) -> Incident | None:
        """Fold one incident's history; notify and count each event that just arrived."""
        incident: Incident | None = None
        notes: list[Notification] = []
        for index, event in enumerate(history):
            incident = apply(incident, event)
            if event.seq not in arrived:
                continue
            notes += self.rules.for_event(incident, history[: index + 1], event)
            if self.metrics is not None and event.kind in ("opened", "reopened"):
                self.metrics.incident_opened(incident.service, incident.severity)
        self.queue(notes)
        return incident

    def refresh(self, now: float, services: list[str]) -> None:
        """Each second: clocks of every open incident, their notices and the incident gauges."""
        counts: dict[tuple[str, int], int] = {}
        deadlines: dict[tuple[str, str], float | None] = {}
        for kept in self.open.values():
            incident = kept.incident
            key = (incident.service, incident.severity)
            counts[key] = counts.get(key, 0) + 1
            states, error = clock_states(incident, kept.events, now)
            if error and error != kept.clock_error:
                # A policy that no longer resolves must not stop the loop; say which incident.
                log.error(
                    "cannot compute SLA clocks", extra={"incident": incident.id, "error": error}
                )
            kept.clock_error = error
            self.queue(self.rules.clocks(incident, states, now))
            for name, state in states.items():
                seen = kept.breaches.get(name, 0)
                if state.breaches > seen:
                    if self.metrics is not None:
                        for _ in range(state.breaches - seen):
                            self.metrics.breach(incident.service, incident.severity, name)
                    log.warning(
                        "SLA clock breached",
                        extra={"incident": incident.id, "service": incident.service, "clock": name},
                    )
                    kept.breaches[name] = state.breaches
                if state.state == "running" and state.deadline is not None:
                    current = deadlines.get((incident.service, name))
                    if current is None or state.deadline < current:
                        deadlines[(incident.service, name)] = state.deadline
        if self.metrics is not None:
            self.metrics.set_open(counts, services)
            self.metrics.set_deadlines(deadlines, services)
