"""SLA terms: a service's policy and calendars frozen at one moment, parsed once, with their clocks.

An incident is held to the terms it opened under, so the terms are snapshots (not names):
the catalog, the config or the holiday package may change later without moving a
deadline. The JSON form is what is stored; the parsed policy and calendars are built
from it the first time clocks are asked for, and kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from config.catalog import BUSINESS, Catalog, ClockName, PolicySpec, severity_names
from config.model import CalendarConfig, ServiceConfig
from sla.calendar import Calendar
from sla.clocks import ClockState, clocks_for
from sla.events import IncidentEvent

# The calendar every catalog policy may name without the config defining it.
ALWAYS_OPEN = "24x7"


@dataclass(frozen=True)
class SlaTerms:
    """The contract one incident is held to (not slotted: the parsed forms are cached on it)."""

    # The catalog policy id and its spec as JSON (None: the service names no policy).
    policy_id: str | None = None
    policy: Mapping[str, Any] | None = None
    # The service's ``sla.calendar`` name, and Calendar.snapshot() of every calendar needed.
    calendar: str | None = None
    calendars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    update_every: float | None = None
    # The provider's name of each normalized level, as text keys "1".."3" (JSON objects).
    names: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON form kept with the incident's ``opened`` event."""
        return {
            "policy_id": self.policy_id,
            "policy": None if self.policy is None else dict(self.policy),
            "calendar": self.calendar,
            "calendars": {k: dict(v) for k, v in self.calendars.items()},
            "update_every": self.update_every,
            "names": dict(self.names),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SlaTerms:
        """Rebuild the terms from :meth:`to_json` output."""
        return cls(
            policy_id=data.get("policy_id"),
            policy=data.get("policy"),
            calendar=data.get("calendar"),
            calendars=dict(data.get("calendars") or {}),
            update_every=data.get("update_every"),
            names={str(k): str(v) for k, v in (data.get("names") or {}).items()},
        )

    def name_of(self, severity: int) -> str:
        """The provider's name of a normalized severity level."""
        return self.names.get(str(severity), f"Severity {severity}")

    @cached_property
    def spec(self) -> PolicySpec | None:
        """The policy, validated once (None without one)."""
        return None if self.policy is None else PolicySpec.model_validate(self.policy)

    @cached_property
    def parsed_calendars(self) -> dict[str, Calendar]:
        """The calendar snapshots as calendars, built once."""
        return {name: Calendar.from_snapshot(snap) for name, snap in self.calendars.items()}

    @property
    def escalation(self) -> str | None:
        """The provider's escalation path, where the policy names one."""
        path = (self.policy or {}).get("escalation")
        return None if path is None else str(path)

    def clocks(
        self,
        severity: int,
        *,
        opened_at: float,
        events: Sequence[IncidentEvent],
        now: float,
    ) -> dict[ClockName, ClockState]:
        """Every clock these terms define for an issue opened at ``opened_at``, as of ``now``.

        Empty without a policy. PolicyError (sla.policy) when the terms cannot be resolved,
        e.g. a business-hours clock without a calendar.
        """
        spec = self.spec
        if spec is None:
            return {}
        calendars = self.parsed_calendars
        return clocks_for(
            spec,
            severity,
            calendars.get(self.calendar) if self.calendar else None,
            opened_at=opened_at,
            events=events,
            now=now,
            update_every=self.update_every,
            calendars=calendars,
        )


def freeze_terms(
    service: ServiceConfig,
    catalog: Catalog,
    calendars: Mapping[str, CalendarConfig],
    *,
    at: float,
) -> SlaTerms:
    """Freeze the service's SLA terms for an issue starting at ``at``.

    The calendar snapshots hold the holidays of that year and the next, which covers
    every clock an incident can run (the longest target is days, not years).
    """
    names = {str(level): name for level, name in severity_names(service, catalog).items()}
    policy_id = service.sla.policy
    spec = catalog.policies.get(policy_id) if policy_id else None
    if spec is None:
        return SlaTerms(names=names)
    wanted: set[str] = set()
    if service.sla.calendar is not None:
        wanted.add(service.sla.calendar)
    for severity in spec.severities.values():
        for clock in severity.clocks.values():
            if clock.calendar not in (BUSINESS, ALWAYS_OPEN):
                wanted.add(clock.calendar)
    year = datetime.fromtimestamp(at, UTC).year
    snapshots = {
        name: Calendar.from_config(name, calendars[name]).snapshot(year, year + 1)
        for name in sorted(wanted)
        if name in calendars
    }
    return SlaTerms(
        policy_id=policy_id,
        policy=spec.model_dump(mode="json"),
        calendar=service.sla.calendar,
        calendars=snapshots,
        update_every=service.sla.update_every,
        names=names,
    )
