"""Pooling by source: probes and ingested traffic judged together, or one only, with counts by source."""

from __future__ import annotations

import pytest

from classifier.engine import Classifier
from classifier.replay import replay
from classifier.verdict import COMBINED, OUTCOME_INDEX, OUTCOMES, SecondVerdict, Verdict, by_source
from config import load_catalog, load_config_text
from probe.attempt import Attempt, Channel, Outcome, Source

T = 1_795_000_000


def classifier(sources: str) -> Classifier:
    text = f"services: [{{name: s, sources: {sources}}}]"
    config = load_config_text(text, "c.yaml", {}).config
    return Classifier(config.services, load_catalog(), horizon=1)


def attempt(prober: str, outcome: Outcome, second: int = T) -> Attempt:
    source = Source.TRAFFIC if prober.startswith("traffic:") else Source.PROBE
    return Attempt("s", Channel.API, "t", prober, second + 0.5, 0.1, outcome, source=source)


def vector(**by_outcome: int) -> tuple[int, ...]:
    out = [0] * len(OUTCOMES)
    for name, n in by_outcome.items():
        out[OUTCOME_INDEX[Outcome(name)]] = n
    return tuple(out)


def judged(sources: str, attempts: list[Attempt]) -> dict[str, SecondVerdict]:
    engine = classifier(sources)
    for item in attempts:
        engine.add(item)
    found = engine.advance(T + 3)
    return {v.channel: v for v in found.verdicts if v.second == T}


PROBES_OK_TRAFFIC_FAILS = [
    attempt("eu-1", Outcome.OK),
    attempt("traffic:app", Outcome.SERVER_ERROR),
    attempt("traffic:app", Outcome.TIMEOUT),
]


@pytest.mark.parametrize(
    ("sources", "verdict", "counts", "traffic"),
    [
        pytest.param(
            "[probes, traffic]",
            Verdict.PARTIAL,
            vector(ok=1, server_error=1, timeout=1),
            vector(server_error=1, timeout=1),
            id="both",
        ),
        pytest.param("[probes]", Verdict.AVAILABLE, vector(ok=1), (), id="probes-only"),
        pytest.param(
            "[traffic]",
            Verdict.UNAVAILABLE,
            vector(server_error=1, timeout=1),
            vector(server_error=1, timeout=1),
            id="traffic-only",
        ),
    ],
)
def test_sources_choose_the_pool(
    sources: str, verdict: Verdict, counts: tuple[int, ...], traffic: tuple[int, ...]
) -> None:
    """Probes fine, traffic failing: partial when both are judged, each alone tells its own."""
    found = judged(sources, PROBES_OK_TRAFFIC_FAILS)
    for channel in ("api", COMBINED):
        assert (found[channel].verdict, found[channel].counts, found[channel].traffic) == (
            verdict,
            counts,
            traffic,
        )


def test_probes_only_second_has_no_traffic_counts() -> None:
    """A second with probe attempts alone carries no traffic counts."""
    found = judged("[probes, traffic]", [attempt("eu-1", Outcome.TIMEOUT)])
    assert found["api"].traffic == ()
    assert found[COMBINED].traffic == ()
    assert found["api"].verdict is Verdict.UNAVAILABLE


def test_a_second_of_the_other_source_only_is_no_data() -> None:
    """When only an unjudged source sent attempts, the second is no data."""
    found = judged("[probes]", [attempt("traffic:app", Outcome.TIMEOUT)])
    assert found["api"].verdict is Verdict.NO_DATA


def test_by_source_splits_counts() -> None:
    """by_source gives the probe part and the traffic part of a second's counts."""
    assert by_source(vector(ok=1, timeout=2), vector(timeout=2)) == {
        "probe": {"ok": 1},
        "traffic": {"timeout": 2},
    }
    assert by_source(vector(ok=1), ()) == {"probe": {"ok": 1}, "traffic": {}}


def test_replay_judges_by_the_sources_too() -> None:
    """Replay's fast path pools by the same sources as the live classifier."""
    lines = [
        (
            f'{{"service": "s", "channel": "api", "target": "t", "prober": "{prober}", '
            f'"started_at": "2026-11-21T10:00:{second:02d}.250Z", "outcome": "{outcome}"}}\n'
        ).encode()
        for second in range(10)
        for prober, outcome in (("eu-1", "ok"), ("traffic:app", "timeout"))
    ]
    config = load_config_text("services: [{name: s, sources: [traffic]}]", "c.yaml", {}).config
    result = replay(lines, config, load_catalog(), horizon=1)
    assert result.services["s"]["api"]["unavailable"] == 10
    both = load_config_text("services: [{name: s}]", "c.yaml", {}).config
    assert replay(lines, both, load_catalog(), horizon=1).services["s"]["api"]["partial"] == 10
