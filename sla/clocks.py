"""SLA clock states (running, paused, met, breached) derived from an incident's events.

Modelled on Zendesk's SLA targets: nothing is stored but the events and the calendar;
every deadline, elapsed and remaining time is recomputed from them.

- The ticket-open time is ``opened_at`` (the incident's ``detected_at``) unless a
  ``ticket_opened`` event records the real one (the latest such event wins).
- The severity is the latest ``severity_changed`` event's, else the one given; the
  clocks are then those of that severity, all measured from the ticket-open time.
- ``first_response`` is met by the first ``provider_responded`` or ``provider_updated``.
- ``update`` is recurring: its first cycle starts at the first response, each later
  provider update closes the current cycle and starts the next. A cycle's deadline is
  one interval of business time after its start, or the ``next_update_at`` the
  provider promised in the event that started it. Before the first response it has
  no deadline.
- ``restore`` is met by ``restored``; ``awaiting_customer`` … ``customer_replied``
  intervals do not count, and while such a pause is open the deadline is undefined
  (unless the clock had already run out before the pause began).
- ``resolved`` closes every clock still open, as solving a ticket does in Zendesk.
- A clock without a numeric target is tracked: running until met, never breached.
- Events later than ``now`` have not happened yet and are ignored.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from config.catalog import ClockName, PolicySpec
from config.durations import format_duration
from config.timetext import format_time
from sla.businesstime import (
    Pause,
    add_business_time,
    business_time_between,
    signed_business_time,
)
from sla.calendar import Calendar, always_open
from sla.events import IncidentEvent
from sla.policy import ClockDefinition, PolicyError, SeverityClocks, resolve_clocks

ClockStatus = Literal["running", "paused", "met", "breached"]


@dataclass(frozen=True, slots=True)
class ClockState:
    """One clock of an incident as of some ``now``; times are UTC epoch seconds."""

    name: ClockName
    state: ClockStatus
    # Business seconds of the clock (None = tracked, no numeric target).
    target: float | None
    calendar: str
    # None before the clock can have one: no target, an open pause, no first response yet.
    deadline: float | None
    # Business time counted so far (of the current cycle, for the update clock).
    elapsed_s: float
    # Business time left until the deadline, negative once past it; None when untargeted.
    remaining_s: float | None
    # How many deadlines this clock has missed (update cycles can miss several).
    breaches: int = 0

    def to_json(self) -> dict[str, Any]:
        """The JSON form used by replay, the API and evidence."""
        return {
            "deadline": None if self.deadline is None else format_time(self.deadline),
            "state": self.state,
            "target": None if self.target is None else format_duration(self.target),
            "calendar": self.calendar,
            "elapsed_s": round(self.elapsed_s, 3),
            "remaining_s": None if self.remaining_s is None else round(self.remaining_s, 3),
            "breaches": self.breaches,
        }


@dataclass(frozen=True, slots=True)
class Timeline:
    """What an incident's events say as of ``now``, reduced to what the clocks need."""

    opened_at: float
    severity: int
    # (time, promised next update) of every provider response or update, in order.
    provider_messages: tuple[tuple[float, float | None], ...]
    restored_at: float | None
    resolved_at: float | None
    # Closed awaiting-customer intervals, and the start of one still open.
    pauses: tuple[Pause, ...]
    open_pause: float | None


def read_timeline(
    events: Sequence[IncidentEvent], *, opened_at: float, severity: int, now: float
) -> Timeline:
    """Reduce the events up to ``now`` (in time order) to the facts the clocks are built from."""
    messages: list[tuple[float, float | None]] = []
    pauses: list[Pause] = []
    open_pause: float | None = None
    restored_at: float | None = None
    resolved_at: float | None = None
    for event in sorted((e for e in events if e.at <= now), key=lambda e: e.at):
        if event.kind == "ticket_opened":
            opened_at = event.at
        elif event.kind == "severity_changed" and event.severity is not None:
            severity = event.severity
        elif event.kind in ("provider_responded", "provider_updated"):
            messages.append((event.at, event.next_update_at))
        elif event.kind == "awaiting_customer" and open_pause is None:
            open_pause = event.at
        elif event.kind == "customer_replied" and open_pause is not None:
            pauses.append((open_pause, event.at))
            open_pause = None
        elif event.kind == "restored" and restored_at is None:
            restored_at = event.at
        elif event.kind == "resolved" and resolved_at is None:
            resolved_at = event.at
    return Timeline(
        opened_at=opened_at,
        severity=severity,
        provider_messages=tuple(messages),
        restored_at=restored_at,
        resolved_at=resolved_at,
        pauses=tuple(pauses),
        open_pause=open_pause,
    )


def clocks_for(
    policy: PolicySpec,
    severity: int,
    service_calendar: Calendar | None,
    *,
    opened_at: float,
    events: Sequence[IncidentEvent],
    now: float,
    update_every: float | None = None,
    calendars: Mapping[str, Calendar] | None = None,
) -> dict[ClockName, ClockState]:
    """Every clock the incident carries under its current severity, as of ``now``.

    ``severity`` is the level the incident opened at (``severity_changed`` events
    override it); ``service_calendar`` is the service's ``sla.calendar`` (None when
    the service has none); ``calendars`` resolves the other calendar names the policy
    uses (the catalog's ``24x7`` is built in); ``update_every`` is the service's
    ``sla.update_every``. PolicyError when a needed calendar is missing.
    """
    timeline = read_timeline(events, opened_at=opened_at, severity=severity, now=now)
    terms = resolve_clocks(
        policy,
        timeline.severity,
        calendar=None if service_calendar is None else service_calendar.name,
        update_every=update_every,
    )
    known = {"24x7": always_open(), **(calendars or {})}
    if service_calendar is not None:
        known[service_calendar.name] = service_calendar
    return clocks_from_timeline(terms, timeline, now, known)


def clocks_from_timeline(
    terms: SeverityClocks, timeline: Timeline, now: float, calendars: Mapping[str, Calendar]
) -> dict[ClockName, ClockState]:
    """The clock states of ``terms`` over a timeline already read from the events."""
    states: dict[ClockName, ClockState] = {}
    for name, definition in terms.clocks.items():
        calendar = calendars.get(definition.calendar)
        if calendar is None:
            raise PolicyError(f"clock {name} needs calendar {definition.calendar!r}")
        if name == "first_response":
            responded = timeline.provider_messages[0][0] if timeline.provider_messages else None
            states[name] = _one_shot(
                definition,
                calendar,
                timeline.opened_at,
                _earliest(responded, timeline.resolved_at),
                now,
            )
        elif name == "restore":
            states[name] = _one_shot(
                definition,
                calendar,
                timeline.opened_at,
                _earliest(timeline.restored_at, timeline.resolved_at),
                now,
                pauses=timeline.pauses,
                open_pause=timeline.open_pause,
            )
        else:
            states[name] = _update_clock(definition, calendar, timeline, now)
    return states


def clocks_json(states: Mapping[ClockName, ClockState]) -> dict[str, dict[str, Any]]:
    """``{clock name: ClockState JSON}`` for a set of clock states."""
    return {name: state.to_json() for name, state in states.items()}


def _earliest(*times: float | None) -> float | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def _one_shot(
    definition: ClockDefinition,
    calendar: Calendar,
    start: float,
    satisfied: float | None,
    now: float,
    *,
    pauses: Sequence[Pause] = (),
    open_pause: float | None = None,
    promised: float | None = None,
) -> ClockState:
    end = now if satisfied is None else satisfied
    # An open pause counts as closed where the measurement ends (now, or the satisfying event).
    counted = [*pauses, (open_pause, end)] if open_pause is not None else list(pauses)
    elapsed = business_time_between(calendar, start, end, counted)
    deadline: float | None = promised
    if promised is None and definition.target is not None:
        deadline = add_business_time(calendar, start, definition.target, pauses)
        if open_pause is not None and deadline > open_pause:
            # The pause began before the clock ran out: its length, and so the deadline,
            # is unknown until it closes (here: at the satisfying event, if any).
            deadline = (
                None
                if satisfied is None
                else add_business_time(calendar, start, definition.target, counted)
            )
    state: ClockStatus
    if satisfied is not None:
        state = "met" if deadline is None or satisfied <= deadline else "breached"
    elif deadline is not None and now > deadline:
        state = "breached"
    elif open_pause is not None:
        state = "paused"
    else:
        state = "running"
    remaining: float | None = None
    if deadline is not None:
        remaining = signed_business_time(calendar, end, deadline, counted)
    elif definition.target is not None:
        remaining = definition.target - elapsed
    return ClockState(
        name=definition.name,
        state=state,
        target=definition.target,
        calendar=definition.calendar,
        deadline=deadline,
        elapsed_s=elapsed,
        remaining_s=remaining,
        breaches=int(state == "breached"),
    )


def _update_clock(
    definition: ClockDefinition, calendar: Calendar, timeline: Timeline, now: float
) -> ClockState:
    messages = timeline.provider_messages
    resolved = timeline.resolved_at
    if not messages:
        # Not started: the first cycle begins with the first response.
        return ClockState(
            name=definition.name,
            state="running" if resolved is None else "met",
            target=definition.target,
            calendar=definition.calendar,
            deadline=None,
            elapsed_s=0.0,
            remaining_s=definition.target,
        )
    breaches = 0
    for (start, promise), (closed_at, _) in itertools.pairwise(messages):
        deadline = _cycle_deadline(definition, calendar, start, promise)
        if deadline is not None and closed_at > deadline:
            breaches += 1
    start, promise = messages[-1]
    current = _one_shot(definition, calendar, start, resolved, now, promised=promise)
    return ClockState(
        name=current.name,
        state=current.state,
        target=current.target,
        calendar=current.calendar,
        deadline=current.deadline,
        elapsed_s=current.elapsed_s,
        remaining_s=current.remaining_s,
        breaches=breaches + current.breaches,
    )


def _cycle_deadline(
    definition: ClockDefinition, calendar: Calendar, start: float, promise: float | None
) -> float | None:
    if promise is not None:
        return promise
    if definition.target is None:
        return None
    return add_business_time(calendar, start, definition.target)
