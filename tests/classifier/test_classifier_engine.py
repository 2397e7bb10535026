"""The verdict rule, the live classifier API (add / advance), and snapshots."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from classifier.engine import Classifier, UnknownServiceError, default_horizon
from classifier.machine import ServiceMachine, Thresholds
from classifier.signals import IncidentSignal
from classifier.verdict import OUTCOME_INDEX, OUTCOMES, Verdict, combine, judge
from config import load_catalog
from config.model import ClassifierConfig
from probe.attempt import Attempt, Channel, Outcome
from probe.clock import ManualClock
from tests.classifier.classifier_timelines import attempts, config
from tests.support.timeline import SECONDS, T0, events, expand

COUNTING = tuple(OUTCOME_INDEX[o] for o in (Outcome.TIMEOUT, Outcome.SERVER_ERROR))


def counts(**by_outcome: int) -> list[int]:
    """A counts vector in OUTCOMES order."""
    out = [0] * len(OUTCOMES)
    for name, n in by_outcome.items():
        out[OUTCOME_INDEX[Outcome(name)]] = n
    return out


@pytest.mark.parametrize(
    ("vector", "set_aside", "verdict"),
    [
        pytest.param(counts(), 0, Verdict.NO_DATA, id="nothing"),
        pytest.param(counts(probe_error=3), 0, Verdict.NO_DATA, id="probe-errors-dropped"),
        pytest.param(counts(), 2, Verdict.INCONCLUSIVE, id="all-set-aside"),
        pytest.param(counts(ok=1), 2, Verdict.AVAILABLE, id="some-set-aside"),
        pytest.param(counts(timeout=2), 0, Verdict.UNAVAILABLE, id="all-timeouts"),
        pytest.param(
            counts(timeout=1, server_error=1), 0, Verdict.UNAVAILABLE, id="mixed-counting"
        ),
        pytest.param(
            counts(timeout=1, probe_error=1), 0, Verdict.UNAVAILABLE, id="probe-error-ignored"
        ),
        pytest.param(counts(timeout=1, ok=1), 0, Verdict.PARTIAL, id="one-of-two"),
        pytest.param(
            counts(timeout=1, client_error=1), 0, Verdict.PARTIAL, id="4xx-succeeded-to-answer"
        ),
        pytest.param(counts(client_error=2, rate_limited=1), 0, Verdict.AVAILABLE, id="4xx-429"),
        pytest.param(counts(connection_error=1), 0, Verdict.AVAILABLE, id="not-counting-here"),
    ],
)
def test_judge(vector: list[int], set_aside: int, verdict: Verdict) -> None:
    """The per-second rule of DESIGN.md §4, with counting outcomes timeout and server_error."""
    assert judge(vector, COUNTING, set_aside) is verdict


@pytest.mark.parametrize(
    ("channels", "verdict"),
    [
        pytest.param([], Verdict.NO_DATA, id="no-channels"),
        pytest.param([Verdict.AVAILABLE, Verdict.UNAVAILABLE], Verdict.UNAVAILABLE, id="or"),
        pytest.param([Verdict.PARTIAL, Verdict.AVAILABLE], Verdict.PARTIAL, id="partial"),
        pytest.param([Verdict.NO_DATA, Verdict.AVAILABLE], Verdict.AVAILABLE, id="available"),
        pytest.param(
            [Verdict.NO_DATA, Verdict.INCONCLUSIVE], Verdict.INCONCLUSIVE, id="inconclusive"
        ),
    ],
)
def test_combine(channels: list[Verdict], verdict: Verdict) -> None:
    """The service verdict is the first of unavailable, partial, available, inconclusive, no_data."""
    assert combine(channels) is verdict


def test_degraded_threshold_is_exact() -> None:
    """ceil(ratio x observed) is computed exactly: 0.07 x 100 needs 7 bad seconds, not 8."""
    thresholds = Thresholds.from_config(
        ClassifierConfig(degraded_ratio=0.07, degraded_min_seconds=1, degraded_window=100)
    )
    assert thresholds.degraded_ratio == Fraction(7, 100)
    assert thresholds.degraded_table()[100] == 7


def test_counts_as_unavailable_is_per_service() -> None:
    """A strict service (timeout and server_error only) does not count connection errors."""
    cfg = config("services:\n  - name: svc\n    counts_as_unavailable: [timeout, server_error]\n")
    classifier = Classifier(cfg.services, load_catalog(), horizon=0)
    for outcome, offset in ((Outcome.CONNECTION_ERROR, 0), (Outcome.SERVER_ERROR, 1)):
        classifier.add(Attempt("svc", Channel.API, "t", "p", T0 + offset, 0.1, outcome))
    verdicts = classifier.finish().verdicts
    assert [(v.channel, v.verdict) for v in verdicts] == [
        ("api", Verdict.AVAILABLE),
        ("combined", Verdict.AVAILABLE),
        ("api", Verdict.UNAVAILABLE),
        ("combined", Verdict.UNAVAILABLE),
    ]


def test_live_advance_with_manual_clock() -> None:
    """Live: a second is final `horizon` seconds after its end; verdicts come out in order with counts."""
    clock = ManualClock(start=T0)
    cfg = config("services:\n  - name: svc\n    api: [{name: t, url: 'http://127.0.0.1:1/'}]\n")
    classifier = Classifier.from_config(cfg, load_catalog(), horizon=3, start=T0)
    assert classifier.channels("svc") == ["api"]
    for second, outcome in enumerate([Outcome.OK, Outcome.TIMEOUT, Outcome.OK]):
        classifier.add(Attempt("svc", Channel.API, "t", "p", T0 + second + 0.5, 0.2, outcome))
    # An attempt of the first second that finishes late but within the horizon still counts.
    classifier.add(Attempt("svc", Channel.API, "t", "q", T0 + 0.9, 2.5, Outcome.TIMEOUT))
    clock.advance(3.9)
    assert classifier.advance(clock.time()).verdicts == []
    clock.advance(0.1)
    first = classifier.advance(clock.time()).verdicts
    assert [(v.second - T0, v.channel, v.verdict) for v in first] == [
        (0, "api", Verdict.PARTIAL),
        (0, "combined", Verdict.PARTIAL),
    ]
    assert first[0].by_outcome() == {"ok": 1, "timeout": 1}
    clock.advance(3)
    rest = classifier.advance(clock.time()).verdicts
    assert [(v.second - T0, v.channel, str(v.verdict)) for v in rest] == [
        (1, "api", "unavailable"),
        (1, "combined", "unavailable"),
        (2, "api", "available"),
        (2, "combined", "available"),
        (3, "api", "no_data"),
        (3, "combined", "no_data"),
    ]


def test_late_attempts_are_counted_not_judged() -> None:
    """An attempt for a second already final is counted in `late`, and changes no verdict."""
    classifier = Classifier(config().services, load_catalog(), horizon=1)
    classifier.add(Attempt("svc", Channel.API, "t", "p", T0, 0.1, Outcome.OK))
    classifier.advance(T0 + 5)
    assert (
        classifier.add(Attempt("svc", Channel.API, "t", "p", T0 + 0.5, 9.0, Outcome.TIMEOUT))
        is False
    )
    classifier.add(Attempt("_control", Channel.CONTROL, "gw", "p", T0, 9.0, Outcome.OK))
    assert dict(classifier.late) == {"svc": 1, "_control": 1}
    assert classifier.totals("svc")["api"]["available"] == 1
    assert classifier.totals("svc")["api"]["unavailable"] == 0


def test_out_of_order_within_horizon_is_judged() -> None:
    """Attempts arriving out of order, but before their second is final, are judged normally."""
    classifier = Classifier(config().services, load_catalog(), horizon=2)
    classifier.add(Attempt("svc", Channel.API, "t", "p", T0 + 2, 0.1, Outcome.OK))
    classifier.add(Attempt("svc", Channel.API, "t", "p", T0, 0.1, Outcome.TIMEOUT))
    classifier.add(Attempt("svc", Channel.API, "t", "p", T0 + 1, 0.1, Outcome.OK))
    classifier.finish()
    assert classifier.totals("svc")["api"] == {
        "available": 2,
        "unavailable": 1,
        "partial": 0,
        "inconclusive": 0,
        "no_data": 0,
    }
    assert classifier.late == {}


def test_unknown_service_is_refused() -> None:
    """An attempt for a service that is not configured raises, naming the service."""
    classifier = Classifier(config().services, load_catalog(), horizon=1)
    with pytest.raises(UnknownServiceError, match="unknown service 'nope'"):
        classifier.add(Attempt("nope", Channel.API, "t", "p", T0, 0.1, Outcome.OK))


def test_default_horizon_follows_longest_timeout() -> None:
    """The finality horizon is the longest configured timeout (10 s by default) plus one."""
    assert default_horizon(config()) == 11
    cfg = config("services:\n  - name: svc\n    smtp: [{name: m, host: 127.0.0.1, timeout: 30s}]\n")
    assert default_horizon(cfg) == 31


def _drive(machine: ServiceMachine, timeline: str, start: int, out: list[IncidentSignal]) -> None:
    for offset, char in enumerate(timeline):
        verdict = SECONDS[char].verdict
        machine.step(start + offset, verdict, 1 if verdict is Verdict.UNAVAILABLE else 0, out)


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(35, id="inside-window-before-open"),
        pytest.param(80, id="open-severity-2-streak-running"),
        pytest.param(150, id="open-severity-1-recovering"),
        pytest.param(260, id="restored-reopen-pending"),
    ],
)
def test_machine_snapshot_resumes_identically(cut: int) -> None:
    """A machine restored from a JSON snapshot continues exactly as one never interrupted."""
    timeline = expand("30. 90x 125. 3? 30x 130.")
    thresholds = Thresholds.from_config(ClassifierConfig())
    whole: list[IncidentSignal] = []
    _drive(ServiceMachine("svc", thresholds), timeline, T0, whole)

    first = ServiceMachine("svc", thresholds)
    resumed: list[IncidentSignal] = []
    _drive(first, timeline[:cut], T0, resumed)
    state = json.loads(json.dumps(first.snapshot()))
    second = ServiceMachine("svc", thresholds)
    second.restore(state)
    _drive(second, timeline[cut:], T0 + cut, resumed)
    assert resumed == whole
    assert [e[0] for e in events(whole)] == [
        "opened",
        "upgraded",
        "restored",
        "reopened",
        "restored",
    ]


def test_classifier_snapshot_fills_downtime_with_no_data() -> None:
    """After a restore, the seconds missed while down are judged no_data, keeping machines contiguous."""
    catalog = load_catalog()
    before = Classifier(config().services, catalog, horizon=0)
    for attempt in attempts({"api": "30. 20x"}):
        before.add(attempt)
    before.advance(T0 + 50)
    state = json.loads(json.dumps(before.snapshot()))
    assert state["machines"]["svc"]["incident"]["severity"] == 2
    after = Classifier(config().services, catalog, horizon=0)
    after.restore(state)
    for attempt in attempts({"api": "121."}, start=T0 + 60):
        after.add(attempt)
    signals = after.advance(T0 + 60 + 121).signals
    assert events(signals) == [("restored", 2, 60, 180)]
    assert after.totals("svc")["combined"]["no_data"] == 10


@pytest.mark.parametrize(
    "state",
    [
        pytest.param({"version": 1, "service": "other"}, id="other-service"),
        pytest.param({"version": 1, "service": "svc", "last_second": 5}, id="truncated"),
    ],
)
def test_machine_refuses_foreign_snapshot(state: dict[str, object]) -> None:
    """A snapshot of another service or a damaged one is refused with a ValueError."""
    machine = ServiceMachine("svc", Thresholds.from_config(ClassifierConfig()))
    with pytest.raises(ValueError, match="svc"):
        machine.restore(state)


def test_machine_requires_contiguous_seconds() -> None:
    """The machine refuses a second that does not follow the previous one."""
    machine = ServiceMachine("svc", Thresholds.from_config(ClassifierConfig()))
    machine.step(T0, Verdict.AVAILABLE, 0, [])
    with pytest.raises(ValueError, match="does not follow"):
        machine.step(T0 + 2, Verdict.AVAILABLE, 0, [])


def test_advance_through_finalizes_an_explicit_second() -> None:
    """advance_through(last) judges up to and including `last`, regardless of the horizon."""
    classifier = Classifier(config().services, load_catalog(), horizon=30)
    for attempt in attempts({"api": "3. x"}):
        classifier.add(attempt)
    assert classifier.advance(T0 + 4).verdicts == []
    found = classifier.advance_through(T0 + 2)
    svc = [(v.second - T0, v.channel) for v in found.verdicts if v.service == "svc"]
    assert svc[-2:] == [(2, "api"), (2, "combined")]
    assert classifier.finish().verdicts[0].verdict is Verdict.UNAVAILABLE
