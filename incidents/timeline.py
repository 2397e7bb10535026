"""Verdict timelines for pages: stored runs merged into spans of one verdict, gaps as no_data.

A timeline is built from the store's runs (a steady hour is one row), never from
per-second rows: a span says "these ``seconds`` seconds from ``first`` had this verdict".
Seconds no run covers (slawatch was not running) are ``no_data``, as in evidence bundles.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from config.timetext import format_time
from incidents.model import Run

NO_DATA = "no_data"


@dataclass(frozen=True, slots=True)
class Span:
    """Consecutive seconds of one channel with one verdict."""

    first: int
    seconds: int
    verdict: str

    @property
    def end(self) -> int:
        """The second after the span."""
        return self.first + self.seconds

    def to_json(self) -> dict[str, Any]:
        """The span as the API shows it (``first`` also as epoch seconds, for scripts)."""
        return {
            "from": format_time(self.first),
            "first": self.first,
            "seconds": self.seconds,
            "verdict": self.verdict,
        }


def spans(runs: Iterable[Run], channel: str, first: int, end: int) -> list[Span]:
    """The verdict of every second of [first, end) of one channel, as spans in time order."""
    out: list[Span] = []

    def add(start: int, stop: int, verdict: str) -> None:
        if stop <= start:
            return
        if out and out[-1].verdict == verdict and out[-1].end == start:
            out[-1] = Span(out[-1].first, stop - out[-1].first, verdict)
        else:
            out.append(Span(start, stop - start, verdict))

    at = first
    for run in sorted((r for r in runs if r.channel == channel), key=lambda r: r.first):
        start, stop = max(run.first, at), min(run.last + 1, end)
        if stop <= start:
            continue
        add(at, start, NO_DATA)
        add(start, stop, run.verdict)
        at = stop
    add(at, end, NO_DATA)
    return out
