"""Incident lifecycle: user-event checks, clock events, SLA clocks from frozen terms, the Recorder."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.signals import Opened, Reopened, Restored, Upgraded
from classifier.verdict import SecondVerdict, Verdict
from config import LoadedConfig, load_config
from config.timetext import format_time, parse_time
from incidents.lifecycle import (
    LifecycleError,
    clock_events,
    fold,
    incident_clocks,
    signal_event,
    user_event,
)
from incidents.memory_store import MemoryStore
from incidents.model import EventRecord, Incident
from incidents.recorder import Recorder
from probe.attempt import Attempt, Channel, Outcome
from sla.terms import freeze_terms
from tests.incidents.incidents_timeline import CONFIG, ENV, T0, write_config


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    """The timeline config: Bird Enterprise on US Eastern business hours, updates hourly."""
    return load_config(write_config(tmp_path, CONFIG), ENV)


def _opened(loaded: LoadedConfig, severity: int = 1) -> EventRecord:
    terms = freeze_terms(loaded.config.service("bird"), loaded.catalog, loaded.calendars(), at=T0)
    signal = Opened("bird", "bird-1", severity, terms.name_of(severity), T0, T0 + 60, ("api",))
    return signal_event(signal, terms, source="classifier")


def _user(kind: str, at: int, **extra: object) -> EventRecord:
    return user_event("bird-1", kind, at=at, source="cli", recorded_at=at, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        pytest.param("opened", {}, "recorded by the classifier", id="signal-kind"),
        pytest.param("escalated", {}, "unknown event kind", id="unknown-kind"),
        pytest.param("ticket_opened", {}, "needs the ticket", id="ticket-without-reference"),
        pytest.param(
            "resolved", {"ticket": "T-1"}, "belongs to ticket_opened", id="ticket-elsewhere"
        ),
        pytest.param("severity_changed", {}, "severity is given", id="severity-missing"),
        pytest.param("resolved", {"severity": 2}, "severity is given", id="severity-elsewhere"),
        pytest.param("resolved", {"next_update_at": T0 + 9}, "next update", id="promise-elsewhere"),
    ],
)
def test_user_events_are_checked_for_shape(
    kind: str, extra: dict[str, object], message: str
) -> None:
    """A malformed user event is refused with a reason, before it reaches a store."""
    with pytest.raises(LifecycleError, match=message):
        _user(kind, T0, **extra)


def test_an_event_from_the_future_is_refused() -> None:
    """``at`` may not be later than the time it is recorded."""
    with pytest.raises(LifecycleError, match="future"):
        user_event("bird-1", "resolved", at=T0 + 5, source="api", recorded_at=T0)


def test_severity_change_to_the_same_level_is_refused(loaded: LoadedConfig) -> None:
    """A severity change must change the severity."""
    with pytest.raises(LifecycleError, match="already severity 1"):
        fold([_opened(loaded), _user("severity_changed", T0 + 100, severity=1)])


def test_a_reopening_cancels_the_restore_for_the_clocks(loaded: LoadedConfig) -> None:
    """Upgrades become severity changes; a reopening removes the restore it cancels."""
    terms = freeze_terms(loaded.config.service("bird"), loaded.catalog, loaded.calendars(), at=T0)
    events = [
        _opened(loaded, 2),
        signal_event(
            Upgraded("bird", "bird-1", 2, 1, "Critical Issue", T0, T0 + 70, ("api",)),
            terms,
            source="replay",
        ),
        signal_event(
            Restored("bird", "bird-1", 1, T0 + 90, T0 + 210, ("api",)), terms, source="replay"
        ),
        signal_event(
            Reopened(
                "bird", "bird-1", 1, 1, "Critical Issue", T0 + 300, T0 + 310, T0 + 90, ("api",)
            ),
            terms,
            source="replay",
        ),
    ]
    assert [(e.kind, e.at, e.severity) for e in clock_events(events)] == [
        ("severity_changed", T0 + 70, 1)
    ]
    incident = fold(events)
    assert incident is not None
    assert (incident.state, incident.restored_at, incident.reopened_at) == (
        "open",
        None,
        (T0 + 310,),
    )


def _clocks(
    incident: Incident, events: list[EventRecord], now: float
) -> dict[str, tuple[str, str | None]]:
    return {
        name: (state.state, None if state.deadline is None else _utc(state.deadline))
        for name, state in incident_clocks(incident, events, now).items()
    }


def _utc(epoch: float) -> str:

    return format_time(epoch)


@pytest.mark.parametrize(
    ("later", "now", "expected"),
    [
        pytest.param(
            [],
            T0 + 120,
            {"first_response": ("running", "2026-11-02T10:16:00Z"), "update": ("running", None)},
            id="critical-call-back-15-min-after-detection",
        ),
        pytest.param(
            [("ticket_opened", T0 + 600, {"ticket": "CS-1"})],
            T0 + 700,
            {"first_response": ("running", "2026-11-02T10:25:00Z"), "update": ("running", None)},
            id="real-ticket-open-time-moves-the-start",
        ),
        pytest.param(
            [
                ("provider_responded", T0 + 300, {}),
                ("provider_updated", T0 + 900, {"next_update_at": T0 + 1800}),
            ],
            T0 + 1000,
            {
                "first_response": ("met", "2026-11-02T10:16:00Z"),
                "update": ("running", "2026-11-02T10:30:00Z"),
            },
            id="promised-update-replaces-the-cadence",
        ),
        pytest.param(
            [("provider_responded", T0 + 300, {})],
            T0 + 4000,
            {
                "first_response": ("met", "2026-11-02T10:16:00Z"),
                "update": ("breached", "2026-11-02T11:05:00Z"),
            },
            id="hourly-update-missed",
        ),
        pytest.param(
            [("severity_changed", T0 + 200, {"severity": 2})],
            T0 + 300,
            {"first_response": ("running", None)},
            id="non-critical-is-tracked-in-business-hours",
        ),
    ],
)
def test_clocks_follow_the_events(
    loaded: LoadedConfig,
    later: list[tuple[str, int, dict[str, object]]],
    now: int,
    expected: dict[str, object],
) -> None:
    """Deadlines and states come from the frozen terms and the incident's events."""
    events = [_opened(loaded)] + [_user(kind, at, **extra) for kind, at, extra in later]
    incident = fold(events)
    assert incident is not None
    assert _clocks(incident, events, now) == expected


def test_terms_are_frozen_with_calendar_snapshots(loaded: LoadedConfig) -> None:
    """An incident keeps the policy spec and a holiday snapshot of its business calendar."""
    terms = freeze_terms(loaded.config.service("bird"), loaded.catalog, loaded.calendars(), at=T0)
    assert terms.policy_id == "bird-email-enterprise"
    assert terms.policy is not None
    assert terms.policy["provider"] == "Bird"
    assert list(terms.calendars) == ["us-eastern"]
    assert "2026-11-26" in terms.calendars["us-eastern"]["holidays"]["dates"]  # Thanksgiving
    assert terms.name_of(1) == "Critical Issue"


def test_no_policy_means_no_clocks(tmp_path: Path) -> None:
    """A service without sla.policy gets incidents without clocks."""
    text = "services:\n  - name: bird\n"
    plain = load_config(write_config(tmp_path, text), {})
    terms = freeze_terms(plain.config.service("bird"), plain.catalog, plain.calendars(), at=T0)
    event = signal_event(
        Opened("bird", "b", 1, "Severity 1", T0, T0 + 60, ()), terms, source="replay"
    )
    incident = fold([event])
    assert incident is not None
    assert incident_clocks(incident, [event], T0 + 100) == {}


def _verdict(
    second: int, verdict: Verdict, counts: tuple[int, ...], channel: str = "api"
) -> SecondVerdict:
    return SecondVerdict("bird", channel, second, verdict, counts)


OK1 = (1, 0, 0, 0, 0, 0, 0, 0, 0)
TO1 = (0, 1, 0, 0, 0, 0, 0, 0, 0)


def _try(second: int, outcome: Outcome, duration: float) -> Attempt:
    return Attempt("bird", Channel.API, "send", "eu-1", second + duration / 100, duration, outcome)


def test_recorder_merges_runs_and_keeps_telling_samples(loaded: LoadedConfig) -> None:
    """Runs grow while verdict and counts repeat; a bad second keeps its failures and slowest."""
    recorder = Recorder.from_config(loaded, samples_per_second=2)
    for duration in (0.1, 0.2, 0.3):
        recorder.attempt(_try(T0 + 2, Outcome.OK, duration))
    recorder.attempt(_try(T0 + 2, Outcome.TIMEOUT, 10.0))
    recorder.attempt(_try(T0, Outcome.OK, 0.1))
    recorder.record(
        [
            _verdict(T0, Verdict.AVAILABLE, OK1),
            _verdict(T0 + 1, Verdict.AVAILABLE, OK1),
            _verdict(T0 + 2, Verdict.PARTIAL, (3, 1, 0, 0, 0, 0, 0, 0, 0)),
        ],
        [],
    )
    batch = recorder.take({"next_second": T0 + 3})
    assert [(r.verdict, r.first, r.last) for r in batch.runs] == [
        ("available", T0, T0 + 1),
        ("partial", T0 + 2, T0 + 2),
    ]
    assert sorted((a.outcome, a.duration_s) for a in batch.samples) == [
        (Outcome.OK, 0.3),
        (Outcome.TIMEOUT, 10.0),
    ]
    assert batch.high_water == {("bird", "api"): T0 + 2}
    assert batch.classifier_state == {"next_second": T0 + 3}
    assert not recorder.take()


def test_recorder_resumes_the_growing_run_and_skips_stored_seconds(loaded: LoadedConfig) -> None:
    """After a restart the last run is extended, and seconds already stored are ignored."""
    store = MemoryStore()
    first = Recorder.from_config(loaded)
    first.record([_verdict(T0 + i, Verdict.UNAVAILABLE, TO1) for i in range(5)], [])
    store.commit(first.take())
    second = Recorder.from_config(loaded)
    second.resume(store)
    second.record([_verdict(T0 + i, Verdict.UNAVAILABLE, TO1) for i in range(3, 8)], [])
    store.commit(second.take())
    assert [(r.first, r.last) for r in store.runs("bird", "api", 0, 2 * T0)] == [(T0, T0 + 7)]
    assert store.high_water() == {("bird", "api"): T0 + 7}


def test_recorder_stamps_signals_with_source_and_time(loaded: LoadedConfig) -> None:
    """Signal events carry who recorded them and when; ``opened`` carries the frozen terms."""
    recorder = Recorder.from_config(loaded, source="classifier")
    recorder.signal(
        Opened("bird", "bird-1", 2, "Non-Critical Issue", T0, T0 + 11, ("api",)), now=T0 + 12.5
    )
    (event,) = recorder.take().events
    assert (event.kind, event.source, event.recorded_at, event.key) == (
        "opened",
        "classifier",
        T0 + 12.5,
        f"opened@{T0 + 11}",
    )
    assert event.data["terms"]["policy_id"] == "bird-email-enterprise"
    assert parse_time(event.to_json()["at"]) == T0 + 11
    assert EventRecord.from_json(event.to_json()) == event


def test_a_reconfigured_recorder_keeps_the_unsaved_state(loaded: LoadedConfig) -> None:
    """On a config reload the recorder continues its runs and pending writes."""
    recorder = Recorder.from_config(loaded)
    recorder.attempt(_try(T0 + 1, Outcome.TIMEOUT, 10.0))
    recorder.record([_verdict(T0, Verdict.UNAVAILABLE, TO1)], [])
    recorder.reconfigure(loaded)
    recorder.record([_verdict(T0 + 1, Verdict.UNAVAILABLE, TO1)], [])
    batch = recorder.take()
    assert [(r.first, r.last) for r in batch.runs] == [(T0, T0 + 1)]
    assert [a.second for a in batch.samples] == [T0 + 1]
    assert not recorder.take()
