"""The incident event record that SLA clocks are derived from, and its JSON form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from config.timetext import TimeTextError, format_time, parse_time

EventKind = Literal[
    "ticket_opened",
    "provider_responded",
    "provider_updated",
    "awaiting_customer",
    "customer_replied",
    "severity_changed",
    "restored",
    "resolved",
]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)


class EventError(ValueError):
    """An event record that is not valid (unknown kind, missing severity, bad time)."""


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """One thing that happened to an incident, at UTC epoch seconds ``at``.

    ``severity`` belongs to ``severity_changed`` (the new level, 1-3) and only to it;
    ``next_update_at`` is the provider's written promise of its next update, carried
    by ``provider_responded`` or ``provider_updated``.
    """

    kind: EventKind
    at: float
    next_update_at: float | None = None
    severity: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise EventError(f"unknown event kind {self.kind!r}")
        if not math.isfinite(self.at):
            raise EventError(f"{self.kind}: time must be finite")
        if (self.kind == "severity_changed") != (self.severity is not None):
            raise EventError("severity is given with severity_changed events, and only them")
        if self.severity is not None and self.severity not in (1, 2, 3):
            raise EventError(f"severity must be 1, 2 or 3, got {self.severity!r}")
        if self.next_update_at is not None and (
            self.kind not in ("provider_responded", "provider_updated")
            or not math.isfinite(self.next_update_at)
        ):
            raise EventError("next_update_at belongs to provider_responded or provider_updated")

    def to_json(self) -> dict[str, Any]:
        """``{"kind", "at", ["next_update_at"], ["severity"]}``, times RFC 3339 UTC."""
        record: dict[str, Any] = {"kind": self.kind, "at": format_time(self.at)}
        if self.next_update_at is not None:
            record["next_update_at"] = format_time(self.next_update_at)
        if self.severity is not None:
            record["severity"] = self.severity
        return record

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IncidentEvent:
        """Rebuild an event from :meth:`to_json` output; EventError if it is malformed."""
        unknown = set(data) - {"kind", "at", "next_update_at", "severity"}
        if unknown:
            raise EventError(f"unknown event keys: {', '.join(sorted(unknown))}")
        kind = data.get("kind")
        if kind not in EVENT_KINDS:
            raise EventError(f"unknown event kind {kind!r}")
        next_update = data.get("next_update_at")
        severity = data.get("severity")
        if severity is not None and (isinstance(severity, bool) or not isinstance(severity, int)):
            raise EventError(f"severity must be 1, 2 or 3, got {severity!r}")
        try:
            at = parse_time(data.get("at"))
            next_at = None if next_update is None else parse_time(next_update)
        except TimeTextError as exc:
            raise EventError(str(exc)) from None
        return cls(
            kind=kind,
            at=at,
            next_update_at=next_at,
            severity=severity,
        )
