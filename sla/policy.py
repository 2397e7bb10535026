"""Resolve a catalog policy and severity, on a service's calendar, into concrete clocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from config.catalog import BUSINESS, CLOCK_NAMES, ClockName, PolicySpec


class PolicyError(ValueError):
    """A policy, severity or calendar choice that cannot be resolved into clocks."""


class CalendarRequired(PolicyError):
    """A clock runs on business hours and no calendar was chosen for them."""

    def __init__(self, severity: int, choices: Sequence[str] | None) -> None:
        self.severity = severity
        self.choices = list(choices or [])
        hint = f" (one of: {', '.join(self.choices)})" if self.choices else ""
        super().__init__(f"severity {severity} has business-hours clocks: choose a calendar{hint}")


@dataclass(frozen=True, slots=True)
class ClockDefinition:
    """One clock an incident carries: its target (None = tracked, no number) and calendar."""

    name: ClockName
    # Seconds of business time on ``calendar``; None where the provider names no number.
    target: float | None
    # A concrete calendar name: "business" is already replaced by the service's calendar.
    calendar: str
    text: str = ""

    @property
    def recurring(self) -> bool:
        """True for the update clock, which re-arms at every provider update."""
        return self.name == "update"


@dataclass(frozen=True, slots=True)
class SeverityClocks:
    """What a policy promises at one severity: the provider's name for it and its clocks."""

    severity: int
    provider_severity: str
    escalation: str | None
    # In CLOCK_NAMES order; only the clocks the policy defines (none for free plans).
    clocks: Mapping[ClockName, ClockDefinition] = field(default_factory=dict)


def find_policy(policies: Mapping[str, PolicySpec], policy_id: str) -> PolicySpec:
    """The policy called ``policy_id``; PolicyError naming the known ones otherwise."""
    try:
        return policies[policy_id]
    except KeyError:
        raise PolicyError(
            f"unknown policy {policy_id!r} (known: {', '.join(sorted(policies))})"
        ) from None


def resolve_clocks(
    policy: PolicySpec,
    severity: int,
    *,
    calendar: str | None,
    update_every: float | None = None,
) -> SeverityClocks:
    """The clocks of ``policy`` at ``severity``, with "business" read as ``calendar``.

    ``calendar`` is the service's ``sla.calendar`` and is needed only when a clock of
    this severity runs on business hours; where the provider lists its business-hours
    calendars, it must be one of them. ``update_every`` is the service's
    ``sla.update_every``, the target of clocks whose period is mutually agreed.
    """
    spec = policy.severities.get(severity)
    if spec is None:
        raise PolicyError(
            f"{policy.provider} {policy.product} {policy.plan} has no severity {severity} "
            f"(known: {', '.join(str(level) for level in sorted(policy.severities))})"
        )
    clocks: dict[ClockName, ClockDefinition] = {}
    for name in CLOCK_NAMES:
        clock = spec.clocks.get(name)
        if clock is None:
            continue
        target = update_every if clock.agreed else clock.target
        clocks[name] = ClockDefinition(
            name=name,
            target=target,
            calendar=_calendar_for(policy, severity, clock.calendar, calendar),
            text=clock.text,
        )
    return SeverityClocks(
        severity=severity,
        provider_severity=spec.name,
        escalation=policy.escalation,
        clocks=clocks,
    )


def _calendar_for(
    policy: PolicySpec, severity: int, wanted: str, service_calendar: str | None
) -> str:
    if wanted != BUSINESS:
        return wanted
    choices = policy.business_hours
    if service_calendar is None:
        raise CalendarRequired(severity, choices)
    if choices is not None and service_calendar not in choices:
        raise PolicyError(
            f"{policy.provider}'s business hours are one of {', '.join(choices)}, "
            f"not {service_calendar!r}"
        )
    return service_calendar
