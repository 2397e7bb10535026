"""An IncidentStore in dictionaries: for tests, replay and runs that keep nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from incidents.commit import plan_events
from incidents.model import EventRecord, Incident, Run
from incidents.outbox import Notification
from incidents.store import Batch, HighWater, Pruned, VantageRun, closed_at
from probe.attempt import Attempt


class MemoryStore:
    """An IncidentStore in dictionaries: for tests and for runs that keep nothing."""

    where = "memory"

    def __init__(self) -> None:
        self._events: dict[str, list[EventRecord]] = {}
        self._incidents: dict[str, Incident] = {}
        self._runs: dict[tuple[str, str, int], Run] = {}
        self._samples: list[Attempt] = []
        self._high_water: HighWater = {}
        self._classifier: dict[str, Any] | None = None
        self._seq = 0
        # Every event in commit order (the log views follow), and the keys recorded.
        self._log: list[EventRecord] = []
        self._keys: set[tuple[str, str | None]] = set()
        self._notify_cursor = 0
        # The outbox by idempotency key, in enqueue order (dicts keep insertion order).
        self._outbox: dict[str, Notification] = {}
        self._outbox_seq = 0

    def commit(self, batch: Batch) -> list[Incident]:
        """Plan every event first (so a bad one changes nothing), then write the batch."""
        plan = plan_events(
            batch.events,
            recorded=lambda incident, key: (incident, key) in self._keys,
            stored=self._incidents.get,
        )
        for event in plan.added:
            self._seq += 1
            stored = dataclasses.replace(event, seq=self._seq)
            self._events.setdefault(event.incident, []).append(stored)
            self._log.append(stored)
            if event.key is not None:
                self._keys.add((event.incident, event.key))
        self._incidents.update(plan.incidents)
        for run in batch.runs:
            self._runs[(run.service, run.channel, run.first)] = run
        self._samples.extend(batch.samples)
        self._high_water.update(batch.high_water)
        if batch.classifier_state is not None:
            self._classifier = dict(batch.classifier_state)
        return plan.touched()

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

    def events_since(self, cursor: int, *, limit: int = 1000) -> list[EventRecord]:
        """Events with ``seq`` above ``cursor``, in commit order."""
        found = [e for e in self._log if e.seq is not None and e.seq > cursor]
        return found[:limit]

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
        self._log = [e for e in self._log if e.incident in self._incidents]
        self._keys = {k for k in self._keys if k[0] in self._incidents}
        for done in [
            k for k, n in self._outbox.items() if n.done_at is not None and n.done_at < run_floor
        ]:
            del self._outbox[done]
        return Pruned(runs=len(old_runs), samples=dropped_samples, incidents=len(old))

    def enqueue(self, notes: Sequence[Notification], *, cursor: int | None = None) -> None:
        """Queue notifications (a key already held is ignored); move the cursor with them."""
        for note in notes:
            if note.key not in self._outbox:
                self._outbox_seq += 1
                self._outbox[note.key] = dataclasses.replace(note, seq=self._outbox_seq)
        if cursor is not None:
            self._notify_cursor = max(self._notify_cursor, cursor)

    def notify_cursor(self) -> int:
        """The last event ``seq`` whose notifications were queued."""
        return self._notify_cursor

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

    def vantage(self, first: int, last: int, incident: tuple[int, int]) -> dict[str, Any] | None:
        """None: a single instance pools nothing (``IncidentStore.vantage``)."""
        del first, last, incident
        return None

    def vantage_seconds(self, first: int, last: int) -> list[VantageRun] | None:
        """None: a single instance pools nothing (``IncidentStore.vantage_seconds``)."""
        del first, last
        return None

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        """How many notifications each (channel, state) holds."""
        counts: dict[tuple[str, str], int] = {}
        for note in self._outbox.values():
            counts[(note.channel, note.state)] = counts.get((note.channel, note.state), 0) + 1
        return counts

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _expired(incident: Incident, floor: float) -> bool:
    closed = closed_at(incident)
    return closed is not None and closed < floor
