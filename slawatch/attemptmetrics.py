"""The per-target series of ``/metrics``, kept in plain arrays and rendered from pre-built text.

At a thousand targets these series are most of the page: an attempt counter per outcome,
a duration histogram, the misconfigured gauge and the missed-launch counter of every
target, some 27 samples each. ``prometheus_client`` builds every sample's label text anew
on each scrape (1.7 s of CPU for 2,000 targets); here each sample's text up to its value
is built once, when the target is configured, so a scrape only formats numbers, and
:meth:`AttemptTable.render_parts` hands the page out in slices the web handler writes
between launches. The table is also a ``prometheus_client`` collector, so a registry's
``get_sample_value`` and ``generate_latest`` see the same samples.

With ``per_target`` off, targets of one service and channel share one attempt counter and
one histogram (no ``target`` label); the misconfigured gauge and the missed-launch counter
stay per target, since they name the target to fix.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from probe.attempt import Outcome

ATTEMPTS = "slawatch_attempts"
DURATION = "slawatch_attempt_duration_seconds"
MISCONFIGURED = "slawatch_probe_misconfigured"
MISSED = "slawatch_missed_launches"
HELP = {
    ATTEMPTS: "Probe attempts by outcome.",
    DURATION: "Duration of probe attempts.",
    MISCONFIGURED: "1 when the target's last attempt failed through the probe's own configuration.",
    MISSED: "Launches skipped because the scheduler stalled past their second.",
}
_OUTCOMES = tuple(Outcome)
_OUTCOME_INDEX = {outcome: i for i, outcome in enumerate(_OUTCOMES)}
# Targets rendered per slice of the page (a slice is a few milliseconds of work).
SLICE = 200

TargetKey = tuple[str, str, str]  # service, channel, target


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    # Sorted by name, as prometheus_client writes them (the page reads the same).
    return ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(pairs))


class _Series:
    """One attempt counter (by outcome) and one duration histogram, with their sample heads."""

    __slots__ = (
        "bucket_heads",
        "buckets",
        "count_head",
        "counts",
        "labels",
        "outcome_heads",
        "sum",
        "sum_head",
    )

    def __init__(self, labels: tuple[tuple[str, str], ...], bounds: tuple[float, ...]) -> None:
        self.labels = labels
        # Attempts by outcome (Outcome order).
        self.counts = [0] * len(_OUTCOMES)
        # Observations per bucket, not cumulative, the last one above every bound: the
        # count is their sum, so a page read between two updates is still consistent.
        self.buckets = [0] * (len(bounds) + 1)
        self.sum = 0.0
        text = _labels(labels)
        self.outcome_heads = [
            f"{ATTEMPTS}_total{{{_labels((*labels, ('outcome', o.value)))}}} " for o in _OUTCOMES
        ]
        les = [repr(float(b)) for b in bounds] + ["+Inf"]
        self.bucket_heads = [
            f"{DURATION}_bucket{{{_labels((*labels, ('le', le)))}}} " for le in les
        ]
        self.count_head = f"{DURATION}_count{{{text}}} "
        self.sum_head = f"{DURATION}_sum{{{text}}} "


class _Target:
    """One configured target: its attempt series (maybe shared) and its own two series."""

    __slots__ = ("key", "misconfigured", "misconfigured_head", "missed", "missed_head", "series")

    def __init__(self, key: TargetKey, series: _Series) -> None:
        self.key = key
        self.series = series
        self.misconfigured = 0
        self.missed = 0
        text = _labels((("service", key[0]), ("target", key[2])))
        self.misconfigured_head = f"{MISCONFIGURED}{{{text}}} "
        self.missed_head = f"{MISSED}_total{{{text}}} "


class AttemptTable:
    """Per-target attempt counters, duration histograms, misconfigured gauges, missed launches."""

    def __init__(self, bounds: tuple[float, ...], *, per_target: bool = True) -> None:
        self.bounds = bounds
        self.per_target = per_target
        self._targets: dict[TargetKey, _Target] = {}
        # Attempt series by their labels' values (per target, or per service and channel).
        self._series: dict[tuple[str, ...], _Series] = {}
        # Render order: targets and series sorted once per prepare().
        self._target_order: list[_Target] = []
        self._series_order: list[_Series] = []

    def prepare(self, keys: Iterable[TargetKey]) -> None:
        """Exactly these targets from now on: new ones at zero, kept ones keep their counts."""
        wanted = set(keys)
        for key in list(self._targets):
            if key not in wanted:
                del self._targets[key]
        for key in wanted:
            if key not in self._targets:
                self._add(key)
        self._reorder()

    def _add(self, key: TargetKey) -> _Target:
        values = key if self.per_target else key[:2]
        series = self._series.get(values)
        if series is None:
            names = ("service", "channel", "target")[: len(values)]
            series = self._series[values] = _Series(
                tuple(zip(names, values, strict=True)), self.bounds
            )
        target = self._targets[key] = _Target(key, series)
        return target

    def _reorder(self) -> None:
        used = {id(t.series) for t in self._targets.values()}
        for values in [v for v, s in self._series.items() if id(s) not in used]:
            del self._series[values]
        self._target_order = [self._targets[k] for k in sorted(self._targets)]
        self._series_order = [self._series[v] for v in sorted(self._series)]

    def _target(self, key: TargetKey) -> _Target:
        target = self._targets.get(key)
        if target is None:
            # An attempt of a target a reload removed while it was in flight: count it.
            target = self._add(key)
            self._reorder()
        return target

    def attempt(
        self, key: TargetKey, outcome: Outcome, duration_s: float, *, misconfigured: bool
    ) -> None:
        """Count one finished attempt of ``key``."""
        target = self._target(key)
        series = target.series
        series.counts[_OUTCOME_INDEX[outcome]] += 1
        series.buckets[bisect.bisect_left(self.bounds, duration_s)] += 1
        series.sum += duration_s
        target.misconfigured = 1 if misconfigured else 0

    def missed(self, key: TargetKey, count: int) -> None:
        """Count launches of ``key`` that could not be made in their second."""
        self._target(key).missed += count

    def render_parts(self) -> Iterator[str]:
        """The page's text of these series, a slice at a time (Prometheus text format 0.0.4)."""
        yield f"# HELP {ATTEMPTS}_total {HELP[ATTEMPTS]}\n# TYPE {ATTEMPTS}_total counter\n"
        series = self._series_order
        for start in range(0, len(series), SLICE):
            yield "".join(
                [
                    f"{head}{count}.0\n"
                    for s in series[start : start + SLICE]
                    for head, count in zip(s.outcome_heads, s.counts, strict=True)
                ]
            )
        yield f"# HELP {DURATION} {HELP[DURATION]}\n# TYPE {DURATION} histogram\n"
        for start in range(0, len(series), SLICE):
            yield "".join([_histogram_text(s) for s in series[start : start + SLICE]])
        targets = self._target_order
        yield f"# HELP {MISCONFIGURED} {HELP[MISCONFIGURED]}\n# TYPE {MISCONFIGURED} gauge\n"
        for start in range(0, len(targets), SLICE):
            yield "".join(
                [
                    f"{t.misconfigured_head}{t.misconfigured}.0\n"
                    for t in targets[start : start + SLICE]
                ]
            )
        yield f"# HELP {MISSED}_total {HELP[MISSED]}\n# TYPE {MISSED}_total counter\n"
        for start in range(0, len(targets), SLICE):
            yield "".join(
                [f"{t.missed_head}{t.missed}.0\n" for t in targets[start : start + SLICE]]
            )

    def collect(self) -> Iterator[Metric]:
        """The same samples as ``prometheus_client`` metric families (for a registry)."""
        names = ["service", "channel", "target"] if self.per_target else ["service", "channel"]
        attempts = CounterMetricFamily(ATTEMPTS, HELP[ATTEMPTS], labels=[*names, "outcome"])
        durations = HistogramMetricFamily(DURATION, HELP[DURATION], labels=names)
        les = [repr(float(b)) for b in self.bounds] + ["+Inf"]
        for s in self._series_order:
            values = [value for _, value in s.labels]
            for outcome, count in zip(_OUTCOMES, s.counts, strict=True):
                attempts.add_metric([*values, outcome.value], count)
            cumulative, total = [], 0
            for le, n in zip(les, s.buckets, strict=True):
                total += n
                cumulative.append((le, float(total)))
            durations.add_metric(values, cumulative, s.sum)
        misconfigured = GaugeMetricFamily(
            MISCONFIGURED, HELP[MISCONFIGURED], labels=["service", "target"]
        )
        missed = CounterMetricFamily(MISSED, HELP[MISSED], labels=["service", "target"])
        for t in self._target_order:
            misconfigured.add_metric([t.key[0], t.key[2]], t.misconfigured)
            missed.add_metric([t.key[0], t.key[2]], t.missed)
        yield from (attempts, durations, misconfigured, missed)


def _histogram_text(s: _Series) -> str:
    lines = []
    total = 0
    for head, n in zip(s.bucket_heads, s.buckets, strict=True):
        total += n
        lines.append(f"{head}{total}.0\n")
    lines.append(f"{s.count_head}{total}.0\n{s.sum_head}{s.sum!r}\n")
    return "".join(lines)
