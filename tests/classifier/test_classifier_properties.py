"""Properties of replay over random timelines: determinism, order tolerance, complete counts."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.replay import result_json
from config import Config
from probe.attempt import Attempt
from tests.classifier.classifier_timelines import HORIZON, attempts, config, run
from tests.support.timeline import CHARS

# Small thresholds so that short random timelines open, upgrade, restore and reopen.
SMALL = config(
    """
services:
  - name: svc
    classifier: {critical_after: 8s, recover_after: 6s, degraded_window: 40s,
                 degraded_ratio: 0.1, degraded_min_seconds: 3, max_gap: 2s, reopen_within: 30s}
"""
)
# The characters without a counting failure: ok, 4xx, 429, probe errors, gaps.
HARMLESS = ".?cre"


def timelines(alphabet: str) -> st.SearchStrategy[dict[str, str]]:
    """One or two channels (and a second prober), each a random run-length timeline."""
    runs = st.lists(
        st.tuples(st.integers(1, 25), st.sampled_from(alphabet)), min_size=1, max_size=12
    )
    line = runs.map(lambda rs: " ".join(f"{n}{c}" for n, c in rs))
    return st.fixed_dictionaries({"api": line}, optional={"smtp": line, "api@p2": line})


def report(items: list[Attempt], cfg: Config = SMALL) -> dict[str, Any]:
    """The replay JSON of ``items``."""
    result, _ = run(items, cfg)
    return result_json(result)


@settings(max_examples=40, deadline=None)
@given(streams=timelines(CHARS))
def test_replay_is_deterministic(streams: dict[str, str]) -> None:
    """Replaying the same attempts twice gives the same report."""
    items = attempts(streams)
    assert report(items) == report(items)


@settings(max_examples=40, deadline=None)
@given(streams=timelines(CHARS), seed=st.integers(0, 2**32))
def test_shuffling_within_horizon_changes_nothing(streams: dict[str, str], seed: int) -> None:
    """Attempts reordered by less than the finality horizon give the same report, none late."""
    items = attempts(streams)
    rng = random.Random(seed)  # noqa: S311  (a reproducible shuffle, not a secret)
    shuffled = sorted(items, key=lambda a: a.started_at + rng.uniform(0, HORIZON))
    expected = report(items)
    got = report(shuffled)
    assert got == expected
    assert got["late_attempts"] == {}


@settings(max_examples=40, deadline=None)
@given(streams=timelines(CHARS))
def test_counts_cover_the_span(streams: dict[str, str]) -> None:
    """Every channel's and the combined verdict counts sum to the seconds of the span."""
    out = report(attempts(streams))
    seconds = out["span"]["seconds"] if out["span"] else 0
    service = out["services"]["svc"]
    for counts in [*service["channels"].values(), service["combined"]]:
        assert sum(counts.values()) == seconds


@settings(max_examples=40, deadline=None)
@given(streams=timelines(HARMLESS))
def test_no_counting_failure_no_incident(streams: dict[str, str]) -> None:
    """Without a single counting failure (only ok, 4xx, 429, probe errors, gaps) nothing opens."""
    out = report(attempts(streams))
    assert out["incidents"] == []
    assert out["services"]["svc"]["combined"]["unavailable"] == 0
