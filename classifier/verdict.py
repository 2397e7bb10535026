"""The contract's per-second rule (DESIGN.md §4): one second's attempt counts to one verdict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from config import ServiceConfig
from probe.attempt import Channel, Outcome


class Verdict(StrEnum):
    """What one second of one channel (or of the service) was, by the contract's definition."""

    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"
    PARTIAL = "partial"
    INCONCLUSIVE = "inconclusive"
    NO_DATA = "no_data"


# The order verdicts are listed in outputs (replay JSON, metrics).
VERDICTS: tuple[Verdict, ...] = (
    Verdict.AVAILABLE,
    Verdict.UNAVAILABLE,
    Verdict.PARTIAL,
    Verdict.INCONCLUSIVE,
    Verdict.NO_DATA,
)
# "and/or": the service verdict is the first of these that any channel has.
COMBINE_PRECEDENCE: tuple[Verdict, ...] = (
    Verdict.UNAVAILABLE,
    Verdict.PARTIAL,
    Verdict.AVAILABLE,
    Verdict.INCONCLUSIVE,
    Verdict.NO_DATA,
)
RANK = {verdict: rank for rank, verdict in enumerate(COMBINE_PRECEDENCE)}

# Counts of a second are tuples indexed by this order (the Outcome enum's own order).
OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
OUTCOME_INDEX: dict[Outcome, int] = {outcome: i for i, outcome in enumerate(OUTCOMES)}
PROBE_ERROR_INDEX = OUTCOME_INDEX[Outcome.PROBE_ERROR]
OK_INDEX = OUTCOME_INDEX[Outcome.OK]

# The channel name of the service-level verdict.
COMBINED = "combined"
# Bits of a channel in a "which channels were bad" mask (kept small: it rides on every bad second).
CHANNEL_BITS: dict[Channel, int] = {Channel.API: 1, Channel.SMTP: 2}


def channels_of_mask(mask: int) -> tuple[str, ...]:
    """The channel names whose bits are set in ``mask``, in a stable order."""
    return tuple(str(channel) for channel, bit in CHANNEL_BITS.items() if mask & bit)


def counting_indexes(service: ServiceConfig) -> tuple[int, ...]:
    """Indexes (into OUTCOMES) of the outcomes that count toward Unavailability for ``service``."""
    counting = {Outcome(name) for name in service.counts_as_unavailable}
    # probe_error is slawatch's own failure: it is dropped before judging, so it can never count.
    counting.discard(Outcome.PROBE_ERROR)
    return tuple(sorted(OUTCOME_INDEX[outcome] for outcome in counting))


def judge(counts: Sequence[int], counting: tuple[int, ...], set_aside: int) -> Verdict:
    """The verdict of one channel's second from its judged counts and its set-aside attempt count.

    ``counts`` are the attempts of probers whose control probe did not fail, by outcome
    (OUTCOMES order); ``set_aside`` counts those of probers whose control probe failed.
    ``probe_error`` attempts are slawatch's own failures and are dropped first.
    """
    judged = sum(counts) - counts[PROBE_ERROR_INDEX]
    if judged == 0:
        return Verdict.INCONCLUSIVE if set_aside else Verdict.NO_DATA
    failed = 0
    for index in counting:
        failed += counts[index]
    if failed == 0:
        return Verdict.AVAILABLE
    return Verdict.UNAVAILABLE if failed == judged else Verdict.PARTIAL


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """The service-level verdict of one second: the first of COMBINE_PRECEDENCE any channel has."""
    return min(verdicts, key=RANK.__getitem__, default=Verdict.NO_DATA)


def is_bad(verdict: Verdict) -> bool:
    """True for the verdicts that count against the provider (unavailable, partial)."""
    return verdict is Verdict.UNAVAILABLE or verdict is Verdict.PARTIAL


@dataclass(frozen=True, slots=True)
class SecondVerdict:
    """The final verdict of one second of one channel (or ``combined``) of one service.

    ``second`` is integer UTC epoch seconds (the second ``[second, second + 1)``).
    ``counts`` are the judged attempts by outcome in OUTCOMES order (probe_error included,
    for evidence, though it never counts); for ``combined`` they are summed over channels.
    ``set_aside`` is the number of attempts set aside because their prober's control failed.
    ``seconds`` is how many consecutive seconds from ``second`` on the verdict stands for:
    more than one only for a silent stretch (no attempt at all), judged as one run.
    ``traffic`` is the part of ``counts`` that came from the customer's ingested traffic
    (OUTCOMES order; empty when none did): the rest came from probes.
    """

    service: str
    channel: str
    second: int
    verdict: Verdict
    counts: tuple[int, ...]
    set_aside: int = 0
    seconds: int = 1
    traffic: tuple[int, ...] = ()

    @property
    def last(self) -> int:
        """The last second the verdict stands for."""
        return self.second + self.seconds - 1

    def by_outcome(self) -> Mapping[str, int]:
        """The non-zero counts, keyed by outcome name."""
        return {str(o): n for o, n in zip(OUTCOMES, self.counts, strict=True) if n}


def by_source(counts: Sequence[int], traffic: Sequence[int]) -> dict[str, dict[str, int]]:
    """Counts split by source (``probe``, ``traffic``): the non-zero counts of each, by outcome."""
    traffic = traffic or (0,) * len(OUTCOMES)
    probe = [n - t for n, t in zip(counts, traffic, strict=True)]
    return {
        source: {str(o): n for o, n in zip(OUTCOMES, part, strict=True) if n}
        for source, part in (("probe", probe), ("traffic", traffic))
    }
