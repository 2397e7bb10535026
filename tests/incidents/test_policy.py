"""Policies: every shipped policy and severity resolved into clocks, with hand-computed deadlines."""

from __future__ import annotations

import pytest

from config import load_catalog
from config.catalog import PolicySpec
from config.timetext import format_time, parse_time
from sla.calendar import Calendar, calendars_from
from sla.clocks import clocks_for
from sla.policy import CalendarRequired, PolicyError, find_policy, resolve_clocks

# Wednesday 2026-11-18 15:00 US Eastern: two business hours are left that day; the
# next Thursday (26th) is Thanksgiving.
OPENED = "2026-11-18T20:00:00Z"
NONE: dict[str, tuple[str | None, str, str | None]] = {}
ESSENTIALS: Expected = {
    1: ("Business Critical", {"first_response": ("3h", "us-eastern", "2026-11-19T15:00:00Z")}),
    2: ("Degraded Service", {"first_response": ("6h", "us-eastern", "2026-11-19T18:00:00Z")}),
    3: ("General Issue", {"first_response": ("9h", "us-eastern", "2026-11-19T21:00:00Z")}),
}
PRO: Expected = {
    1: ("Business Critical", {"first_response": ("1h", "24x7", "2026-11-18T21:00:00Z")}),
    # Two business hours from 15:00 end exactly at closing time.
    2: ("Degraded Service", {"first_response": ("2h", "us-eastern", "2026-11-18T22:00:00Z")}),
    3: ("General Issue", {"first_response": ("3h", "us-eastern", "2026-11-19T15:00:00Z")}),
}
FREE: Expected = {
    1: ("Business Critical", NONE),
    2: ("Degraded Service", NONE),
    3: ("General Issue", NONE),
}
BIRD_TICKET: dict[str, tuple[str | None, str, str | None]] = {
    "first_response": (None, "us-eastern", None)
}
Expected = dict[int, tuple[str, dict[str, tuple[str | None, str, str | None]]]]
EXPECTED: dict[str, Expected] = {
    "sendgrid-email-api/free": FREE,
    "sendgrid-email-api/essentials": ESSENTIALS,
    "sendgrid-email-api/pro": PRO,
    "sendgrid-email-api/premier": PRO,
    "sendgrid-marketing-campaigns/free": FREE,
    "sendgrid-marketing-campaigns/basic": ESSENTIALS,
    "sendgrid-marketing-campaigns/advanced": PRO,
    "bird-email-enterprise": {
        1: (
            "Critical Issue",
            {
                "first_response": ("15m", "24x7", "2026-11-18T20:15:00Z"),
                # Agreed period not configured: tracked; no deadline before a response anyway.
                "update": (None, "24x7", None),
            },
        ),
        2: ("Non-Critical Issue", BIRD_TICKET),
        3: ("Non-Critical Issue", BIRD_TICKET),
    },
    "bird-email-premium": {
        1: ("Critical Issue", BIRD_TICKET),
        2: ("Non-Critical Issue", BIRD_TICKET),
        3: ("Non-Critical Issue", BIRD_TICKET),
    },
    "megaport": {
        1: (
            "Severity 1",
            {
                "first_response": ("15m", "24x7", "2026-11-18T20:15:00Z"),
                "update": ("30m", "24x7", None),
                "restore": ("6h", "24x7", "2026-11-19T02:00:00Z"),
            },
        ),
        2: (
            "Severity 2",
            {
                "first_response": ("15m", "24x7", "2026-11-18T20:15:00Z"),
                "update": ("1h", "24x7", None),
                "restore": ("24h", "24x7", "2026-11-19T20:00:00Z"),
            },
        ),
        3: (
            "Severity 3",
            {
                "first_response": ("30m", "24x7", "2026-11-18T20:30:00Z"),
                "update": ("4h", "24x7", None),
                # Wed 2 h, Thu-Wed 40 h (weekend skipped), Thanksgiving skipped, Fri 6 h.
                "restore": ("48h", "us-eastern", "2026-11-27T20:00:00Z"),
            },
        ),
    },
}
CASES = [
    pytest.param(policy, level, name, clocks, id=f"{policy}-{level}")
    for policy, levels in EXPECTED.items()
    for level, (name, clocks) in levels.items()
]


@pytest.fixture(scope="module")
def eastern() -> Calendar:
    """The shipped us-eastern calendar."""
    return calendars_from(load_catalog().calendars)["us-eastern"]


def test_every_shipped_policy_is_covered() -> None:
    """The table below names every shipped policy and severity."""
    catalog = load_catalog()
    assert {(p, s) for p, spec in catalog.policies.items() for s in spec.severities} == {
        (p, s) for p, levels in EXPECTED.items() for s in levels
    }


@pytest.mark.parametrize(("policy_id", "severity", "provider_severity", "expected"), CASES)
def test_shipped_policy_clocks(
    policy_id: str,
    severity: int,
    provider_severity: str,
    expected: dict[str, tuple[str | None, str, str | None]],
    eastern: Calendar,
) -> None:
    """Each severity carries the provider's name, its clocks, targets and calendars."""
    policy = find_policy(load_catalog().policies, policy_id)
    opened = parse_time(OPENED)
    states = clocks_for(policy, severity, eastern, opened_at=opened, events=[], now=opened)
    terms = resolve_clocks(policy, severity, calendar="us-eastern")
    assert terms.provider_severity == provider_severity
    got = {
        name: (
            state.to_json()["target"],
            state.calendar,
            None if state.deadline is None else format_time(state.deadline),
        )
        for name, state in states.items()
    }
    assert got == expected
    assert list(got) == list(expected)


@pytest.mark.parametrize(
    ("update_every", "expected"),
    [pytest.param(None, None, id="not-agreed"), pytest.param(3600.0, 3600.0, id="agreed-1h")],
)
def test_agreed_update_period(update_every: float | None, expected: float | None) -> None:
    """Bird's update clock takes the service's agreed period, or is tracked without one."""
    policy = load_catalog().policies["bird-email-enterprise"]
    terms = resolve_clocks(policy, 1, calendar=None, update_every=update_every)
    assert terms.clocks["update"].target == expected
    assert terms.clocks["update"].recurring
    assert not terms.clocks["first_response"].recurring
    assert terms.escalation == "Severity 1 line, 24x7x365"


@pytest.mark.parametrize(
    ("policy_id", "severity", "calendar", "error", "message"),
    [
        pytest.param(
            "megaport",
            3,
            None,
            CalendarRequired,
            r"^severity 3 has business-hours clocks: choose a calendar$",
            id="megaport-needs-a-calendar",
        ),
        pytest.param(
            "bird-email-premium",
            1,
            None,
            CalendarRequired,
            r"choose a calendar \(one of: us-eastern, us-pacific, uk\)$",
            id="bird-lists-its-calendars",
        ),
        pytest.param(
            "bird-email-enterprise",
            2,
            "berlin",
            PolicyError,
            "Bird's business hours are one of us-eastern, us-pacific, uk, not 'berlin'",
            id="bird-refuses-other-calendars",
        ),
    ],
)
def test_resolve_errors(
    policy_id: str, severity: int, calendar: str | None, error: type[Exception], message: str
) -> None:
    """Business-hours clocks need a calendar, one of the provider's where it names them."""
    policy = load_catalog().policies[policy_id]
    with pytest.raises(error, match=message):
        resolve_clocks(policy, severity, calendar=calendar)


def test_severity_without_business_clocks_needs_no_calendar() -> None:
    """Megaport severity 1 runs on 24x7 only, so no calendar is needed."""
    terms = resolve_clocks(load_catalog().policies["megaport"], 1, calendar=None)
    assert list(terms.clocks) == ["first_response", "update", "restore"]


def test_unknown_severity() -> None:
    """A policy that lacks a severity says which it has."""
    policy = PolicySpec.model_validate(
        {"provider": "P", "product": "X", "plan": "Y", "severities": {1: {"name": "Only"}}}
    )
    with pytest.raises(PolicyError, match=r"P X Y has no severity 2 \(known: 1\)"):
        resolve_clocks(policy, 2, calendar=None)


def test_unknown_policy() -> None:
    """An unknown policy id lists the known ones."""
    with pytest.raises(PolicyError, match=r"unknown policy 'nope' \(known: bird-email-enterprise"):
        find_policy(load_catalog().policies, "nope")
