"""Timelines from runs: every second of the period once, with the verdict of the run covering it."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from incidents.model import Run
from incidents.report import DAY_S as DAY
from incidents.report import daily, figures
from incidents.timeline import spans

VERDICTS = ("available", "unavailable", "partial", "inconclusive", "no_data")
T0 = 1_790_000_000


def _runs(pieces: list[tuple[int, int, str]]) -> list[Run]:
    """Runs laid end to end from (gap, length, verdict): a gap is seconds no run covers."""
    out, at = [], T0
    for gap, length, verdict in pieces:
        at += gap
        out.append(Run("mail", "combined", verdict, at, at + length - 1, (1,)))
        at += length
    return out


def test_gaps_are_no_data_and_equal_verdicts_merge() -> None:
    """Runs that differ only in counts merge; uncovered seconds are no_data; the period clips."""
    runs = [
        Run("mail", "combined", "available", T0 - 100, T0 + 9, (1,)),
        Run("mail", "combined", "available", T0 + 10, T0 + 19, (2,)),
        Run("mail", "combined", "unavailable", T0 + 25, T0 + 29, (0,)),
        Run("mail", "api", "unavailable", T0, T0 + 100, (0,)),
    ]
    assert [(s.first - T0, s.seconds, s.verdict) for s in spans(runs, "combined", T0, T0 + 40)] == [
        (0, 20, "available"),
        (20, 5, "no_data"),
        (25, 5, "unavailable"),
        (30, 10, "no_data"),
    ]
    assert [s.verdict for s in spans([], "combined", T0, T0 + 5)] == ["no_data"]


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(1, 30), st.sampled_from(VERDICTS)), max_size=20
    ),
    st.integers(-20, 50),
    st.integers(1, 400),
)
def test_every_second_once_with_its_runs_verdict(
    pieces: list[tuple[int, int, str]], offset: int, length: int
) -> None:
    """The spans tile the period exactly, never repeat a verdict side by side, and give each
    second the verdict of the run holding it (no_data where none does)."""
    runs = _runs(pieces)
    first, end = T0 + offset, T0 + offset + length
    found = spans(runs, "combined", first, end)
    assert found[0].first == first
    assert sum(s.seconds for s in found) == length
    for before, after in itertools.pairwise(found):
        assert before.end == after.first
        assert before.verdict != after.verdict
    for span in found:
        for second in range(span.first, span.end):
            holder = [r.verdict for r in runs if r.first <= second <= r.last]
            assert span.verdict == (holder[0] if holder else "no_data")


@given(
    st.lists(
        st.tuples(st.integers(0, 90_000), st.integers(1, 200_000), st.sampled_from(VERDICTS)),
        max_size=8,
    ),
    st.integers(-3, 3),
)
def test_daily_figures_equal_figures_of_each_day(
    pieces: list[tuple[int, int, str]], shift: int
) -> None:
    """The one-pass daily bars give each day exactly what figures() gives for that day."""
    runs = _runs(pieces)
    first_day = T0 - T0 % DAY + shift * DAY
    days = daily(runs, "combined", first_day, 7)
    for index, day in enumerate(days):
        start = first_day + index * DAY
        assert day == figures(runs, "combined", start, start + DAY)
