"""Pooling a fleet: packed slices, the union of every prober's attempts, finality and late slices."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.buckets import Bucket
from classifier.engine import Classifier, Finalized
from classifier.pooling import (
    MAX_SAMPLE_TEXT,
    MAX_SLICE_SAMPLES,
    PackError,
    ProberSecond,
    Slicer,
    final_through,
    fleet_lanes,
    pool,
    would_change,
)
from classifier.verdict import OUTCOME_INDEX, OUTCOMES, SecondVerdict, Verdict
from config import load_config_text
from probe.attempt import Attempt, Channel, Outcome

CONFIG = """
services:
  - name: a
    classifier: {critical_after: 3s, recover_after: 2s, max_gap: 1s}
    api: [{name: x, url: "http://127.0.0.1:1/", timeout: 1s}]
    smtp: [{name: y, host: 127.0.0.1, timeout: 1s}]
  - name: b
    api: [{name: z, url: "http://127.0.0.1:1/", timeout: 1s}]
"""
LOADED = load_config_text(CONFIG, "c.yaml", {})
LANES = fleet_lanes(LOADED.config)
T0 = 1_790_000_000
HORIZON = 2
OK, TIMEOUT, ERR, CLIENT = (
    OUTCOME_INDEX[Outcome.OK],
    OUTCOME_INDEX[Outcome.TIMEOUT],
    OUTCOME_INDEX[Outcome.SERVER_ERROR],
    OUTCOME_INDEX[Outcome.CLIENT_ERROR],
)


def _counts(**by_outcome: int) -> tuple[int, ...]:
    row = [0] * len(OUTCOMES)
    for name, n in by_outcome.items():
        row[OUTCOME_INDEX[Outcome(name)]] = n
    return tuple(row)


def _classifier(start: int | None = None) -> Classifier:
    return Classifier.from_config(LOADED.config, LOADED.catalog, horizon=HORIZON, start=start)


def _judge_pooled(rows: list[ProberSecond], live: set[str], **options: int) -> Finalized:
    """What a finalizer finds over ``rows``: each second pooled, then judged in order."""
    # A finalizer knows where its span starts (its checkpoint), as a single instance does.
    classifier = _classifier(min((row.second for row in rows), default=None))
    out = Finalized()
    for second in sorted({row.second for row in rows}):
        pooled = pool(second, rows, live=live, **options)  # type: ignore[arg-type]
        for service, channel, prober, outcome, n in pooled.entries():
            classifier.add_raw(service, channel, prober, second, outcome, n)
        classifier.advance_through(second, out)
    return out


def _per_second(verdicts: list[SecondVerdict]) -> dict[tuple[str, str, int], tuple[object, ...]]:
    """Verdicts keyed by second (a silent run expanded), for comparing two judgings."""
    out = {}
    for v in verdicts:
        for second in range(v.second, v.last + 1):
            out[(v.service, v.channel, second)] = (v.verdict, v.counts, v.set_aside, v.traffic)
    return out


def test_fleet_lanes_follow_the_configuration() -> None:
    """Lanes are every (service, channel) with targets or traffic rules, in configuration order."""
    assert LANES == (("a", Channel.API), ("a", Channel.SMTP), ("b", Channel.API))
    other = load_config_text(
        "services: [{name: s, smtp: [{name: m, host: h}]}, {name: e}]", "c.yaml", {}
    )
    assert fleet_lanes(other.config) == (("s", Channel.SMTP),)
    ruled = load_config_text(
        "services: [{name: s, traffic: [{match: {server.address: h}, channel: smtp, reply_code: r}]}]",
        "c.yaml",
        {},
    )
    assert fleet_lanes(ruled.config) == (("s", Channel.SMTP),)


def test_a_healthy_slice_packs_into_a_few_bytes() -> None:
    """One ok attempt per lane: a byte per lane plus four (version, lanes, no failures, no traffic)."""
    row = ProberSecond("p1", T0, {lane: _counts(ok=1) for lane in LANES})
    packed = row.pack(LANES)
    assert len(packed) == len(LANES) + 4
    assert ProberSecond.unpack("p1", T0, packed, LANES) == row


def test_a_failing_slice_round_trips() -> None:
    """Failures, probe errors and large counts survive packing; empty lanes stay absent."""
    row = ProberSecond(
        "p1",
        T0,
        {("a", Channel.API): _counts(ok=300, timeout=2, probe_error=1, server_error=70000)},
        control_ok=1,
        control_judged=2,
    )
    back = ProberSecond.unpack("p1", T0, row.pack(LANES), LANES, control_ok=1, control_judged=2)
    assert back == row
    assert back.attempts == 70303


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"\x02\x03", "version 2", id="version"),
        pytest.param(b"\x01\x02\x00\x00\x00", "has 2 lanes", id="lane-count"),
        pytest.param(b"\x01\x03\x00", "truncated", id="truncated"),
        pytest.param(b"\x01\x03\x00\x00\x00\x00\x00\x00", "trailing", id="trailing"),
        pytest.param(
            b"\x01\x03\x00\x00\x00\x00\x01\x05\x00\x01", "traffic entry", id="traffic-range"
        ),
        pytest.param(b"\x01\x03\x00\x00\x00\x01\x05\x01\x01", "out of range", id="lane-range"),
        pytest.param(b"\x01\x03\x00\x00\x00\x01\x00\x00\x01", "out of range", id="ok-sparse"),
        pytest.param(b"\x01\x03\x01\x00\x00\x01\x00\x01\x02\x00", "more failures", id="overcount"),
        pytest.param(b"\x01\x83", "truncated", id="open-varint"),
    ],
)
def test_a_damaged_slice_is_refused(data: bytes, message: str) -> None:
    """Bytes that do not fit the configuration's lanes are refused with the reason."""
    with pytest.raises(PackError, match=message):
        ProberSecond.unpack("p1", T0, data, LANES)


def test_a_slice_of_a_lane_not_configured_is_refused() -> None:
    """Packing refuses a lane the configuration does not judge (and a negative count)."""
    with pytest.raises(PackError, match="not in the configuration"):
        ProberSecond("p1", T0, {("zz", Channel.API): _counts(ok=1)}).pack(LANES)
    with pytest.raises(PackError, match="negative"):
        ProberSecond("p1", T0, {LANES[0]: (-1, *_counts()[1:])}).pack(LANES)


def test_the_slicer_cuts_every_second_once_final() -> None:
    """Every second gets a slice, attempts or not, once its horizon has passed."""
    slicer = Slicer("p1", HORIZON, T0)
    slicer.add(_attempt("a", Channel.API, T0 + 0.5, Outcome.TIMEOUT))
    slicer.add(_attempt("", Channel.CONTROL, T0 + 0.1, Outcome.OK))
    assert slicer.take(T0 + HORIZON + 0.9) == []
    rows = slicer.take(T0 + 2 + HORIZON + 0.1)
    assert [row.second for row in rows] == [T0, T0 + 1]
    assert rows[0].counts == {("a", Channel.API): _counts(timeout=1)}
    assert (rows[0].control_ok, rows[0].control_judged) == (1, 1)
    assert rows[1] == ProberSecond("p1", T0 + 1)
    assert slicer.add(_attempt("a", Channel.API, T0 + 0.7, Outcome.OK)) is False
    assert [row.second for row in slicer.take_through(T0 + 3)] == [T0 + 2, T0 + 3]


def test_ingested_traffic_travels_in_the_slice_and_is_judged_as_traffic() -> None:
    """Traffic a member ingested packs beside its probes, keeps its source when pooled, and is
    not set aside by the member's failed control (only too few probers set it aside)."""
    slicer = Slicer("p1", HORIZON, T0)
    slicer.add(_attempt("a", Channel.API, T0 + 0.2, Outcome.OK))
    slicer.add(_attempt("a", Channel.API, T0 + 0.4, Outcome.SERVER_ERROR, "traffic:app"))
    slicer.add(_attempt("a", Channel.API, T0 + 0.6, Outcome.SERVER_ERROR, "traffic:web"))
    slicer.add(_attempt("", Channel.CONTROL, T0 + 0.1, Outcome.TIMEOUT))
    (row,) = slicer.take_through(T0)
    assert row.counts == {LANES[0]: _counts(ok=1)}
    assert row.traffic == {LANES[0]: _counts(server_error=2)}
    assert row.attempts == 3
    back = ProberSecond.unpack("p1", T0, row.pack(LANES), LANES, control_ok=0, control_judged=1)
    assert back == row
    api = next(v for v in _judge_pooled([back], {"p1"}).verdicts if v.channel == "api")
    assert (api.verdict, api.set_aside) == (Verdict.UNAVAILABLE, 1)
    assert api.traffic == _counts(server_error=2)
    aside = next(v for v in _judge_pooled([back], {"p1"}, min_probers=2).verdicts)
    assert aside.verdict is Verdict.INCONCLUSIVE
    with pytest.raises(PackError, match="not in the configuration"):
        ProberSecond("p1", T0, traffic={("zz", Channel.API): _counts(ok=1)}).pack(LANES)


def _failure(
    target: str,
    started_at: float,
    duration_s: float,
    outcome: Outcome = Outcome.TIMEOUT,
    *,
    service: str = "a",
    channel: Channel = Channel.API,
    prober: str = "p1",
    detail: str = "read timeout",
) -> Attempt:
    return Attempt(
        service=service,
        channel=channel,
        target=target,
        prober=prober,
        started_at=started_at,
        duration_s=duration_s,
        outcome=outcome,
        phase="headers",
        detail=detail,
        timings={"connect": 0.25, "total": duration_s},
    )


def test_a_slice_carries_its_most_telling_failures_bounded() -> None:
    """Failures only, the slowest per lane up to the cap, long texts cut; healthy seconds none."""
    slicer = Slicer("p1", HORIZON, T0, samples_per_second=2)
    slicer.add(_failure("x", T0 + 0.5, 0.5))
    slicer.add(_failure("x", T0 + 0.25, 1.0))
    slicer.add(_failure("x", T0 + 0.75, 0.75, Outcome.SERVER_ERROR, detail="HTTP 503 " * 40))
    slicer.add(_attempt("a", Channel.API, T0 + 0.1, Outcome.OK))
    slicer.add(_failure("y", T0 + 0.125, 2.0, service="a", channel=Channel.SMTP))
    slicer.add(_attempt("", Channel.CONTROL, T0 + 0.2, Outcome.TIMEOUT))
    slicer.add(_attempt("a", Channel.API, T0 + 1.1, Outcome.OK))
    first, healthy = slicer.take_through(T0 + 1)
    assert [(a.target, a.started_at) for a in first.samples] == [
        ("y", T0 + 0.125),
        ("x", T0 + 0.25),
        ("x", T0 + 0.75),
    ]
    assert len(first.samples[2].detail) == MAX_SAMPLE_TEXT
    assert healthy.samples == ()
    assert healthy.pack_samples(LANES) is None
    back = ProberSecond.unpack(
        "p1", T0, first.pack(LANES), LANES, samples=first.pack_samples(LANES)
    )
    assert back.samples == first.samples


def test_a_slice_shares_its_sample_cap_among_its_lanes() -> None:
    """Past the slice's cap every lane keeps its most telling failures before any keeps more."""
    slicer = Slicer("p1", HORIZON, T0, samples_per_second=MAX_SLICE_SAMPLES)
    for i in range(MAX_SLICE_SAMPLES):
        slicer.add(_failure("x", T0 + i / 1000, 1.0 + i / 1000))
    slicer.add(_failure("z", T0 + 0.5, 0.1, service="b"))
    (row,) = slicer.take_through(T0)
    assert len(row.samples) == MAX_SLICE_SAMPLES
    assert [a.target for a in row.samples].count("z") == 1
    slowest = max(a.duration_s for a in row.samples if a.target == "x")
    assert slowest == 1.0 + (MAX_SLICE_SAMPLES - 1) / 1000


def test_ingested_traffic_failures_keep_their_prober() -> None:
    """A traffic sample keeps its traffic id through packing; a probe's takes the slice's."""
    slicer = Slicer("p1", HORIZON, T0, samples_per_second=5)
    slicer.add(_failure("x", T0 + 0.5, 0.5, prober="traffic:app"))
    slicer.add(_failure("x", T0 + 0.25, 0.5, prober="someone-else"))
    (row,) = slicer.take_through(T0)
    back = ProberSecond.unpack("p1", T0, row.pack(LANES), LANES, samples=row.pack_samples(LANES))
    assert [(a.prober, str(a.source)) for a in back.samples] == [
        ("p1", "probe"),
        ("traffic:app", "traffic"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b'[[9,"x",0,0,1,"","",{}]]', "out of range", id="lane"),
        pytest.param(b'[[0,"x",0,0,-1,"","",{}]]', "out of range", id="outcome"),
        pytest.param(b'[[0,"x"]]', "unreadable", id="short"),
        pytest.param(b"{", "unreadable", id="json"),
    ],
)
def test_damaged_samples_are_refused(data: bytes, message: str) -> None:
    """Samples that do not fit the configuration's lanes are refused, not guessed."""
    counts = ProberSecond("p1", T0).pack(LANES)
    with pytest.raises(PackError, match=message):
        ProberSecond.unpack("p1", T0, counts, LANES, samples=data)


def test_pooling_is_the_union_of_every_attempt() -> None:
    """Two probers: one sees timeouts, the other ok: the pooled second is partial."""
    rows = [
        ProberSecond("p1", T0, {LANES[0]: _counts(timeout=2)}),
        ProberSecond("p2", T0, {LANES[0]: _counts(ok=1)}),
    ]
    found = _judge_pooled(rows, {"p1", "p2"})
    api = next(v for v in found.verdicts if v.channel == "api" and v.service == "a")
    assert (api.verdict, api.counts) == (Verdict.PARTIAL, _counts(ok=1, timeout=2))
    pooled = pool(T0, rows, live=["p2", "p1", "p3"])
    assert pooled.reporting == ("p1", "p2")
    assert pooled.expected == ("p1", "p2", "p3")


def test_a_prober_whose_control_failed_is_set_aside() -> None:
    """Its attempts are set aside; the others judge the second alone."""
    rows = [
        ProberSecond("p1", T0, {LANES[0]: _counts(ok=2)}, control_ok=0, control_judged=1),
        ProberSecond("p2", T0, {LANES[0]: _counts(timeout=1)}, control_ok=1, control_judged=1),
    ]
    pooled = pool(T0, rows, live=["p1", "p2"])
    assert (pooled.reporting, pooled.set_aside) == (("p2",), ("p1",))
    api = next(v for v in _judge_pooled(rows, {"p1", "p2"}).verdicts if v.channel == "api")
    assert (api.verdict, api.set_aside) == (Verdict.UNAVAILABLE, 2)


def test_a_prober_whose_clock_is_off_is_set_aside() -> None:
    """An unhealthy prober counts like one whose control failed, whatever its control said."""
    rows = [
        ProberSecond("p1", T0, {LANES[0]: _counts(timeout=2)}, control_ok=1, control_judged=1),
        ProberSecond("p2", T0, {LANES[0]: _counts(ok=1)}),
    ]
    pooled = pool(T0, rows, live=["p1", "p2"], unhealthy=["p2"])
    assert (pooled.reporting, pooled.set_aside) == (("p1",), ("p2",))
    found = _judge_pooled(rows, {"p1", "p2"}, unhealthy=["p2"])  # type: ignore[arg-type]
    api = next(v for v in found.verdicts if v.channel == "api")
    assert (api.verdict, api.set_aside) == (Verdict.UNAVAILABLE, 1)


def test_too_few_probers_make_the_second_inconclusive() -> None:
    """With min_probers 2, a second only one prober reports is inconclusive."""
    rows = [ProberSecond("p1", T0, {LANES[0]: _counts(timeout=2)})]
    pooled = pool(T0, rows, live=["p1", "p2"], min_probers=2)
    assert (pooled.reporting, pooled.set_aside) == ((), ("p1",))
    found = _judge_pooled(rows, {"p1", "p2"}, min_probers=2)
    api = next(v for v in found.verdicts if v.channel == "api")
    assert api.verdict is Verdict.INCONCLUSIVE
    both = [*rows, ProberSecond("p2", T0, {LANES[0]: _counts(timeout=1)})]
    api = next(v for v in _judge_pooled(both, {"p1", "p2"}, min_probers=2).verdicts)
    assert api.verdict is Verdict.UNAVAILABLE


@pytest.mark.parametrize(
    ("watermarks", "live", "now", "expected"),
    [
        pytest.param(
            {"p1": T0 + 5, "p2": T0 + 3}, ["p1", "p2"], T0 + 6, T0 + 3, id="all-published"
        ),
        pytest.param({"p1": T0 + 5}, ["p1", "p2"], T0 + 6, T0, id="one-silent-time-rule"),
        pytest.param(
            {"p1": T0 + 5, "p2": None}, ["p1", "p2"], T0 + 9, T0 + 3, id="never-published"
        ),
        pytest.param({}, [], T0 + 6.5, T0, id="no-live-prober"),
        pytest.param({"p1": T0 - 9}, ["p1"], T0 + 6, T0, id="time-beats-a-slow-prober"),
        pytest.param({"p1": T0 + 5, "p9": T0 - 100}, ["p1"], T0 + 6, T0 + 5, id="dead-ignored"),
    ],
)
def test_finality(
    watermarks: dict[str, int | None], live: list[str], now: float, expected: int
) -> None:
    """Final when every live prober published it, or horizon + grace (here 2 + 3) after its end."""
    assert final_through(watermarks=watermarks, live=live, now=now, horizon=2, grace=3) == expected


def test_a_late_slice_says_whether_it_would_change_the_verdict() -> None:
    """An ok slice after an unavailable second would change it; another timeout would not."""
    judge = _classifier().judge_bucket
    rows = [ProberSecond("p1", T0, {LANES[0]: _counts(timeout=2)})]
    ok = ProberSecond("p2", T0, {LANES[0]: _counts(ok=1)})
    bad = ProberSecond("p2", T0, {LANES[0]: _counts(timeout=1)})
    assert would_change(judge, rows, ok, live=["p1", "p2"]) is True
    assert would_change(judge, rows, bad, live=["p1", "p2"]) is False


def _attempt(
    service: str, channel: Channel, started_at: float, outcome: Outcome, prober: str = "p1"
) -> Attempt:
    return Attempt(
        service=service,
        channel=channel,
        target="t",
        prober=prober,
        started_at=started_at,
        duration_s=0.1,
        outcome=outcome,
    )


_LANE_CHOICES = [("a", Channel.API), ("a", Channel.SMTP), ("b", Channel.API), ("", Channel.CONTROL)]
_OUTCOME_CHOICES = [Outcome.OK, Outcome.TIMEOUT, Outcome.SERVER_ERROR, Outcome.CLIENT_ERROR,
                    Outcome.PROBE_ERROR]  # fmt: skip
attempts_strategy = st.lists(
    st.tuples(
        st.integers(0, 20),
        st.floats(0, 0.999),
        st.sampled_from(_LANE_CHOICES),
        st.sampled_from(_OUTCOME_CHOICES),
        st.booleans(),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(attempts_strategy)
def test_pooling_one_prober_equals_the_single_instance(
    drawn: list[tuple[int, float, tuple[str, Channel], Outcome, bool]],
) -> None:
    """One prober's packed slices, pooled and judged, give exactly the single-instance verdicts.

    Some attempts are traffic the prober ingested: judged as traffic in both, never set
    aside by the prober's failed control, and counted as traffic on each verdict.
    """
    attempts = [
        _attempt(
            service,
            channel,
            T0 + second + frac,
            outcome,
            "traffic:app" if ingested and channel is not Channel.CONTROL else "p1",
        )
        for second, frac, (service, channel), outcome, ingested in drawn
    ]
    single = _classifier()
    for attempt in attempts:
        single.add(attempt)
    alone = single.finish()
    first = min(int(a.started_at) for a in attempts)
    last = max(int(a.started_at) for a in attempts)
    slicer = Slicer("p1", HORIZON, first)
    for attempt in attempts:
        slicer.add(attempt)
    rows = [
        ProberSecond.unpack(
            row.prober,
            row.second,
            row.pack(LANES),
            LANES,
            control_ok=row.control_ok,
            control_judged=row.control_judged,
        )
        for row in slicer.take_through(last)
    ]
    pooled = _judge_pooled(rows, {"p1"})
    assert _per_second(pooled.verdicts) == _per_second(alone.verdicts)
    assert pooled.signals == alone.signals


rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2", "p3", "p4"]),
        st.dictionaries(
            st.sampled_from(LANES),
            st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
            max_size=3,
        ),
        st.integers(0, 2),
        st.integers(0, 2),
    ),
    max_size=4,
    unique_by=lambda row: row[0],
)


@settings(max_examples=80, deadline=None)
@given(rows_strategy, st.randoms(use_true_random=False), st.integers(1, 3))
def test_the_union_is_order_independent(
    drawn: list[tuple[str, dict[tuple[str, Channel], tuple[int, int, int]], int, int]],
    rnd: random.Random,
    min_probers: int,
) -> None:
    """Pooling the same slices in any order gives the same bucket, verdicts and reporters."""
    rows = [
        ProberSecond(
            prober,
            T0,
            {lane: _counts(ok=ok, timeout=t, client_error=c) for lane, (ok, t, c) in lanes.items()},
            control_ok=min(ok_c, judged),
            control_judged=judged,
        )
        for prober, lanes, ok_c, judged in drawn
    ]
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    live = [row.prober for row in rows]
    one = pool(T0, rows, live=live, unhealthy=["p4"], min_probers=min_probers)
    two = pool(T0, shuffled, live=reversed(live), unhealthy=["p4"], min_probers=min_probers)
    judge = _classifier().judge_bucket
    assert judge(one.bucket) == judge(two.bucket)
    assert (one.reporting, one.set_aside, one.expected) == (
        two.reporting,
        two.set_aside,
        two.expected,
    )
    assert sorted(one.entries()) == sorted(two.entries())
    assert isinstance(one.bucket, Bucket)


# A fault schedule: per prober, runs of (seconds, outcome of every attempt in them).
schedule_strategy = st.lists(
    st.lists(
        st.tuples(
            st.integers(1, 12),
            st.sampled_from(
                [Outcome.OK, Outcome.TIMEOUT, Outcome.SERVER_ERROR, Outcome.CLIENT_ERROR]
            ),
        ),
        min_size=1,
        max_size=6,
    ),
    min_size=3,
    max_size=3,
)


def _fleet_attempts(schedule: list[list[tuple[int, Outcome]]], seconds: int) -> list[Attempt]:
    """Three probers' attempts: every lane once a second, failing as their schedule says."""
    attempts = []
    for index, runs in enumerate(schedule):
        prober = f"p{index + 1}"
        outcomes = [outcome for length, outcome in runs for _ in range(length)]
        for second in range(seconds):
            outcome = outcomes[second % len(outcomes)]
            for lane_index, (service, channel) in enumerate(LANES):
                started = T0 + second + 0.1 + 0.2 * index + 0.05 * lane_index
                attempts.append(
                    Attempt(
                        service=service,
                        channel=channel,
                        target="t",
                        prober=prober,
                        started_at=started,
                        duration_s=0.1,
                        outcome=outcome,
                    )
                )
    return attempts


def _pooled_and_replayed(
    schedule: list[list[tuple[int, Outcome]]], seconds: int
) -> tuple[dict[str, object], list[object], dict[str, object], list[object]]:
    """(totals, incidents) of the fleet's pooling and of replay over the union of the logs."""
    from classifier.replay import IncidentTally, replay

    attempts = _fleet_attempts(schedule, seconds)
    union = sorted(attempts, key=lambda a: a.started_at)
    lines = [json.dumps(a.to_json()).encode() for a in union]
    replayed = replay(lines, LOADED.config, LOADED.catalog, horizon=HORIZON)
    slicers = {p: Slicer(p, HORIZON, T0) for p in ("p1", "p2", "p3")}
    for attempt in attempts:
        slicers[attempt.prober].add(attempt)
    rows = [
        ProberSecond.unpack(
            row.prober, row.second, row.pack(LANES), LANES,
            control_ok=row.control_ok, control_judged=row.control_judged,
        )
        for slicer in slicers.values()
        for row in slicer.take_through(T0 + seconds - 1)
    ]  # fmt: skip
    classifier = _classifier(T0)
    out = Finalized()
    for second in range(T0, T0 + seconds):
        for service, channel, prober, outcome, n in pool(second, rows, live=slicers).entries():
            classifier.add_raw(service, channel, prober, second, outcome, n)
        classifier.advance_through(second, out)
    tally = IncidentTally()
    for signal in out.signals:
        tally.take(signal)
    totals = {s: classifier.totals(s) for s in classifier.services}
    return totals, list(tally.found()), dict(replayed.services), list(replayed.incidents)


@settings(max_examples=8, deadline=None)
@given(schedule_strategy, st.integers(20, 60))
def test_the_pooled_fleet_equals_replay_of_the_union(
    schedule: list[list[tuple[int, Outcome]]], seconds: int
) -> None:
    """Three probers' slices, packed, pooled and judged, give exactly what `slawatch replay`
    gives over the union of their attempt logs: verdict counts and incidents, field for field."""
    totals, incidents, replayed_totals, replayed_incidents = _pooled_and_replayed(schedule, seconds)
    assert totals == replayed_totals
    assert incidents == replayed_incidents


def test_an_outage_seen_everywhere_is_one_incident_in_both() -> None:
    """All three probers fail for 10 s: pooling and replay both find one incident a service."""
    schedule = [[(10, Outcome.TIMEOUT), (30, Outcome.OK)]] * 3
    totals, incidents, replayed_totals, replayed_incidents = _pooled_and_replayed(schedule, 40)
    assert totals == replayed_totals
    assert incidents == replayed_incidents
    assert sorted(i.service for i in incidents) == ["a", "b"]
    assert totals["a"]["combined"]["unavailable"] == 10
