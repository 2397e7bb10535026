"""The typed signals the classification state machine emits (DESIGN.md §5).

Every time in a signal is integer UTC epoch seconds: a second ``s`` stands for the
instant ``s`` (its start); ``detected_at`` is the *end* of the second in which the
condition became true, so it is that second plus one. Render with
``config.timetext.format_time`` for RFC 3339.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from config.timetext import format_time


@dataclass(frozen=True, slots=True)
class Opened:
    """A new incident: a condition became true with no incident open or recently restored."""

    service: str
    incident: str
    severity: int
    provider_severity: str
    # The first bad second of the condition that opened it.
    started_at: int
    detected_at: int
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Upgraded:
    """An open incident met a more severe condition (only ever 2 → 1; never downgraded)."""

    service: str
    incident: str
    from_severity: int
    to_severity: int
    provider_severity: str
    # The first bad second of the more severe condition (e.g. the start of the streak).
    started_at: int
    detected_at: int
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Restored:
    """An open incident saw ``recover_after`` consecutive available seconds."""

    service: str
    incident: str
    severity: int
    # The start of the available run; detected once the run is long enough.
    restored_at: int
    detected_at: int
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reopened:
    """A condition came back within ``reopen_within`` of a restore: the same incident again.

    ``severity`` is the incident's level after reopening: the higher of its previous level
    and the new condition's, since the classifier never downgrades an incident by itself.
    """

    service: str
    incident: str
    severity: int
    previous_severity: int
    provider_severity: str
    started_at: int
    detected_at: int
    # The restore this reopening cancels.
    restored_at: int
    channels: tuple[str, ...]


IncidentSignal = Opened | Upgraded | Restored | Reopened


def signal_facts(signal: IncidentSignal) -> dict[str, Any]:
    """What a signal says beyond its service and incident, times as RFC 3339 (for logs)."""
    return {
        field.name: format_time(value) if field.name.endswith("_at") else value
        for field in dataclasses.fields(signal)
        if field.name not in ("service", "incident", "channels")
        and (value := getattr(signal, field.name)) is not None
    }
