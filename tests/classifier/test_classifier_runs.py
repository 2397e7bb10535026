"""Replay's bulk paths equal the plain ones: step_many, held runs of seconds, the line caches."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier import replay as replay_module
from classifier.engine import Classifier, Finalized
from classifier.machine import ServiceMachine, Thresholds
from classifier.replay import LineReader, ReplayError
from classifier.signals import IncidentSignal
from classifier.verdict import OUTCOME_INDEX, Verdict
from config import Config, load_catalog
from probe.attempt import Attempt
from tests.classifier.classifier_timelines import HORIZON, attempts, config, run
from tests.classifier.classifier_timelines import lines as timeline_lines
from tests.support.timeline import CHARS, T0

VERDICT_LIST = list(Verdict)

THRESHOLDS = st.builds(
    Thresholds,
    critical_after=st.integers(1, 12),
    recover_after=st.integers(1, 12),
    degraded_window=st.integers(1, 40),
    degraded_min_seconds=st.integers(1, 6),
    degraded_ratio=st.sampled_from([Fraction(1, 20), Fraction(1, 4), Fraction(1, 2), Fraction(1)]),
    max_gap=st.integers(0, 4),
    reopen_within=st.integers(0, 60),
)
# (seconds, verdict, bad-channel mask) runs; long ones so that the shortcuts are taken.
RUNS = st.lists(
    st.tuples(st.integers(1, 150), st.sampled_from(VERDICT_LIST), st.integers(0, 3)),
    min_size=1,
    max_size=25,
)


def _compare_steps(
    thresholds: Thresholds,
    production: bool,
    runs: list[tuple[int, Verdict, int]],
    split: Callable[[int], int],
) -> None:
    single = ServiceMachine("svc", thresholds, production=production)
    bulk = ServiceMachine("svc", thresholds, production=production)
    plain: list[IncidentSignal] = []
    batched: list[IncidentSignal] = []
    second = T0
    for count, verdict, mask in runs:
        for offset in range(count):
            single.step(second + offset, verdict, mask, plain)
        # Any split of a run into step_many calls is equally exact.
        done = 0
        while done < count:
            part = split(count - done)
            bulk.step_many(second + done, part, verdict, mask, batched)
            done += part
        second += count
        assert batched == plain
        assert bulk.snapshot() == single.snapshot()


@settings(max_examples=300, deadline=None)
@given(thresholds=THRESHOLDS, production=st.booleans(), runs=RUNS, data=st.data())
def test_step_many_equals_single_steps(
    thresholds: Thresholds,
    production: bool,
    runs: list[tuple[int, Verdict, int]],
    data: st.DataObject,
) -> None:
    """`step_many` emits the signals and leaves the state of as many single `step`s."""
    _compare_steps(thresholds, production, runs, lambda left: data.draw(st.integers(1, left)))


# Available, unavailable, partial, no data, inconclusive (Q: in question).
A, U, P, N, Q = (
    Verdict.AVAILABLE,
    Verdict.UNAVAILABLE,
    Verdict.PARTIAL,
    Verdict.NO_DATA,
    Verdict.INCONCLUSIVE,
)
# critical 5, recover 4, window 40, ratio 1/4, at least 1 bad second, gap 1, reopen 30.
QUARTER = Thresholds(5, 4, 40, 1, Fraction(1, 4), 1, 30)


@pytest.mark.parametrize(
    "runs",
    [
        pytest.param(
            [(30, A, 0), (1, P, 2), (80, N, 0)],
            id="degraded-as-observed-seconds-leave",
        ),
        pytest.param([(30, A, 0), (1, P, 1), (80, Q, 0)], id="same-inconclusive"),
        pytest.param([(10, U, 1), (2, N, 0), (1, N, 0), (50, A, 0)], id="gap-then-restore"),
        pytest.param(
            [(8, U, 1), (3, A, 0), (2, U, 2), (60, U, 3), (60, P, 1), (90, A, 0)],
            id="upgrade-inside-a-run",
        ),
        pytest.param([(7, U, 1), (3, A, 0), (9, U, 1), (100, A, 0)], id="reopen"),
    ],
)
@pytest.mark.parametrize("production", [True, False])
def test_step_many_scenarios(
    runs: list[tuple[int, Verdict, int]],
    production: bool,
) -> None:
    """Runs that only change state in their middle: one `step_many` each equals single steps."""
    _compare_steps(QUARTER, production, runs, lambda left: left)


# Small thresholds so that short random timelines open, upgrade, restore and reopen.
SMALL = config(
    """
services:
  - name: svc
    classifier: {critical_after: 8s, recover_after: 6s, degraded_window: 40s,
                 degraded_ratio: 0.1, degraded_min_seconds: 3, max_gap: 2s, reopen_within: 30s}
  - name: other
    environment: staging
    classifier: {critical_after: 5s, recover_after: 4s, degraded_window: 20s,
                 degraded_ratio: 0.2, degraded_min_seconds: 2, max_gap: 1s, reopen_within: 20s}
  - name: bare
"""
)


def timelines() -> st.SearchStrategy[dict[str, str]]:
    """One or two channels (and a second prober), each a random run-length timeline."""
    runs = st.lists(st.tuples(st.integers(1, 40), st.sampled_from(CHARS)), min_size=1, max_size=10)
    line = runs.map(lambda rs: " ".join(f"{n}{c}" for n, c in rs))
    return st.fixed_dictionaries({"api": line}, optional={"smtp": line, "api@p2": line})


def second_by_second(items: list[Attempt], cfg: Config) -> tuple[object, ...]:
    """What the plain classifier finds: attempts one by one, each new second advancing it."""
    classifier = Classifier(cfg.services, load_catalog(), horizon=HORIZON)
    signals: list[IncidentSignal] = []
    newest: int | None = None
    for item in items:
        classifier.add(item)
        second = math.floor(item.started_at)
        if newest is None or second > newest:
            newest = second
            signals += classifier.advance(second).signals
    signals += classifier.finish().signals
    totals = {name: classifier.totals(name) for name in classifier.services}
    span = (classifier.buckets.first_second, classifier.buckets.max_second)
    return totals, signals, dict(classifier.late), span


@settings(max_examples=80, deadline=None)
@given(svc=timelines(), other=timelines(), seed=st.integers(0, 2**32), spread=st.integers(0, 6))
def test_replay_equals_the_plain_classifier(
    svc: dict[str, str], other: dict[str, str], seed: int, spread: int
) -> None:
    """Replay (held runs, line caches) finds the totals, signals and late attempts of the plain path.

    Attempts are shuffled by up to ``spread`` seconds, past the horizon too (late attempts).
    """
    rng = random.Random(seed)  # noqa: S311  (a reproducible shuffle, not a secret)
    items = attempts(svc) + attempts(other, service="other", start=T0 + rng.randrange(30))
    items.sort(key=lambda a: a.started_at + rng.uniform(0, spread))
    result, signals = run(items, SMALL)
    expected = second_by_second(items, SMALL)
    got = (result.services, signals, result.late, (result.first_second, result.last_second))
    assert got == expected


def held_classifier(cfg: Config = SMALL) -> Classifier:
    """A classifier that holds runs of seconds back, as replay uses it."""
    return Classifier(
        cfg.services, load_catalog(), horizon=HORIZON, emit_verdicts=False, hold_runs=True
    )


@settings(max_examples=60, deadline=None)
@given(svc=timelines(), seed=st.integers(0, 2**32))
def test_held_runs_take_attempts_from_add_too(svc: dict[str, str], seed: int) -> None:
    """With held runs, attempts counted by `add` and by `add_run` are judged together."""
    rng = random.Random(seed)  # noqa: S311  (a reproducible split, not a secret)
    items = attempts(svc)
    held = held_classifier()
    out = Finalized()
    for item in items:
        second = math.floor(item.started_at)
        if rng.random() < 0.5:
            held.add(item)
        else:
            held.check(item.service, item.channel)
            key = (item.service, item.channel.value, item.prober, OUTCOME_INDEX[item.outcome])
            held.buckets.add_run(second, [key])
        held.advance(second, out)
    signals = out.signals + held.finish().signals
    totals, expected, _, _ = second_by_second(items, SMALL)
    assert {name: held.totals(name) for name in held.services} == totals
    assert signals == expected


def test_held_run_counts_in_totals_but_blocks_snapshots() -> None:
    """A held run shows in `totals`; a snapshot or restore waits for `flush`."""
    classifier = held_classifier()
    for item in attempts({"api": "20."}):
        classifier.add(item)
    classifier.advance(T0 + 20)
    assert classifier.totals("svc")["combined"]["available"] == 20 - HORIZON
    assert len(classifier.buckets) == HORIZON
    with pytest.raises(ValueError, match="flush"):
        classifier.snapshot()
    with pytest.raises(ValueError, match="flush"):
        classifier.restore({})
    assert classifier.flush().signals == []
    assert classifier.snapshot()["next_second"] == T0 + 20 - HORIZON
    assert classifier.totals("svc")["combined"]["available"] == 20 - HORIZON


def test_held_runs_need_verdicts_off() -> None:
    """Holding runs back cannot go with per-second verdicts (a live classifier needs them now)."""
    with pytest.raises(ValueError, match="emit_verdicts"):
        Classifier(SMALL.services, load_catalog(), horizon=HORIZON, hold_runs=True)


def test_bounded_caches_change_nothing() -> None:
    """Full result and line caches start afresh; the report stays the same."""
    items = attempts({"api": "30. 20x 5p 40. 3? 20x", "smtp@p2": "15s 60. 2i 40."})
    expected, _ = run(items, SMALL)
    with (
        mock.patch.object(replay_module, "_MAX_KEYS", 2),
        mock.patch("classifier.engine._MAX_RESULTS", 2),
    ):
        got, _ = run(items, SMALL)
    assert got == expected


_NAMES = st.sampled_from(["svc", "other", "nope"])
_RECORD = st.fixed_dictionaries(
    {
        "service": _NAMES,
        "channel": st.sampled_from(["api", "smtp", "control"]),
        "target": st.sampled_from(["t", "u"]),
        "prober": st.sampled_from(["p1", "p2"]),
        "started_at": st.one_of(
            st.integers(0, 5).map(lambda s: f"2026-11-21T10:00:0{s}.{s}5Z"),
            st.sampled_from(
                ["2026-11-21T10:00:60Z", "2026-11-21T10:00:5xZ", "2026-11-21T10:01:00Z"]
            ),
        ),
        "outcome": st.sampled_from(["ok", "timeout", "server_error", "meh"]),
    },
    optional={
        "duration_s": st.sampled_from([0.5, 1, 12.25, -1]),
        "detail": st.sampled_from(["", "read timeout", "é"]),
    },
)


def _runs(lines_: list[bytes], max_keys: int) -> object:
    classifier = Classifier(SMALL.services, load_catalog(), horizon=1)
    reader = LineReader(classifier.check)
    try:
        with mock.patch.object(replay_module, "_MAX_KEYS", max_keys):
            return list(reader.runs(lines_))
    except ReplayError as exc:
        return str(exc)


@settings(max_examples=150, deadline=None)
@given(records=st.lists(_RECORD, max_size=12), max_keys=st.sampled_from([1, 3, 4096]))
def test_fast_reader_agrees_over_a_log(records: list[dict[str, Any]], max_keys: int) -> None:
    """Line after line (remembered heads and tails), the fast path answers as the full parser."""
    canonical = [json.dumps(r).encode() + b"\n" for r in records]
    compact = [json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records]
    assert _runs(canonical, max_keys) == _runs(compact, max_keys)


def _cut(lines_: list[bytes], rng: random.Random) -> list[bytes]:
    """The lines joined into chunks of whole lines, cut at random (as bounded_chunks reads)."""
    chunks: list[bytes] = []
    at = 0
    while at < len(lines_):
        size = rng.choice([1, 2, 3, 7, 50, len(lines_)])
        chunks.append(b"".join(lines_[at : at + size]))
        at += size
    return chunks


@settings(max_examples=80, deadline=None)
@given(svc=timelines(), other=timelines(), seed=st.integers(0, 2**32), spread=st.integers(0, 3))
def test_replay_in_chunks_equals_line_by_line(
    svc: dict[str, str], other: dict[str, str], seed: int, spread: int
) -> None:
    """Whole chunks (alike seconds found by their bytes, taken as repeats) give what lines give."""
    rng = random.Random(seed)  # noqa: S311  (a reproducible shuffle, not a secret)
    items = attempts(svc) + attempts(other, service="other", start=T0 + rng.randrange(30))
    items.sort(key=lambda a: a.started_at + rng.uniform(0, spread))
    by_line = timeline_lines(items)
    expected, expected_signals = _replay(by_line)
    for chunks in ([b"".join(by_line)], _cut(by_line, rng)):
        result, signals = _replay(chunks)
        assert (result, signals) == (expected, expected_signals)


def _replay(chunks: list[bytes]) -> tuple[object, list[IncidentSignal]]:
    signals: list[IncidentSignal] = []
    result = replay_module.replay(
        chunks, SMALL, load_catalog(), horizon=HORIZON, on_signal=signals.append
    )
    return result, signals


# A steady log: stretches of alike seconds (each second one to three lines, the stamp the
# only change), across a minute's and a day's end, with lines that break the pattern.
_PATTERN = st.lists(
    st.tuples(
        st.sampled_from(["api", "smtp"]),
        st.sampled_from(["t", "u"]),
        st.sampled_from(["ok", "timeout"]),
        st.sampled_from([".25", ".5", ""]),
    ),
    min_size=1,
    max_size=3,
)
_STRETCHES = st.lists(st.tuples(st.integers(1, 40), _PATTERN), min_size=1, max_size=6)
_BREAKS = st.lists(
    st.tuples(
        st.integers(0, 400),
        st.sampled_from(["blank", "compact", "late", "ahead", "bad", "repeat", "stamp"]),
    ),
    max_size=3,
)


def _steady(
    stretches: list[tuple[int, list[tuple[str, str, str, str]]]], start: int
) -> list[bytes]:
    out: list[bytes] = []
    second = start
    for length, pattern in stretches:
        for _ in range(length):
            stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            for channel, target, outcome, fraction in pattern:
                record = {
                    "service": "svc",
                    "channel": channel,
                    "target": target,
                    "prober": "p1",
                    "started_at": f"{stamp}{fraction}Z",
                    "outcome": outcome,
                    "duration_s": 0.05,
                }
                out.append(json.dumps(record).encode() + b"\n")
            second += 1
    return out


def _break(lines_: list[bytes], steady: list[bytes], at: int, kind: str) -> None:
    """Insert a line of ``kind`` at ``at``, made from the steady line nearest to it."""
    at = min(at, len(lines_))
    if kind == "blank":
        lines_.insert(at, b"\n")
        return
    record = json.loads(steady[min(at, len(steady) - 1)])
    stamp = record["started_at"]
    second = math.floor(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    moved = {"late": -3, "ahead": 5, "repeat": 0, "stamp": 1}.get(kind, 0)
    record["started_at"] = datetime.fromtimestamp(second + moved, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.75Z"
    )
    if kind == "compact":
        lines_.insert(at, json.dumps(record, separators=(",", ":")).encode() + b"\n")
    elif kind == "bad":
        lines_.insert(at, json.dumps(record).encode()[:-9] + b"\n")
    else:
        lines_.insert(at, json.dumps(record).encode() + b"\n")


@settings(max_examples=200, deadline=None)
@given(
    stretches=_STRETCHES,
    breaks=_BREAKS,
    before_midnight=st.integers(0, 130),
    seed=st.integers(0, 2**32),
)
def test_reader_in_chunks_agrees_on_steady_logs(
    stretches: list[tuple[int, list[tuple[str, str, str, str]]]],
    breaks: list[tuple[int, str]],
    before_midnight: int,
    seed: int,
) -> None:
    """Runs and repeats read from chunks equal those read line by line, errors included."""
    midnight = T0 - T0 % 86400 + 86400
    steady = _steady(stretches, midnight - before_midnight)
    lines_ = list(steady)
    for at, kind in breaks:
        _break(lines_, steady, at, kind)
    rng = random.Random(seed)  # noqa: S311  (reproducible cuts, not a secret)
    expected = _runs(lines_, 4096)
    for chunks in ([b"".join(lines_)], _cut(lines_, rng)):
        assert _runs(chunks, 4096) == expected
        assert _repeats_ok(chunks)
    result, signals = _replay(lines_) if not isinstance(expected, str) else (None, [])
    if result is not None:
        assert _replay([b"".join(lines_)]) == (result, signals)


def _repeats_ok(chunks: list[bytes]) -> bool:
    """Every second of a repeat is later than any second before it."""
    reader = LineReader(Classifier(SMALL.services, load_catalog(), horizon=1).check)
    latest = -1
    try:
        for first, _, count in reader.repeats(chunks):
            if count > 1 and first <= latest:
                return False
            latest = max(latest, first + count - 1)
    except ReplayError:
        pass
    return True


def test_a_repeat_takes_attempts_that_join_its_seconds() -> None:
    """Attempts added into a repeat's seconds (by ``add`` or ``add_run``) are judged with it."""
    items = attempts({"api": "40."})
    late = attempts({"api": "1x"}, start=T0 + 15) + attempts({"api": "1x"}, start=T0 + 30)
    keys = [(a.service, a.channel.value, a.prober, OUTCOME_INDEX[a.outcome]) for a in items[:2]]
    plain = Classifier(SMALL.services, load_catalog(), horizon=HORIZON)
    for item in items + late:
        plain.add(item)
    expected = plain.advance(T0 + 39).signals + plain.finish().signals

    held = held_classifier()
    held.check("svc", items[0].channel)
    held.buckets.add_repeat(T0, list(keys), 20)
    held.buckets.add_repeat(T0 + 20, list(keys), 20)
    assert len(held.buckets) == 40
    with pytest.raises(ValueError, match="after every second"):
        held.buckets.add_repeat(T0 + 39, list(keys), 2)
    held.add(late[0])
    late_keys = [(a.service, a.channel.value, a.prober, OUTCOME_INDEX[a.outcome]) for a in late]
    held.buckets.add_run(T0 + 15, late_keys[1:2])
    held.buckets.add_run(T0 + 30, late_keys[2:])
    signals = held.advance(T0 + 39).signals + held.finish().signals
    assert {name: held.totals(name) for name in held.services} == {
        name: plain.totals(name) for name in plain.services
    }
    assert signals == expected


def test_a_repeat_after_a_silence() -> None:
    """Seconds with no attempt before a repeat are judged no_data, as one run."""
    items = attempts({"api": "5."}) + attempts({"api": "30."}, start=T0 + 100)
    keys = [(a.service, a.channel.value, a.prober, OUTCOME_INDEX[a.outcome]) for a in items[:2]]
    plain = Classifier(SMALL.services, load_catalog(), horizon=HORIZON)
    for item in items:
        plain.add(item)
    plain.finish()
    held = held_classifier()
    held.check("svc", items[0].channel)
    held.buckets.add_repeat(T0, list(keys), 5)
    held.advance(T0 + 4)
    held.buckets.add_repeat(T0 + 100, list(keys), 30)
    held.advance(T0 + 129)
    held.finish()
    assert held.totals("svc") == plain.totals("svc")
    assert held.totals("svc")["combined"]["no_data"] == 95
