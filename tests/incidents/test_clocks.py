"""Clock states from incident events: met, breached, paused, re-armed, recomputed; the event record."""

from __future__ import annotations

from typing import Any

import pytest

from config import load_catalog
from config.catalog import PolicySpec
from config.timetext import format_time, parse_time
from sla.calendar import Calendar, calendars_from
from sla.clocks import ClockState, clocks_for, clocks_json
from sla.events import EventError, IncidentEvent
from sla.policy import PolicyError

# Wednesday 2026-11-18 20:00Z (15:00 US Eastern).
OPEN = parse_time("2026-11-18T20:00:00Z")
M = 60.0
H = 3600.0


def ev(kind: Any, minutes: float, **extra: Any) -> IncidentEvent:
    """An event ``minutes`` after OPEN."""
    return IncidentEvent(kind, OPEN + minutes * M, **extra)


def at(minutes: float) -> str:
    """OPEN plus ``minutes`` as RFC 3339."""
    return format_time(OPEN + minutes * M)


def summary(state: ClockState) -> tuple[str, str | None, float, float | None, int]:
    """State, deadline, elapsed and remaining minutes, and breaches."""
    return (
        state.state,
        None if state.deadline is None else format_time(state.deadline),
        state.elapsed_s / M,
        None if state.remaining_s is None else state.remaining_s / M,
        state.breaches,
    )


def run(
    policy: str,
    severity: int,
    events: list[IncidentEvent],
    now_minutes: float,
    *,
    calendar: str | None = "us-eastern",
    update_every: float | None = None,
) -> dict[str, tuple[str, str | None, float, float | None, int]]:
    """Clock summaries of a shipped policy as of OPEN + ``now_minutes``."""
    calendars = calendars_from(load_catalog().calendars)
    states = clocks_for(
        load_catalog().policies[policy],
        severity,
        None if calendar is None else calendars[calendar],
        opened_at=OPEN,
        events=events,
        now=OPEN + now_minutes * M,
        update_every=update_every,
    )
    return {name: summary(state) for name, state in states.items()}


MEGAPORT_1_OPEN = {
    "first_response": ("running", at(15), 10.0, 5.0, 0),
    "update": ("running", None, 0.0, 30.0, 0),
    "restore": ("running", at(360), 10.0, 350.0, 0),
}


@pytest.mark.parametrize(
    ("events", "now", "clock", "expected"),
    [
        pytest.param([], 10, "first_response", ("running", at(15), 10.0, 5.0, 0), id="fr-running"),
        pytest.param([], 20, "first_response", ("breached", at(15), 20.0, -5.0, 1), id="fr-late"),
        pytest.param(
            [ev("provider_responded", 10)],
            20,
            "first_response",
            ("met", at(15), 10.0, 5.0, 0),
            id="fr-met",
        ),
        pytest.param(
            [ev("provider_responded", 15)],
            20,
            "first_response",
            ("met", at(15), 15.0, 0.0, 0),
            id="fr-met-exactly-at-deadline",
        ),
        pytest.param(
            [ev("provider_responded", 16)],
            20,
            "first_response",
            ("breached", at(15), 16.0, -1.0, 1),
            id="fr-responded-late",
        ),
        pytest.param(
            [ev("provider_updated", 5)],
            20,
            "first_response",
            ("met", at(15), 5.0, 10.0, 0),
            id="fr-met-by-an-update",
        ),
        pytest.param(
            [], 10, "update", ("running", None, 0.0, 30.0, 0), id="update-before-response"
        ),
        pytest.param(
            [ev("provider_responded", 10)],
            20,
            "update",
            ("running", at(40), 10.0, 20.0, 0),
            id="update-armed-by-first-response",
        ),
        pytest.param(
            [ev("provider_responded", 10), ev("provider_updated", 35), ev("provider_updated", 60)],
            80,
            "update",
            ("running", at(90), 20.0, 10.0, 0),
            id="two-updates-re-arm",
        ),
        pytest.param(
            [ev("provider_responded", 10), ev("provider_updated", 45)],
            50,
            "update",
            ("running", at(75), 5.0, 25.0, 1),
            id="late-update-counts-a-breach-and-re-arms",
        ),
        pytest.param(
            [ev("provider_responded", 10)],
            41,
            "update",
            ("breached", at(40), 31.0, -1.0, 1),
            id="update-overdue",
        ),
        pytest.param(
            [
                ev("provider_responded", 10),
                ev("provider_updated", 20, next_update_at=OPEN + 120 * M),
            ],
            60,
            "update",
            ("running", at(120), 40.0, 60.0, 0),
            id="promised-next-update-replaces-cadence",
        ),
        pytest.param(
            [
                ev("provider_responded", 10, next_update_at=OPEN + 20 * M),
                ev("provider_updated", 25),
            ],
            30,
            "update",
            ("running", at(55), 5.0, 25.0, 1),
            id="missed-promise-is-a-breach",
        ),
        pytest.param(
            [ev("provider_responded", 10), ev("resolved", 30)],
            90,
            "update",
            ("met", at(40), 20.0, 10.0, 0),
            id="resolved-closes-update-cycle",
        ),
        pytest.param(
            [ev("resolved", 5)],
            90,
            "update",
            ("met", None, 0.0, 30.0, 0),
            id="resolved-before-any-response",
        ),
        pytest.param(
            [ev("awaiting_customer", 60), ev("customer_replied", 120)],
            180,
            "restore",
            ("running", at(420), 120.0, 240.0, 0),
            id="closed-pause-extends-restore",
        ),
        pytest.param(
            [ev("awaiting_customer", 60)],
            180,
            "restore",
            ("paused", None, 60.0, 300.0, 0),
            id="open-pause-has-no-deadline",
        ),
        pytest.param(
            [ev("awaiting_customer", 60)],
            180,
            "first_response",
            ("breached", at(15), 180.0, -165.0, 1),
            id="pause-does-not-stop-first-response",
        ),
        pytest.param(
            [ev("awaiting_customer", 420)],
            480,
            "restore",
            ("breached", at(360), 420.0, -60.0, 1),
            id="pause-after-breach-stays-breached",
        ),
        pytest.param(
            [ev("awaiting_customer", 60), ev("restored", 120)],
            180,
            "restore",
            ("met", at(420), 60.0, 300.0, 0),
            id="restored-during-pause",
        ),
        pytest.param(
            [ev("restored", 400)],
            500,
            "restore",
            ("breached", at(360), 400.0, -40.0, 1),
            id="restored-late",
        ),
        pytest.param(
            [
                ev("awaiting_customer", 60),
                ev("awaiting_customer", 70),
                ev("customer_replied", 90),
                ev("customer_replied", 100),
            ],
            120,
            "restore",
            ("running", at(390), 90.0, 270.0, 0),
            id="repeated-pause-events-collapse",
        ),
        pytest.param(
            [ev("ticket_opened", 30)],
            40,
            "first_response",
            ("running", at(45), 10.0, 5.0, 0),
            id="ticket-opened-replaces-detected-at",
        ),
        pytest.param(
            [ev("provider_responded", 30), ev("restored", 31)],
            10,
            "first_response",
            ("running", at(15), 10.0, 5.0, 0),
            id="future-events-ignored",
        ),
        pytest.param(
            [ev("resolved", 5)],
            90,
            "restore",
            ("met", at(360), 5.0, 355.0, 0),
            id="resolved-closes-restore",
        ),
    ],
)
def test_megaport_severity_1(
    events: list[IncidentEvent],
    now: float,
    clock: str,
    expected: tuple[str, str | None, float, float | None, int],
) -> None:
    """Megaport severity 1 (15 min, 30 min, 6 h, 24x7): each clock follows the events."""
    assert run("megaport", 1, events, now)[clock] == expected


def test_megaport_clocks_at_open() -> None:
    """Ten minutes in, with no events, every clock runs; the update clock has no deadline yet."""
    assert run("megaport", 1, [], 10) == MEGAPORT_1_OPEN


def test_upgrade_recomputes_from_ticket_open() -> None:
    """An upgrade from 2 to 1 replaces the business-hours target by the 24x7 one, from open."""
    saturday = parse_time("2026-11-21T12:00:00Z")
    calendars = calendars_from(load_catalog().calendars)
    policy = load_catalog().policies["sendgrid-email-api/pro"]
    events = [IncidentEvent("severity_changed", saturday + 30 * M, severity=1)]

    def first_response(now: float) -> ClockState:
        return clocks_for(
            policy, 2, calendars["us-eastern"], opened_at=saturday, events=events, now=now
        )["first_response"]

    before = first_response(saturday + 20 * M)
    assert (before.calendar, format_time(before.deadline or 0)) == (
        "us-eastern",
        "2026-11-23T16:00:00Z",
    )
    assert before.elapsed_s == 0.0
    after = first_response(saturday + 40 * M)
    assert (after.calendar, format_time(after.deadline or 0), after.state) == (
        "24x7",
        "2026-11-21T13:00:00Z",
        "running",
    )
    assert after.elapsed_s == 40 * M


def test_restore_pause_on_business_hours() -> None:
    """Megaport severity 3 restore runs on business hours and skips a pause spanning a night."""
    events = [ev("awaiting_customer", 60), ev("customer_replied", 60 * 19)]
    # Wed 15:00-16:00 counts (1 h), paused until Thu 10:00 local, then 3 h more by 13:00;
    # the 2 h paused push the deadline from Fri 27th 15:00 to exactly its closing time.
    assert run("megaport", 3, events, 60 * 22)["restore"] == (
        "running",
        "2026-11-27T22:00:00Z",
        4 * 60.0,
        44 * 60.0,
        0,
    )


@pytest.mark.parametrize(
    ("events", "now", "expected"),
    [
        # 21 business days of 8 h in 30 days (Thanksgiving and 8 weekend days excluded).
        pytest.param(
            [], 60 * 24 * 30, ("running", None, 168 * 60.0, None, 0), id="tracked-never-breaches"
        ),
        # Wed 15:00-17:00 and Thu 09:00-15:00 local.
        pytest.param(
            [ev("provider_responded", 60 * 24)],
            60 * 48,
            ("met", None, 8 * 60.0, None, 0),
            id="tracked-met-on-response",
        ),
    ],
)
def test_tracked_clock(
    events: list[IncidentEvent], now: float, expected: tuple[str, None, float, None, int]
) -> None:
    """Bird Premium tickets are tracked without a numeric target: running until met."""
    assert run("bird-email-premium", 1, events, now)["first_response"] == expected


@pytest.mark.parametrize(
    ("update_every", "events", "now", "expected"),
    [
        pytest.param(
            H,
            [ev("provider_responded", 5)],
            30,
            ("running", at(65), 25.0, 35.0, 0),
            id="agreed-period",
        ),
        pytest.param(
            None,
            [ev("provider_responded", 5)],
            600,
            ("running", None, 595.0, None, 0),
            id="no-agreed-period-tracked",
        ),
        pytest.param(
            None,
            [ev("provider_responded", 5, next_update_at=OPEN + 60 * M)],
            90,
            ("breached", at(60), 85.0, -30.0, 1),
            id="written-promise-is-a-deadline",
        ),
        pytest.param(
            None,
            [ev("provider_responded", 5), ev("provider_updated", 30)],
            40,
            ("running", None, 10.0, None, 0),
            id="tracked-cycles-never-breach",
        ),
    ],
)
def test_bird_enterprise_update(
    update_every: float | None,
    events: list[IncidentEvent],
    now: float,
    expected: tuple[str, str | None, float, float | None, int],
) -> None:
    """Bird's update clock runs on the agreed period, or a written promise, or is tracked."""
    assert (
        run("bird-email-enterprise", 1, events, now, calendar=None, update_every=update_every)[
            "update"
        ]
        == expected
    )


def test_missing_calendar_is_a_policy_error() -> None:
    """A clock naming a calendar the caller did not supply cannot be evaluated."""
    policy = PolicySpec.model_validate(
        {
            "provider": "P",
            "product": "X",
            "plan": "Y",
            "severities": {
                1: {"name": "S1", "clocks": {"restore": {"target": "1h", "calendar": "moon"}}}
            },
        }
    )
    with pytest.raises(PolicyError, match="clock restore needs calendar 'moon'"):
        clocks_for(policy, 1, None, opened_at=OPEN, events=[], now=OPEN)
    moon = Calendar("moon", "UTC", {0: [(0, 60)]})
    states = clocks_for(
        policy, 1, None, opened_at=OPEN, events=[], now=OPEN, calendars={"moon": moon}
    )
    assert format_time(states["restore"].deadline or 0) == "2026-11-23T01:00:00Z"


def test_clock_json() -> None:
    """The JSON form names deadline, state, target, calendar and business seconds."""
    calendars = calendars_from(load_catalog().calendars)
    states = clocks_for(
        load_catalog().policies["bird-email-enterprise"],
        1,
        calendars["uk"],
        opened_at=OPEN + 0.5,
        events=[],
        now=OPEN + 60.5,
    )
    assert clocks_json(states) == {
        "first_response": {
            "deadline": "2026-11-18T20:15:00.500Z",
            "state": "running",
            "target": "15m",
            "calendar": "24x7",
            "elapsed_s": 60.0,
            "remaining_s": 840.0,
            "breaches": 0,
        },
        "update": {
            "deadline": None,
            "state": "running",
            "target": None,
            "calendar": "24x7",
            "elapsed_s": 0.0,
            "remaining_s": None,
            "breaches": 0,
        },
    }


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(IncidentEvent("ticket_opened", OPEN), id="plain"),
        pytest.param(IncidentEvent("severity_changed", OPEN, severity=1), id="severity"),
        pytest.param(
            IncidentEvent("provider_updated", OPEN, next_update_at=OPEN + H), id="promise"
        ),
        pytest.param(IncidentEvent("restored", OPEN + 0.25), id="fraction"),
    ],
)
def test_event_json_round_trip(event: IncidentEvent) -> None:
    """An event survives its JSON form unchanged."""
    assert IncidentEvent.from_json(event.to_json()) == event


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(lambda: IncidentEvent("nap", OPEN), "unknown event kind 'nap'", id="kind"),  # type: ignore[arg-type]
        pytest.param(lambda: IncidentEvent("restored", float("nan")), "finite", id="nan"),
        pytest.param(
            lambda: IncidentEvent("severity_changed", OPEN), "severity is given", id="no-sev"
        ),
        pytest.param(
            lambda: IncidentEvent("restored", OPEN, severity=1), "severity is given", id="sev"
        ),
        pytest.param(
            lambda: IncidentEvent("severity_changed", OPEN, severity=4), "1, 2 or 3", id="sev-range"
        ),
        pytest.param(
            lambda: IncidentEvent("restored", OPEN, next_update_at=OPEN),
            "next_update_at",
            id="promise",
        ),
        pytest.param(
            lambda: IncidentEvent("provider_updated", OPEN, next_update_at=float("inf")),
            "next_update_at",
            id="promise-inf",
        ),
        pytest.param(
            lambda: IncidentEvent.from_json({"kind": "x", "at": "2026-01-01T00:00:00Z"}),
            "unknown event kind 'x'",
            id="json-kind",
        ),
        pytest.param(
            lambda: IncidentEvent.from_json({"kind": "restored", "at": "2026", "x": 1}),
            "unknown event keys: x",
            id="json-extra",
        ),
        pytest.param(
            lambda: IncidentEvent.from_json({"kind": "restored", "at": 5}),
            "expected an RFC 3339 time",
            id="json-time-type",
        ),
        pytest.param(
            lambda: IncidentEvent.from_json({"kind": "restored", "at": "soon"}),
            "invalid RFC 3339 time",
            id="json-time-text",
        ),
        pytest.param(
            lambda: IncidentEvent.from_json({"kind": "restored", "at": "2026-01-01T00:00:00"}),
            "has no UTC offset",
            id="json-naive",
        ),
        pytest.param(
            lambda: IncidentEvent.from_json(
                {"kind": "severity_changed", "at": "2026-01-01T00:00:00Z", "severity": True}
            ),
            "1, 2 or 3",
            id="json-bool-severity",
        ),
    ],
)
def test_bad_events(build: Any, message: str) -> None:
    """A malformed event is an EventError that says what is wrong."""
    with pytest.raises(EventError, match=message):
        build()
