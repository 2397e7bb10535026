"""The SLA catalog: provider policies and business calendars, shipped as YAML data."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Literal, get_args

from pydantic import Field

from config.durations import Duration
from config.model import CalendarConfig, ServiceConfig, Strict

ClockName = Literal["first_response", "update", "restore"]
CLOCK_NAMES: tuple[ClockName, ...] = get_args(ClockName)
# The calendar name a policy uses for "business hours" it does not define itself:
# the service's own ``sla.calendar`` is substituted.
BUSINESS = "business"


class ClockSpec(Strict):
    """One SLA clock of a severity: its target (None = tracked, no number) and calendar."""

    target: Annotated[Duration, Field(gt=0)] | None = None
    calendar: str = "24x7"
    # The target is whatever the parties agreed (``sla.update_every``), none by default.
    agreed: bool = False
    text: str = ""


class SeveritySpec(Strict):
    """A provider severity: its own name and the clocks it carries."""

    name: str
    description: str = ""
    clocks: dict[ClockName, ClockSpec] = Field(default_factory=dict)


class PolicySpec(Strict):
    """A support policy of one provider's product and plan."""

    provider: str
    product: str
    plan: str
    source: str = ""
    # Calendars the provider's "business hours" may be; None = the user picks any.
    business_hours: list[str] | None = None
    escalation: str | None = None
    notes: str = ""
    severities: dict[Annotated[int, Field(ge=1, le=3)], SeveritySpec]

    def needs_calendar(self) -> bool:
        """True when some clock runs on business hours the user must choose."""
        return any(
            clock.calendar == BUSINESS
            for severity in self.severities.values()
            for clock in severity.clocks.values()
        )


class CatalogFile(Strict):
    """One file of ``config/catalog/``."""

    calendars: dict[str, CalendarConfig] = Field(default_factory=dict)
    policies: dict[str, PolicySpec] = Field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    """Every shipped policy and calendar."""

    policies: dict[str, PolicySpec]
    calendars: dict[str, CalendarConfig]


def severity_names(service: ServiceConfig, catalog: Catalog) -> dict[int, str]:
    """The provider's name of each level 1-3 under the service's policy; "Severity N" otherwise."""
    names = {level: f"Severity {level}" for level in (1, 2, 3)}
    policy = catalog.policies.get(service.sla.policy) if service.sla.policy else None
    if policy is not None:
        for level, spec in policy.severities.items():
            names[level] = spec.name
    return names


def catalog_files() -> list[tuple[str, str]]:
    """(name, text) of every shipped catalog file, sorted by name."""
    root = resources.files("config") / "catalog"
    return sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in root.iterdir()
        if entry.name.endswith(".yaml")
    )
