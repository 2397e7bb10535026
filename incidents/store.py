"""The IncidentStore protocol, the write batch, and the in-memory implementation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from incidents.lifecycle import apply
from incidents.model import EventRecord, Incident, Run
from incidents.notify import Notification
from probe.attempt import Attempt

# (service, channel) → the last second persisted for it.
HighWater = dict[tuple[str, str], int]


class StoreError(Exception):
    """The store cannot be used: a newer schema, a foreign file, a lock held too long."""


class EventNotifier(Protocol):
    """What turns a newly recorded event into notifications (incidents.notify.NotifyRules)."""

    def for_event(
        self, incident: Incident, events: Sequence[EventRecord], event: EventRecord
    ) -> list[Notification]:
        """Notifications of ``event``; ``incident`` and ``events`` already include it."""
        ...


@dataclass(slots=True)
class Batch:
    """Everything one commit writes, in one transaction.

    ``runs`` are upserts keyed by (service, channel, first): a run still growing is
    written again, longer, by later batches. ``high_water`` and ``classifier_state``
    travel with the runs and events they describe, so after a crash all three agree.
    ``notify`` is asked, inside the same transaction, for the notifications of every event
    actually recorded (a skipped duplicate notifies nobody); ``notifications`` are queued
    as they are (clock and prober notices). The outbox ignores a key it already holds.
    """

    events: list[EventRecord] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    samples: list[Attempt] = field(default_factory=list)
    high_water: HighWater = field(default_factory=dict)
    classifier_state: Mapping[str, Any] | None = None
    notifications: list[Notification] = field(default_factory=list)
    notify: EventNotifier | None = None

    def __bool__(self) -> bool:
        return bool(
            self.events
            or self.notifications
            or self.runs
            or self.samples
            or self.high_water
            or self.classifier_state is not None
        )


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many rows one retention pass removed."""

    runs: int
    samples: int
    incidents: int


class IncidentStore(Protocol):
    """Where incidents, their events, verdict runs and evidence samples are kept."""

    def commit(self, batch: Batch) -> list[Incident]:
        """Write a batch atomically; the incidents it touched, as they now are.

        Events already recorded (same incident and key) are skipped, so a batch may be
        retried. LifecycleError (nothing written) if an event cannot apply.
        """
        ...

    def get(self, incident_id: str) -> Incident | None:
        """The incident called ``incident_id``, or None."""
        ...

    def incidents(self, *, state: str | None = None, service: str | None = None) -> list[Incident]:
        """Incidents (optionally of one state and service), oldest start first."""
        ...

    def events(self, incident_id: str) -> list[EventRecord]:
        """The events of an incident, in append order."""
        ...

    def runs(self, service: str, channel: str | None, first: int, last: int) -> list[Run]:
        """Runs of a service (one channel, or all) overlapping seconds ``first..last``."""
        ...

    def last_runs(self) -> list[Run]:
        """The latest run of every (service, channel): where a resumed writer continues."""
        ...

    def samples(self, service: str, first: int, last: int) -> list[Attempt]:
        """Sampled attempts of a service started in seconds ``first..last``, in time order."""
        ...

    def high_water(self) -> HighWater:
        """The last persisted second of every (service, channel)."""
        ...

    def classifier_state(self) -> dict[str, Any] | None:
        """The classifier snapshot committed with the latest runs, or None."""
        ...

    def prune(self, now: float, *, keep_runs: float, keep_samples: float) -> Pruned:
        """Drop what retention no longer keeps (``keep_*`` in seconds before ``now``)."""
        ...

    def pending(self, channel: str | None = None, *, limit: int = 100) -> list[Notification]:
        """Undelivered notifications (of one channel, or all), in enqueue order."""
        ...

    def notifications(
        self, *, incident: str | None = None, state: str | None = None
    ) -> list[Notification]:
        """Outbox records (optionally of one incident and one state), in enqueue order."""
        ...

    def mark_delivered(self, key: str, *, at: float) -> None:
        """Record that the notification ``key`` was delivered."""
        ...

    def mark_failed(self, key: str, *, tries: int, next_at: float, error: str) -> None:
        """Record a failed try: ``tries`` made so far, the next not before ``next_at``."""
        ...

    def mark_dead(self, key: str, *, tries: int, at: float, error: str) -> None:
        """Dead-letter the notification ``key``: no more tries; kept for people to see."""
        ...

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        """How many notifications each (channel, state) holds."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


class MemoryStore:
    """An IncidentStore in dictionaries: for tests and for runs that keep nothing."""

    def __init__(self) -> None:
        self._events: dict[str, list[EventRecord]] = {}
        self._incidents: dict[str, Incident] = {}
        self._runs: dict[tuple[str, str, int], Run] = {}
        self._samples: list[Attempt] = []
        self._high_water: HighWater = {}
        self._classifier: dict[str, Any] | None = None
        self._seq = 0
        # The outbox by idempotency key, in enqueue order (dicts keep insertion order).
        self._outbox: dict[str, Notification] = {}
        self._outbox_seq = 0

    def commit(self, batch: Batch) -> list[Incident]:
        """Apply every event first (so a bad one changes nothing), then write the batch."""
        pending: dict[str, Incident] = {}
        added: list[EventRecord] = []
        notes: list[Notification] = []
        keys = {(e.incident, e.key) for events in self._events.values() for e in events if e.key}
        for event in batch.events:
            if event.key is not None:
                if (event.incident, event.key) in keys:
                    continue
                keys.add((event.incident, event.key))
            current = pending.get(event.incident, self._incidents.get(event.incident))
            updated = apply(current, event)
            pending[event.incident] = updated
            added.append(event)
            if batch.notify is not None:
                history = [
                    *self._events.get(event.incident, ()),
                    *(e for e in added if e.incident == event.incident),
                ]
                notes.extend(batch.notify.for_event(updated, history, event))
        notes.extend(batch.notifications)
        for note in notes:
            if note.key not in self._outbox:
                self._outbox_seq += 1
                self._outbox[note.key] = dataclasses.replace(note, seq=self._outbox_seq)
        for event in added:
            self._seq += 1
            self._events.setdefault(event.incident, []).append(
                dataclasses.replace(event, seq=self._seq)
            )
        self._incidents.update(pending)
        for run in batch.runs:
            self._runs[(run.service, run.channel, run.first)] = run
        self._samples.extend(batch.samples)
        self._high_water.update(batch.high_water)
        if batch.classifier_state is not None:
            self._classifier = dict(batch.classifier_state)
        touched = {e.incident for e in batch.events}
        return [self._incidents[i] for i in sorted(touched) if i in self._incidents]

    def get(self, incident_id: str) -> Incident | None:
        """The incident called ``incident_id``, or None."""
        return self._incidents.get(incident_id)

    def incidents(self, *, state: str | None = None, service: str | None = None) -> list[Incident]:
        """Incidents (optionally of one state and service), oldest start first."""
        found = [
            i
            for i in self._incidents.values()
            if (state is None or i.state == state) and (service is None or i.service == service)
        ]
        return sorted(found, key=lambda i: (i.started_at, i.id))

    def events(self, incident_id: str) -> list[EventRecord]:
        """The events of an incident, in append order."""
        return list(self._events.get(incident_id, ()))

    def runs(self, service: str, channel: str | None, first: int, last: int) -> list[Run]:
        """Runs of a service (one channel, or all) overlapping seconds ``first..last``."""
        found = [
            r
            for r in self._runs.values()
            if r.service == service
            and (channel is None or r.channel == channel)
            and r.first <= last
            and r.last >= first
        ]
        return sorted(found, key=lambda r: (r.channel, r.first))

    def last_runs(self) -> list[Run]:
        """The latest run of every (service, channel)."""
        latest: dict[tuple[str, str], Run] = {}
        for run in self._runs.values():
            key = (run.service, run.channel)
            if key not in latest or run.first > latest[key].first:
                latest[key] = run
        return [latest[k] for k in sorted(latest)]

    def samples(self, service: str, first: int, last: int) -> list[Attempt]:
        """Sampled attempts of a service started in seconds ``first..last``, in time order."""
        found = [a for a in self._samples if a.service == service and first <= a.second <= last]
        return sorted(found, key=lambda a: (a.started_at, a.channel, a.target))

    def high_water(self) -> HighWater:
        """The last persisted second of every (service, channel)."""
        return dict(self._high_water)

    def classifier_state(self) -> dict[str, Any] | None:
        """The classifier snapshot committed with the latest runs, or None."""
        return None if self._classifier is None else dict(self._classifier)

    def prune(self, now: float, *, keep_runs: float, keep_samples: float) -> Pruned:
        """Drop what retention no longer keeps (``keep_*`` in seconds before ``now``)."""
        run_floor = now - keep_runs
        old_runs = [k for k, r in self._runs.items() if r.last < run_floor]
        for key in old_runs:
            del self._runs[key]
        kept = [a for a in self._samples if a.second >= now - keep_samples]
        dropped_samples = len(self._samples) - len(kept)
        self._samples = kept
        old = [i.id for i in self._incidents.values() if _expired(i, run_floor)]
        for incident_id in old:
            del self._incidents[incident_id]
            del self._events[incident_id]
        for done in [
            k for k, n in self._outbox.items() if n.done_at is not None and n.done_at < run_floor
        ]:
            del self._outbox[done]
        return Pruned(runs=len(old_runs), samples=dropped_samples, incidents=len(old))

    def pending(self, channel: str | None = None, *, limit: int = 100) -> list[Notification]:
        """Undelivered notifications (of one channel, or all), in enqueue order."""
        found = [
            n
            for n in self._outbox.values()
            if n.state == "pending" and (channel is None or n.channel == channel)
        ]
        return found[:limit]

    def notifications(
        self, *, incident: str | None = None, state: str | None = None
    ) -> list[Notification]:
        """Outbox records (optionally of one incident and one state), in enqueue order."""
        return [
            n
            for n in self._outbox.values()
            if (incident is None or n.incident == incident) and (state is None or n.state == state)
        ]

    def mark_delivered(self, key: str, *, at: float) -> None:
        """Record that the notification ``key`` was delivered."""
        note = self._outbox[key]
        self._outbox[key] = dataclasses.replace(
            note, state="delivered", tries=note.tries + 1, done_at=at, next_at=None
        )

    def mark_failed(self, key: str, *, tries: int, next_at: float, error: str) -> None:
        """Record a failed try: ``tries`` made so far, the next not before ``next_at``."""
        self._outbox[key] = dataclasses.replace(
            self._outbox[key], tries=tries, next_at=next_at, last_error=error
        )

    def mark_dead(self, key: str, *, tries: int, at: float, error: str) -> None:
        """Dead-letter the notification ``key``: no more tries; kept for people to see."""
        self._outbox[key] = dataclasses.replace(
            self._outbox[key], state="dead", tries=tries, done_at=at, next_at=None, last_error=error
        )

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        """How many notifications each (channel, state) holds."""
        counts: dict[tuple[str, str], int] = {}
        for note in self._outbox.values():
            counts[(note.channel, note.state)] = counts.get((note.channel, note.state), 0) + 1
        return counts

    def close(self) -> None:
        """Nothing to release."""


def closed_at(incident: Incident) -> float | None:
    """When an incident stopped needing attention: resolved, else restored; None while open."""
    if incident.state == "open":
        return None
    if incident.resolved_at is not None:
        return incident.resolved_at
    return incident.restored_at


def _expired(incident: Incident, floor: float) -> bool:
    closed = closed_at(incident)
    return closed is not None and closed < floor
