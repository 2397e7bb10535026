"""The IncidentStore protocol and the write batch every store implementation takes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from incidents.model import EventRecord, Incident, Run
from incidents.outbox import Notification
from probe.attempt import Attempt

# (service, channel) → the last second persisted for it.
HighWater = dict[tuple[str, str], int]
# A run of a fleet's pooled seconds alike in who reported: (first, last, probers reporting,
# probers expected), ``last`` inclusive.
VantageRun = tuple[int, int, int, int]


class StoreError(Exception):
    """The store cannot be used: a newer schema, a foreign file, a lock held too long."""


@dataclass(slots=True)
class Batch:
    """Everything one commit writes, in one transaction.

    ``runs`` are upserts keyed by (service, channel, first): a run still growing is
    written again, longer, by later batches. ``high_water`` and ``classifier_state``
    travel with the runs and events they describe, so after a crash all three agree.
    Notifications are not part of it: they are derived from the event log afterwards,
    whoever wrote the events (``IncidentStore.events_since``, ``enqueue``).
    """

    events: list[EventRecord] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    samples: list[Attempt] = field(default_factory=list)
    high_water: HighWater = field(default_factory=dict)
    classifier_state: Mapping[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(
            self.events
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

    # Where the store is, for messages (a file, or a database URL without its password).
    where: str

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

    def events_since(self, cursor: int, *, limit: int = 1000) -> list[EventRecord]:
        """Events of every incident with ``seq`` above ``cursor``, in commit order.

        The log every view derives from: follow it by passing the last ``seq`` seen.
        """
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

    def enqueue(self, notes: Sequence[Notification], *, cursor: int | None = None) -> None:
        """Queue notifications (a key already held is ignored) and move the cursor with them.

        The cursor is the last event ``seq`` whose notifications are queued; it moves in
        the same transaction, so a crash between the two cannot lose or repeat any.
        """
        ...

    def notify_cursor(self) -> int:
        """The last event ``seq`` whose notifications were queued (0 for a new store)."""
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

    def vantage(self, first: int, last: int, incident: tuple[int, int]) -> dict[str, Any] | None:
        """A fleet's vantage points over seconds ``first..last`` (None: one instance, no fleet).

        ``incident`` is the incident's span (first and last second): how many probers and
        locations saw it. The evidence bundle seals it as its ``vantage`` part.
        """
        ...

    def vantage_seconds(self, first: int, last: int) -> list[VantageRun] | None:
        """How many probers reported and were expected in each pooled second ``first..last``.

        Runs of seconds alike in both counts, oldest first; a second not pooled is in none.
        None for one instance (no fleet): the evidence records say 1 and 1 where monitored.
        """
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...

    def __enter__(self) -> IncidentStore: ...

    def __exit__(self, *exc: object) -> None: ...


def closed_at(incident: Incident) -> float | None:
    """When an incident stopped needing attention: resolved, else restored; None while open."""
    if incident.state == "open":
        return None
    if incident.resolved_at is not None:
        return incident.resolved_at
    return incident.restored_at
