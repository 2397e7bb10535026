"""The classifier the daemon and replay share: attempts in, final SecondVerdicts and signals out."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from classifier.buckets import Bucket, RunKey, SecondBuckets
from classifier.machine import ServiceMachine, Thresholds
from classifier.signals import IncidentSignal
from classifier.verdict import (
    CHANNEL_BITS,
    COMBINED,
    OUTCOME_INDEX,
    OUTCOMES,
    PROBE_ERROR_INDEX,
    VERDICTS,
    SecondVerdict,
    Verdict,
    combine,
    counting_indexes,
    is_bad,
    judge,
)
from config import Catalog, Config, ServiceConfig
from config.catalog import severity_names
from probe.attempt import TRAFFIC_PREFIX, Attempt, Channel, Source, prober_source

# When nothing is configured, attempts are assumed to finish within the default timeout.
DEFAULT_TIMEOUT_S = 10.0
_VERDICT_INDEX = {verdict: i for i, verdict in enumerate(VERDICTS)}
_NO_DATA = _VERDICT_INDEX[Verdict.NO_DATA]
_ZERO = (0,) * len(OUTCOMES)
# What a second comes to for every service, in service order: the verdict index of each
# channel (lanes order), the combined verdict and the mask of bad channels. Seconds with
# equal attempts come to the same (interned) object, so a run of them is told by identity.
_Result = tuple[tuple[tuple[int, ...], Verdict, int], ...]
# Replay run signatures remembered with their result (cleared when full: memory stays bounded).
_MAX_RESULTS = 4096
_DETECTED_AT = attrgetter("detected_at")


class UnknownServiceError(KeyError):
    """An attempt names a service that is not in the configuration."""

    def __init__(self, service: str) -> None:
        self.service = service
        super().__init__(service)

    def __str__(self) -> str:
        return f"unknown service {self.service!r} (not in the configuration)"


def default_horizon(config: Config) -> int:
    """Whole seconds after a second's end by which all its attempts have finished.

    The longest configured timeout (``DEFAULT_TIMEOUT_S`` when none is), rounded up,
    plus one second of slack for launch lag and the time to record a result.
    """
    timeouts = [c.timeout for c in config.control]
    for service in config.services:
        timeouts += [t.timeout for t in service.api] + [t.timeout for t in service.smtp]
    return math.ceil(max(timeouts, default=DEFAULT_TIMEOUT_S)) + 1


@dataclass(slots=True)
class Finalized:
    """What became final in one ``advance``: verdicts and signals, both in second order."""

    verdicts: list[SecondVerdict] = field(default_factory=list)
    signals: list[IncidentSignal] = field(default_factory=list)


class _Service:
    """One service's channels, verdict totals and state machine."""

    __slots__ = ("channels", "counting", "lanes", "machine", "name", "sources", "totals")

    def __init__(self, config: ServiceConfig, catalog: Catalog) -> None:
        self.name = config.name
        self.counting = counting_indexes(config)
        # The sources judged (``sources:``); None: both, the default, with nothing to filter.
        judged = {Source.PROBE if s == "probes" else Source.TRAFFIC for s in config.sources}
        self.sources: frozenset[Source] | None = (
            None if len(judged) == len(Source) else frozenset(judged)
        )
        # Channels judged every second, in the order first declared or seen.
        self.channels: list[Channel] = []
        # channel name (or "combined") → seconds by verdict, in VERDICTS order.
        self.totals: dict[str, list[int]] = {COMBINED: [0] * len(VERDICTS)}
        # Per channel, what judging a second needs, precomputed: the bucket key, the
        # channel's totals and its bit in the bad-channel mask.
        self.lanes: list[tuple[Channel, tuple[str, Channel], list[int], int]] = []
        self.machine = ServiceMachine(
            config.name,
            Thresholds.from_config(config.classifier),
            production=config.environment == "production",
            names=severity_names(config, catalog),
        )


class Classifier:
    """Buckets attempts, judges final seconds, and feeds each service's state machine.

    Each final second is judged per channel and per service (``combined``); the service
    verdict goes to that service's state machine.

    Live, the daemon calls ``add`` as attempts finish and ``advance(now)`` once a second;
    replay calls ``advance`` with the latest start time seen and ``finish`` at the end of input.
    Times are integer UTC epoch seconds throughout.
    """

    def __init__(
        self,
        services: Sequence[ServiceConfig],
        catalog: Catalog,
        *,
        horizon: int,
        start: int | None = None,
        channels: Mapping[str, Iterable[Channel]] | None = None,
        emit_verdicts: bool = True,
        hold_runs: bool = False,
    ) -> None:
        if hold_runs and emit_verdicts:
            raise ValueError("hold_runs needs emit_verdicts=False")
        self.buckets = SecondBuckets(horizon, start)
        self._services = {s.name: _Service(s, catalog) for s in services}
        self._list = list(self._services.values())
        # Replay only needs the totals; building millions of SecondVerdict objects would
        # dominate its run time, so it can switch them off. The judging is the same.
        self.emit_verdicts = emit_verdicts
        # Replay only: consecutive seconds that come to the same result are held back and
        # fed to the machines as one run (``ServiceMachine.step_many``), so their signals
        # come out when the run ends (``flush``, ``finish``), not as each second is final.
        # Live callers must leave it off: an incident would be reported late.
        self.hold_runs = hold_runs
        # Replay run signature (its keys in arrival order) → result; results by value.
        self._results: dict[tuple[RunKey, ...], _Result] = {}
        self._interned: dict[_Result, _Result] = {}
        # The held run: its result and its length; it ends at buckets.next_second - 1.
        self._held: _Result | None = None
        self._held_count = 0
        for name, declared in (channels or {}).items():
            for channel in declared:
                self._declare(self._service(name), channel)

    @classmethod
    def from_config(
        cls,
        config: Config,
        catalog: Catalog,
        *,
        horizon: int | None = None,
        start: int | None = None,
        emit_verdicts: bool = True,
    ) -> Classifier:
        """A classifier of every configured service, each declaring the channels it probes."""
        declared = {
            s.name: [c for c, targets in ((Channel.API, s.api), (Channel.SMTP, s.smtp)) if targets]
            for s in config.services
        }
        return cls(
            config.services,
            catalog,
            horizon=default_horizon(config) if horizon is None else horizon,
            start=start,
            channels=declared,
            emit_verdicts=emit_verdicts,
        )

    def reconfigure(self, config: Config, catalog: Catalog) -> None:
        """Judge by a reloaded config from now on, keeping every attempt already counted.

        Machines of services still configured keep their state (streaks, open incidents);
        new services start afresh; removed ones are dropped. Seconds not yet final keep
        their attempts and become final under the new config's horizon.
        """
        state = self.snapshot()
        self.buckets.horizon = default_horizon(config)
        self._services = {s.name: _Service(s, catalog) for s in config.services}
        self._list = list(self._services.values())
        self._results.clear()
        self._interned.clear()
        for service in config.services:
            for channel, targets in ((Channel.API, service.api), (Channel.SMTP, service.smtp)):
                if targets:
                    self._declare(self._services[service.name], channel)
        self.restore(state)

    @property
    def services(self) -> list[str]:
        """The service names, in configuration order."""
        return list(self._services)

    def channels(self, service: str) -> list[str]:
        """The channels judged for ``service`` so far."""
        return [str(c) for c in self._service(service).channels]

    def totals(self, service: str) -> dict[str, dict[str, int]]:
        """Final seconds of ``service`` by channel (and ``combined``) and verdict."""
        state = self._service(service)
        totals = {channel: list(counts) for channel, counts in state.totals.items()}
        if self._held is not None:
            lanes, combined, _ = self._held[self._list.index(state)]
            # A channel declared after the run began counted its seconds as no data already.
            for (channel, _, _, _), index in zip(state.lanes, lanes, strict=False):
                totals[str(channel)][index] += self._held_count
            totals[COMBINED][_VERDICT_INDEX[combined]] += self._held_count
        order = [str(c) for c in state.channels] + [COMBINED]
        return {
            channel: {str(v): n for v, n in zip(VERDICTS, totals[channel], strict=True)}
            for channel in order
        }

    @property
    def late(self) -> Mapping[str, int]:
        """Attempts that arrived after their second was final, by service (never silently lost)."""
        return self.buckets.late

    def add(self, attempt: Attempt) -> bool:
        """Count a finished attempt; False if it came too late (see ``late``)."""
        return self.add_raw(
            attempt.service,
            attempt.channel,
            attempt.prober,
            math.floor(attempt.started_at),
            OUTCOME_INDEX[attempt.outcome],
        )

    def add_raw(  # noqa: PLR0917  (a hot path: positional on purpose)
        self, service: str, channel: Channel, prober: str, second: int, outcome: int, count: int = 1
    ) -> bool:
        """``add`` for a reader that parsed the fields itself (``outcome`` indexes OUTCOMES).

        ``count`` attempts of that kind at once (a fleet's finalizer adds pooled counts).
        """
        if channel is not Channel.CONTROL:
            state = self._services.get(service)
            if state is None:
                raise UnknownServiceError(service)
            if channel not in state.channels:
                self._declare(state, channel)
        return self.buckets.add(service, channel, prober, second, outcome, count)

    def judge_bucket(self, bucket: Bucket) -> _Result:
        """What ``bucket``'s second comes to for every service, without judging a second.

        Per service: each channel's verdict index, the combined verdict and the bad-channel
        mask. A fleet asks it whether a late slice would have changed a verdict.
        """
        return self._result(bucket)

    def check(self, service: str, channel: Channel) -> None:
        """Accept attempts of (service, channel) from now on; UnknownServiceError if unknown.

        After it, a reader may give such attempts to ``buckets.add`` (or ``add_run``) directly.
        """
        if channel is not Channel.CONTROL:
            self._declare(self._service(service), channel)

    def advance(self, now: float, out: Finalized | None = None) -> Finalized:
        """Finalize every second whose attempts have all finished at wall time ``now``.

        Results are appended to ``out`` when given (replay reuses one), else to a new one.
        """
        return self._finalize_through(self.buckets.final_through(now), out or Finalized())

    def advance_through(self, last: int, out: Finalized | None = None) -> Finalized:
        """Finalize every second up to and including ``last``, e.g. at shutdown.

        The caller vouches that every attempt launched in those seconds is in.
        """
        return self._finalize_through(last, out or Finalized())

    def finish(self) -> Finalized:
        """Finalize every second up to the latest one seen (end of replay input)."""
        last = self.buckets.max_second
        out = Finalized() if last is None else self._finalize_through(last, Finalized())
        return self.flush(out)

    def flush(self, out: Finalized | None = None) -> Finalized:
        """Feed the held run (``hold_runs``) to the machines; its signals go to ``out``."""
        out = out or Finalized()
        held, count = self._held, self._held_count
        if held is not None and self.buckets.next_second is not None:
            self._release(held, self.buckets.next_second - count, count, out)
        self._held, self._held_count = None, 0
        return out

    def snapshot(self) -> dict[str, Any]:
        """The resumable state (JSON-able): the next second to judge and every machine."""
        self._not_holding()
        return {
            "next_second": self.buckets.next_second,
            "machines": {name: s.machine.snapshot() for name, s in self._services.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Resume from ``snapshot``: seconds missed while down are judged ``no_data``.

        Services added to the configuration since start afresh; removed ones are ignored.
        """
        self._not_holding()
        next_second = state.get("next_second")
        self.buckets.next_second = None if next_second is None else int(next_second)
        machines = state.get("machines") or {}
        for name, service in self._services.items():
            if name in machines:
                service.machine.restore(machines[name])

    def _not_holding(self) -> None:
        if self._held is not None:
            raise ValueError("a run of seconds is held back: flush() first")

    def _service(self, name: str) -> _Service:
        state = self._services.get(name)
        if state is None:
            raise UnknownServiceError(name)
        return state

    def _declare(self, state: _Service, channel: Channel) -> None:
        if channel is Channel.CONTROL or channel in state.channels:
            return
        state.channels.append(channel)
        # Results remembered so far lack the new channel.
        self._results.clear()
        self._interned.clear()
        totals = state.totals[str(channel)] = [0] * len(VERDICTS)
        state.lanes.append((channel, (state.name, channel), totals, CHANNEL_BITS[channel]))
        # Seconds already final had no attempts on this channel: count them as no data, so
        # every channel covers the same span. A no_data channel never changes ``combined``.
        buckets = self.buckets
        if buckets.first_second is not None and buckets.next_second is not None:
            totals[_NO_DATA] = buckets.next_second - buckets.first_second

    def _finalize_through(self, last: int, out: Finalized) -> Finalized:
        if self.hold_runs:
            return self._tally_through(last, out)
        buckets = self.buckets
        second = buckets.next_second
        if second is None:
            return out
        while second <= last:
            bucket = buckets.pop(second)
            if bucket is None:
                # A silent stretch (not one attempt) is judged as one run, whatever its length.
                count = buckets.silent_through(second, last) - second + 1
                buckets.skip(second + count - 1)
                for state in self._list:
                    self._judge_empty(state, second, count, out)
                second += count
                continue
            for state in self._list:
                self._judge(state, second, bucket, out)
            second += 1
        return out

    def _judge_empty(self, state: _Service, second: int, count: int, out: Finalized) -> None:
        """``count`` seconds without a single attempt: no data on every channel and the service."""
        for channel, _, totals, _ in state.lanes:
            totals[_NO_DATA] += count
            if self.emit_verdicts:
                out.verdicts.append(
                    SecondVerdict(state.name, channel, second, Verdict.NO_DATA, _ZERO, 0, count)
                )
        state.totals[COMBINED][_NO_DATA] += count
        if self.emit_verdicts:
            out.verdicts.append(
                SecondVerdict(state.name, COMBINED, second, Verdict.NO_DATA, _ZERO, 0, count)
            )
        state.machine.step_many(second, count, Verdict.NO_DATA, 0, out.signals)

    def _judge(self, state: _Service, second: int, bucket: Bucket, out: Finalized) -> None:
        failed = bucket.failed_probers() if bucket.control else None
        lanes, combined, mask = _judge_lanes(state, bucket, failed)
        for (_, _, totals, _), (verdict, _, _) in zip(state.lanes, lanes, strict=True):
            totals[_VERDICT_INDEX[verdict]] += 1
        state.totals[COMBINED][_VERDICT_INDEX[combined]] += 1
        if self.emit_verdicts:
            summed = [0] * len(OUTCOMES)
            set_aside_all = 0
            traffic_all: list[int] | None = None
            for (channel, key, _, _), (verdict, counts, set_aside) in zip(
                state.lanes, lanes, strict=True
            ):
                traffic = _traffic(state, bucket.attempts.get(key))
                out.verdicts.append(
                    SecondVerdict(
                        state.name, channel, second, verdict, tuple(counts), set_aside, 1, traffic
                    )
                )
                for i, n in enumerate(counts):
                    summed[i] += n
                set_aside_all += set_aside
                if traffic:
                    traffic_all = traffic_all or [0] * len(OUTCOMES)
                    for i, n in enumerate(traffic):
                        traffic_all[i] += n
            out.verdicts.append(
                SecondVerdict(
                    state.name,
                    COMBINED,
                    second,
                    combined,
                    tuple(summed),
                    set_aside_all,
                    1,
                    () if traffic_all is None else tuple(traffic_all),
                )
            )
        state.machine.step(second, combined, mask, out.signals)

    def _tally_through(self, last: int, out: Finalized) -> Finalized:
        """``_finalize_through`` with ``hold_runs``: each second extends the held run or ends it.

        A second's result is looked up by its run signature (the run's keys in arrival
        order: the same for every second of a steady log), so an ordinary second costs a
        tuple and a dict look-up.
        """
        buckets = self.buckets
        second = buckets.next_second
        if second is None or second > last:
            return out
        if buckets.first_second is None:
            buckets.first_second = second
        runs = buckets.runs
        opened = buckets.by_second
        results = self._results
        held, count = self._held, self._held_count
        while second <= last:
            keys = runs.pop(second, None)
            seconds = 1
            if opened and second in opened:
                # Attempts that came through ``add``: judged from their bucket, not remembered.
                bucket = opened.pop(second)
                for service, channel, prober, outcome in keys or ():
                    bucket.add(service, Channel(channel), prober, outcome, 1)
                result = self._result(bucket)
            elif keys is not None:
                signature = tuple(keys)
                result = results.get(signature) or self._learn(signature)
            elif (repeated := buckets.take_repeat(second, last)) is not None:
                # A repeat (``add_repeat``): many seconds of one signature, judged at once.
                signature = tuple(repeated[0])
                seconds = repeated[1]
                result = results.get(signature) or self._learn(signature)
            else:
                # A silent stretch: one result, counted at once, whatever its length.
                seconds = buckets.silent_through(second, last) - second + 1
                result = results.get(()) or self._learn(())
            if result is held:
                count += seconds
            else:
                if held is not None:
                    self._release(held, second - count, count, out)
                held, count = result, seconds
            second += seconds
        self._held, self._held_count = held, count
        buckets.next_second = second
        return out

    def _learn(self, signature: tuple[RunKey, ...]) -> _Result:
        result = self._result(Bucket.of_run(signature))
        if len(self._results) >= _MAX_RESULTS:
            self._results.clear()
        self._results[signature] = result
        return result

    def _result(self, bucket: Bucket) -> _Result:
        """What ``bucket``'s second comes to for every service (interned)."""
        failed = bucket.failed_probers() if bucket.control else None
        parts = []
        for state in self._list:
            lanes, combined, mask = _judge_lanes(state, bucket, failed)
            indexes = tuple(_VERDICT_INDEX[verdict] for verdict, _, _ in lanes)
            parts.append((indexes, combined, mask))
        result = tuple(parts)
        if len(self._interned) >= _MAX_RESULTS:
            self._interned.clear()
        return self._interned.setdefault(result, result)

    def _release(self, held: _Result, first: int, count: int, out: Finalized) -> None:
        """Count a run of ``count`` seconds from ``first`` on and feed it to every machine."""
        signals = out.signals
        start = len(signals)
        signalled = 0
        for state, (lanes, combined, mask) in zip(self._list, held, strict=True):
            # A channel declared after the run began counted its seconds as no data already.
            for (_, _, totals, _), index in zip(state.lanes, lanes, strict=False):
                totals[index] += count
            state.totals[COMBINED][_VERDICT_INDEX[combined]] += count
            before = len(signals)
            state.machine.step_many(first, count, combined, mask, signals)
            signalled += len(signals) > before
        if signalled > 1:
            # Second by second, services signal in configuration order: the same order here.
            # The sort is stable and each service's signals are already in second order.
            signals[start:] = sorted(signals[start:], key=_DETECTED_AT)


def _judge_lanes(
    state: _Service, bucket: Bucket, failed: frozenset[str] | None
) -> tuple[list[tuple[Verdict, Sequence[int], int]], Verdict, int]:
    """Each channel's verdict, counts and set-aside count; the combined verdict; the bad mask."""
    mask = 0
    lanes: list[tuple[Verdict, Sequence[int], int]] = []
    for _, key, _, bit in state.lanes:
        probers = bucket.attempts.get(key)
        set_aside = 0
        counts: Sequence[int]
        if probers is not None and state.sources is not None:
            # The service judges one source only: the other's attempts are not its pool.
            probers = {p: c for p, c in probers.items() if prober_source(p) in state.sources}
        if not probers:
            counts = _ZERO
        elif len(probers) == 1 and not failed:
            counts = next(iter(probers.values()))
        else:
            counts, set_aside = _pool(probers, failed)
        verdict = judge(counts, state.counting, set_aside)
        if is_bad(verdict):
            mask |= bit
        lanes.append((verdict, counts, set_aside))
    return lanes, combine(verdict for verdict, _, _ in lanes), mask


def _traffic(state: _Service, probers: dict[str, list[int]] | None) -> tuple[int, ...]:
    """The counts of one lane that came from ingested traffic (empty: none, or not judged)."""
    if not probers or (state.sources is not None and Source.TRAFFIC not in state.sources):
        return ()
    found: list[int] | None = None
    for prober, counts in probers.items():
        if prober.startswith(TRAFFIC_PREFIX):
            found = found or [0] * len(OUTCOMES)
            for i, n in enumerate(counts):
                found[i] += n
    return () if found is None else tuple(found)


def _pool(probers: dict[str, list[int]], failed: frozenset[str] | None) -> tuple[list[int], int]:
    """Sum the counts of probers whose control did not fail; count the others' as set aside."""
    counts = [0] * len(OUTCOMES)
    set_aside = 0
    for prober, prober_counts in probers.items():
        if failed and prober in failed:
            set_aside += sum(prober_counts) - prober_counts[PROBE_ERROR_INDEX]
            continue
        for i, n in enumerate(prober_counts):
            counts[i] += n
    return counts, set_aside
