"""Pooling a fleet: each prober's slice of a second, packed, and the union of all slices judged.

A fleet judges a second on every attempt of every live prober, as the contract's "all such
API calls" reads. Each prober cuts its own attempts into one :class:`ProberSecond` per
second (its counts by lane and outcome and its control result), packed into a few bytes
(:meth:`ProberSecond.pack`), with a bounded sample of its failing attempts
(:meth:`ProberSecond.pack_samples`). The finalizer pools the slices of a second into one
:class:`Bucket` (:func:`pool`) and hands it to the unchanged :class:`Classifier`: probers
whose control failed are set aside by the classifier as for a single instance, and probers
whose clock is off, or every prober when fewer than ``min_probers`` report, are set aside
the same way (a failed control result), so those seconds come out ``inconclusive``.

A second is final once every live prober has published it, or ``horizon + grace`` after
its end (:func:`final_through`, in database time). A slice that arrives later is kept and
reported: :func:`would_change` says whether it would have changed the verdict.

Pure: no clock, no I/O; times are data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain, zip_longest
from typing import Any

from classifier.buckets import Bucket, SecondBuckets
from classifier.samples import Telling
from classifier.verdict import OK_INDEX, OUTCOME_INDEX, OUTCOMES
from config import Config
from probe.attempt import TRAFFIC_PREFIX, Attempt, Channel, Outcome, prober_source

# A (service, channel) pair judged every second; its index in ``fleet_lanes`` is its number
# in a packed slice, the same on every member (they share the judging digest).
LaneKey = tuple[str, Channel]
PACK_VERSION = 1
# The control outcome that marks a prober as set aside (any judged outcome other than ok).
_FAILED_CONTROL = OUTCOME_INDEX[Outcome.TIMEOUT]
_WIDTH = len(OUTCOMES)
# A slice's sample failures stay small: at most this many in all (each lane keeps at most
# ``storage.attempts_per_second``, as a single instance does), each detail and phase cut to
# this many characters. A healthy second carries none.
MAX_SLICE_SAMPLES = 100
MAX_SAMPLE_TEXT = 200


def fleet_lanes(config: Config) -> tuple[LaneKey, ...]:
    """Every (service, channel) with targets or traffic rules, in configuration order.

    A lane's index here is its number in a packed slice.
    """
    lanes: list[LaneKey] = []
    for service in config.services:
        ruled = {rule.channel for rule in service.traffic}
        if service.api or "api" in ruled:
            lanes.append((service.name, Channel.API))
        if service.smtp or "smtp" in ruled:
            lanes.append((service.name, Channel.SMTP))
    return tuple(lanes)


class PackError(ValueError):
    """A packed slice that this configuration cannot read."""


@dataclass(frozen=True, slots=True)
class ProberSecond:
    """One prober's attempts of one second by lane and outcome, and its control result.

    ``counts`` holds only lanes with attempts, each a tuple in OUTCOMES order: the prober's
    own probes. ``traffic`` holds, the same way, the customer's traffic ingested by this
    member in that second (every ``traffic:`` prober summed); it is pooled under the
    member's traffic id, so it is judged as traffic, never set aside by the member's control.
    ``control_judged`` counts the control attempts judged (probe_error dropped) and
    ``control_ok`` those that succeeded; a prober with judged controls and no ok one had
    its network down in that second. ``samples`` are its failing attempts of the second
    (probes and traffic), bounded (:class:`Slicer`), in time order: the finalizer keeps
    them as evidence for the seconds it judges anything but available.
    """

    prober: str
    second: int
    counts: Mapping[LaneKey, tuple[int, ...]] = field(default_factory=dict)
    control_ok: int = 0
    control_judged: int = 0
    traffic: Mapping[LaneKey, tuple[int, ...]] = field(default_factory=dict)
    samples: tuple[Attempt, ...] = ()

    @classmethod
    def of_bucket(
        cls,
        prober: str,
        second: int,
        bucket: Bucket | None,
        samples: Sequence[Attempt] = (),
    ) -> ProberSecond:
        """The slice of ``bucket`` (one second's attempts) that ``prober`` made or ingested."""
        if bucket is None:
            return cls(prober, second, samples=tuple(samples))
        counts = {
            key: tuple(by_prober[prober])
            for key, by_prober in bucket.attempts.items()
            if prober in by_prober and any(by_prober[prober])
        }
        traffic: dict[LaneKey, tuple[int, ...]] = {}
        for key, by_prober in bucket.attempts.items():
            ingested = [c for p, c in by_prober.items() if p.startswith(TRAFFIC_PREFIX)]
            if ingested and any(map(any, ingested)):
                traffic[key] = tuple(map(sum, zip(*ingested, strict=True)))
        ok, judged = bucket.control.get(prober, (0, 0))
        return cls(prober, second, counts, ok, judged, traffic, tuple(samples))

    @property
    def attempts(self) -> int:
        """How many attempts the slice holds (every lane, every outcome, both sources)."""
        return sum(map(sum, self.counts.values())) + sum(map(sum, self.traffic.values()))

    def pack(self, lanes: Sequence[LaneKey]) -> bytes:
        """The counts as bytes: the attempts of every lane, then the non-ok outcomes sparsely.

        Varints throughout: a healthy second of L lanes with one attempt each is L + 4 bytes.
        Ingested traffic follows as (lane, outcome, count) triples, every outcome.
        """
        number = {lane: i for i, lane in enumerate(lanes)}
        unknown = (set(self.counts) | set(self.traffic)) - set(number)
        if unknown:
            raise PackError(f"lanes not in the configuration: {sorted(map(str, unknown))}")
        out = bytearray()
        _varint(out, PACK_VERSION)
        _varint(out, len(lanes))
        sparse: list[tuple[int, int, int]] = []
        for i, lane in enumerate(lanes):
            counts = self.counts.get(lane)
            _varint(out, sum(counts) if counts else 0)
            if counts:
                sparse += [(i, o, n) for o, n in enumerate(counts) if n and o != OK_INDEX]
        traffic = [
            (number[lane], o, n)
            for lane, counts in self.traffic.items()
            for o, n in enumerate(counts)
            if n
        ]
        for entries in (sparse, traffic):
            _varint(out, len(entries))
            for entry in entries:
                for value in entry:
                    _varint(out, value)
        return bytes(out)

    def pack_samples(self, lanes: Sequence[LaneKey]) -> bytes | None:
        """The sample failures as compact JSON (None: there are none), times in microseconds.

        One array per attempt: lane number, target, start within the second, duration,
        outcome number, phase, detail, per-phase timings, and the prober id when it is not
        the slice's (ingested traffic).
        """
        if not self.samples:
            return None
        number = {lane: i for i, lane in enumerate(lanes)}
        rows: list[list[Any]] = []
        for a in self.samples[:MAX_SLICE_SAMPLES]:
            lane = number.get((a.service, a.channel))
            if lane is None:
                raise PackError(
                    f"sample of a lane not in the configuration: {a.service}/{a.channel}"
                )
            row: list[Any] = [
                lane,
                a.target,
                _micros(a.started_at - self.second),
                _micros(a.duration_s),
                OUTCOME_INDEX[a.outcome],
                a.phase[:MAX_SAMPLE_TEXT],
                a.detail[:MAX_SAMPLE_TEXT],
                {k: _micros(v) for k, v in sorted(a.timings.items())},
            ]
            if a.prober != self.prober:
                row.append(a.prober)
            rows.append(row)
        return json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def unpack(
        cls,
        prober: str,
        second: int,
        data: bytes,
        lanes: Sequence[LaneKey],
        *,
        control_ok: int = 0,
        control_judged: int = 0,
        samples: bytes | None = None,
    ) -> ProberSecond:
        """A slice from :meth:`pack`'s (and :meth:`pack_samples`') bytes.

        PackError if its lanes do not match ``lanes``.
        """
        values = _varints(data)
        try:
            version, count = next(values), next(values)
            if version != PACK_VERSION:
                raise PackError(f"packed slice version {version} (this slawatch reads 1)")
            if count != len(lanes):
                raise PackError(f"packed slice has {count} lanes, the configuration {len(lanes)}")
            totals = [next(values) for _ in lanes]
            rows: dict[int, list[int]] = {}
            for _ in range(next(values)):
                lane, outcome, n = next(values), next(values), next(values)
                if lane >= count or outcome >= _WIDTH or outcome == OK_INDEX:
                    raise PackError(f"packed slice entry out of range: {lane}, {outcome}")
                rows.setdefault(lane, [0] * _WIDTH)[outcome] += n
            ingested: dict[int, list[int]] = {}
            for _ in range(next(values)):
                lane, outcome, n = next(values), next(values), next(values)
                if lane >= count or outcome >= _WIDTH:
                    raise PackError(f"packed slice traffic entry out of range: {lane}, {outcome}")
                ingested.setdefault(lane, [0] * _WIDTH)[outcome] += n
        except StopIteration:
            raise PackError("packed slice is truncated") from None
        if next(values, None) is not None:
            raise PackError("packed slice has trailing bytes")
        counts: dict[LaneKey, tuple[int, ...]] = {}
        for i, total in enumerate(totals):
            row = rows.get(i, [0] * _WIDTH)
            ok = total - sum(row)
            if ok < 0:
                raise PackError(f"packed slice lane {i} has more failures than attempts")
            row[OK_INDEX] = ok
            if total:
                counts[lanes[i]] = tuple(row)
        traffic = {lanes[i]: tuple(row) for i, row in sorted(ingested.items())}
        kept = () if samples is None else _unpack_samples(prober, second, samples, lanes)
        return cls(prober, second, counts, control_ok, control_judged, traffic, kept)


def _micros(seconds: float) -> int:
    return max(0, round(seconds * 1_000_000))


def _unpack_samples(
    prober: str, second: int, data: bytes, lanes: Sequence[LaneKey]
) -> tuple[Attempt, ...]:
    """The attempts of :meth:`ProberSecond.pack_samples`; PackError if they do not fit ``lanes``."""
    try:
        rows = json.loads(data)
        out = []
        for row in rows:
            lane, target, start, duration, outcome, phase, detail, timings = row[:8]
            who = str(row[8]) if len(row) > 8 else prober
            if not (0 <= lane < len(lanes) and 0 <= outcome < _WIDTH):
                raise PackError(f"packed sample out of range: lane {lane}, outcome {outcome}")
            service, channel = lanes[lane]
            out.append(
                Attempt(
                    service=service,
                    channel=channel,
                    target=str(target),
                    prober=who,
                    started_at=second + start / 1_000_000,
                    duration_s=duration / 1_000_000,
                    outcome=OUTCOMES[outcome],
                    phase=str(phase),
                    detail=str(detail),
                    timings={str(k): v / 1_000_000 for k, v in timings.items()},
                    source=prober_source(who),
                )
            )
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise PackError(f"packed samples unreadable: {exc}") from None
    return tuple(out)


def _varint(out: bytearray, value: int) -> None:
    if value < 0:
        raise PackError("negative count")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _varints(data: bytes) -> Iterator[int]:
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        yield value
        value = shift = 0
    if shift:
        raise PackError("packed slice is truncated")


class Slicer:
    """A prober's own attempts per second, cut into one ProberSecond per second once final.

    A second is final for the prober ``horizon`` seconds after its end (every attempt
    launched in it has finished). Every second gets a slice, attempts or not, so the
    prober's watermark has no holes. Each slice also carries the second's failing
    attempts: per lane the ``samples_per_second`` most telling (the selection a single
    instance keeps, ``classifier/samples.py``), at most ``MAX_SLICE_SAMPLES`` in all.
    """

    def __init__(self, prober: str, horizon: int, start: int, samples_per_second: int = 0) -> None:
        self.prober = prober
        self.buckets = SecondBuckets(horizon, start)
        self.samples_per_second = samples_per_second
        # Failing attempts of the open seconds: second → lane → the most telling ones.
        self._samples: dict[int, dict[LaneKey, Telling]] = {}

    @property
    def next_second(self) -> int:
        """The next second to cut."""
        second = self.buckets.next_second
        if second is None:  # pragma: no cover  (a start second is always given)
            raise ValueError("no start second")
        return second

    def add(self, attempt: Attempt) -> bool:
        """Count a finished attempt of this prober (or traffic it ingested); False if too late."""
        traffic = attempt.prober.startswith(TRAFFIC_PREFIX)
        prober = attempt.prober if traffic else self.prober
        second = math.floor(attempt.started_at)
        taken = self.buckets.add(
            attempt.service, attempt.channel, prober, second, OUTCOME_INDEX[attempt.outcome]
        )
        if (
            taken
            and attempt.outcome is not Outcome.OK
            and attempt.channel is not Channel.CONTROL
            and self.samples_per_second > 0
        ):
            lanes = self._samples.setdefault(second, {})
            lane = (attempt.service, attempt.channel)
            held = lanes.get(lane)
            if held is None:
                held = lanes[lane] = Telling(self.samples_per_second)
            held.add(_bounded(attempt, prober))
        return taken

    def take(self, now: float) -> list[ProberSecond]:
        """The slices of every second final at ``now`` not cut yet, in second order."""
        return self.take_through(self.buckets.final_through(now))

    def take_through(self, last: int) -> list[ProberSecond]:
        """The slices of every second up to ``last`` (at shutdown: all launched attempts are in)."""
        out = []
        for second in range(self.next_second, last + 1):
            samples = _spread(self._samples.pop(second, {}))
            out.append(
                ProberSecond.of_bucket(self.prober, second, self.buckets.pop(second), samples)
            )
        return out


def _bounded(attempt: Attempt, prober: str) -> Attempt:
    """A sample as a slice carries it: its prober's id, its texts cut to ``MAX_SAMPLE_TEXT``."""
    if (
        attempt.prober == prober
        and len(attempt.detail) <= MAX_SAMPLE_TEXT
        and len(attempt.phase) <= MAX_SAMPLE_TEXT
    ):
        return attempt
    return replace(
        attempt,
        prober=prober,
        detail=attempt.detail[:MAX_SAMPLE_TEXT],
        phase=attempt.phase[:MAX_SAMPLE_TEXT],
    )


def _spread(lanes: Mapping[LaneKey, Telling]) -> list[Attempt]:
    """At most ``MAX_SLICE_SAMPLES`` of the lanes' samples, taken in turn, in time order.

    Each lane gives its most telling first, so a total outage of many lanes keeps some
    evidence of every lane before it keeps more of any.
    """
    ranked = [held.ranked() for held in lanes.values()]
    turns = chain.from_iterable(zip_longest(*ranked))
    kept = [a for a in turns if a is not None][:MAX_SLICE_SAMPLES]
    return sorted(kept, key=lambda a: a.started_at)


@dataclass(frozen=True, slots=True)
class Pooled:
    """One second of a fleet, pooled: the union of the slices and who it came from.

    ``reporting`` are the probers whose attempts were judged, ``set_aside`` those who
    published but were set aside (control failed, clock off, or too few probers), and
    ``expected`` the live probers when the second was judged.
    """

    second: int
    bucket: Bucket
    reporting: tuple[str, ...]
    set_aside: tuple[str, ...]
    expected: tuple[str, ...]

    def entries(self) -> Iterator[tuple[str, Channel, str, int, int]]:
        """(service, channel, prober, outcome index, count) of every non-zero count."""
        for (service, channel), by_prober in self.bucket.attempts.items():
            for prober, counts in by_prober.items():
                for outcome, n in enumerate(counts):
                    if n:
                        yield service, channel, prober, outcome, n
        for prober, (ok, judged) in self.bucket.control.items():
            if ok:
                yield "", Channel.CONTROL, prober, OK_INDEX, ok
            if judged - ok:
                yield "", Channel.CONTROL, prober, _FAILED_CONTROL, judged - ok


def pool(
    second: int,
    rows: Iterable[ProberSecond],
    *,
    live: Iterable[str],
    unhealthy: Iterable[str] = (),
    min_probers: int = 1,
) -> Pooled:
    """The union of the slices of ``second`` (the order of ``rows`` does not matter).

    ``unhealthy`` probers (their clock is off) are set aside like probers whose control
    failed; when fewer than ``min_probers`` remain, every prober is set aside and the
    second is inconclusive (or no data, without a single attempt).
    """
    bad = set(unhealthy)
    slices = sorted((row for row in rows if row.second == second), key=lambda row: row.prober)
    bucket = Bucket()
    judged: list[str] = []
    aside: list[str] = []
    for row in slices:
        _add_counts(bucket, row.prober, row.counts)
        _add_counts(bucket, TRAFFIC_PREFIX + row.prober, row.traffic)
        if row.prober in bad:
            bucket.control[row.prober] = [0, 1]
            aside.append(row.prober)
            continue
        if row.control_judged:
            bucket.control[row.prober] = [row.control_ok, row.control_judged]
        if row.control_judged and not row.control_ok:
            aside.append(row.prober)
        else:
            judged.append(row.prober)
    if len(judged) < min_probers and min_probers > 1:
        # Too few vantage points: nothing of the second is judged, ingested traffic included
        # (with the default of 1, traffic stands on its own, as on a single instance).
        for prober in judged + [TRAFFIC_PREFIX + row.prober for row in slices if row.traffic]:
            bucket.control[prober] = [0, 1]
        aside = sorted(aside + judged)
        judged = []
    return Pooled(second, bucket, tuple(judged), tuple(aside), tuple(sorted(set(live))))


def _add_counts(bucket: Bucket, prober: str, counts: Mapping[LaneKey, tuple[int, ...]]) -> None:
    for (service, channel), row in counts.items():
        for outcome, n in enumerate(row):
            if n:
                bucket.add(service, channel, prober, outcome, n)


def final_through(
    *,
    watermarks: Mapping[str, int | None],
    live: Iterable[str],
    now: float,
    horizon: int,
    grace: float,
) -> int:
    """The last second final at database time ``now``.

    Final once every live prober has published it (its watermark reached it), or once
    ``horizon + grace`` seconds have passed its end, whichever comes first.
    """
    by_time = math.floor(now - grace) - 1 - horizon
    marks = [watermarks.get(prober) for prober in set(live)]
    if not marks or any(mark is None for mark in marks):
        return by_time
    return max(by_time, min(mark for mark in marks if mark is not None))


def would_change(
    judge: Callable[[Bucket], object],
    rows: Sequence[ProberSecond],
    late: ProberSecond,
    *,
    live: Iterable[str],
    unhealthy: Iterable[str] = (),
    min_probers: int = 1,
) -> bool:
    """Whether a slice that came after its second was judged would have changed the verdict.

    ``rows`` are the slices the second was judged on; ``judge`` gives what a bucket comes
    to (``Classifier.judge_bucket``).
    """
    live, unhealthy = list(live), list(unhealthy)
    before = pool(late.second, rows, live=live, unhealthy=unhealthy, min_probers=min_probers)
    after = pool(
        late.second,
        [*(row for row in rows if row.prober != late.prober), late],
        live=live,
        unhealthy=unhealthy,
        min_probers=min_probers,
    )
    return judge(before.bucket) != judge(after.bucket)
