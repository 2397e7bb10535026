"""Evidence by source: what probes and the customer's own traffic saw, and the sentence it allows.

The per-channel runs of an incident's window carry, beside each second's counts, the
part that came from the customer's ingested traffic (``Run.traffic``); the rest came
from synthetic probes. :class:`SourceTally` adds them up over the seconds the contract
counts (unavailable, partial), and :func:`lead_sentence` turns the totals into the first
sentence of the ticket body: the strongest claim the data supports, and no stronger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from classifier.verdict import OUTCOME_INDEX, OUTCOMES, PROBE_ERROR_INDEX
from incidents.model import Run
from probe.attempt import Outcome

SOURCES = ("probe", "traffic")
# Per channel: its name before "probe", and what the customer's attempts on it are called.
CHANNEL_WORDS = {"api": ("API", "API calls"), "smtp": ("SMTP", "SMTP injections")}
_ZERO = (0,) * len(OUTCOMES)
_VERDICTS = ("unavailable", "partial")


def _empty() -> dict[str, Any]:
    return {
        verdict: {source: {"attempts": 0, "failed": 0} for source in SOURCES}
        for verdict in _VERDICTS
    } | {"partial_traffic_only": 0, "partial_probes_only": 0}


class SourceTally:
    """Attempts and counting failures by source, per channel, over the counted seconds.

    ``partial_traffic_only`` counts the partial seconds in which every call of the
    customer's traffic failed while the probes did not all fail (and
    ``partial_probes_only`` the reverse): the seconds a reader most needs explained.
    """

    def __init__(self, counting: Iterable[str]) -> None:
        self.counting = tuple(
            OUTCOME_INDEX[Outcome(name)] for name in counting if name != "probe_error"
        )
        self.channels: dict[str, dict[str, Any]] = {}

    def add(self, runs: Iterable[Run], low: int, high: int) -> None:
        """Count the seconds within ``low..high-1`` of channel runs overlapping them."""
        for run in runs:
            if run.verdict not in _VERDICTS or run.channel not in CHANNEL_WORDS:
                continue
            seconds = min(run.last + 1, high) - max(run.first, low)
            stats = self.channels.setdefault(run.channel, _empty())
            traffic = run.traffic or _ZERO
            probe = tuple(n - t for n, t in zip(run.counts, traffic, strict=True))
            judged: dict[str, tuple[int, int]] = {}
            for source, part in (("probe", probe), ("traffic", traffic)):
                attempts = sum(part) - part[PROBE_ERROR_INDEX]
                failed = sum(part[i] for i in self.counting)
                judged[source] = (attempts, failed)
                totals = stats[run.verdict][source]
                totals["attempts"] += attempts * seconds
                totals["failed"] += failed * seconds
            if run.verdict == "partial":
                traffic_down = _all_failed(judged["traffic"])
                probes_down = _all_failed(judged["probe"])
                if traffic_down and not probes_down and judged["probe"][0]:
                    stats["partial_traffic_only"] += seconds
                if probes_down and not traffic_down and judged["traffic"][0]:
                    stats["partial_probes_only"] += seconds

    def to_json(self) -> dict[str, Any]:
        """The tally per channel (channels with no counted second are left out)."""
        return dict(sorted(self.channels.items()))


def _all_failed(judged: tuple[int, int]) -> bool:
    attempts, failed = judged
    return attempts > 0 and failed == attempts


def _plural(count: int, words: tuple[str, str]) -> str:
    return f"{count:,} {words[0] if count == 1 else words[1]}"


def lead_sentence(
    summary: Mapping[str, Any],
    codes: Mapping[tuple[str, str], Sequence[str]],
    *,
    environment: str,
) -> str:
    """The ticket body's first sentence, built from the summary's ``sources`` and seconds.

    ``codes`` are the replies seen in failing samples by (channel, source), e.g.
    ``("api", "traffic") → ["HTTP 500", "HTTP 503"]``.
    """
    by_channel: Mapping[str, Any] = summary.get("sources", {})
    unavailable_by_channel: Mapping[str, int] = summary.get("unavailable_by_channel", {})
    ours = f"our {environment}" if environment else "our"
    sentences = []
    for channel, words in CHANNEL_WORDS.items():
        unavailable = unavailable_by_channel.get(channel, 0)
        stats = by_channel.get(channel)
        if not unavailable or stats is None:
            continue
        traffic = stats["unavailable"]["traffic"]["attempts"]
        probes = stats["unavailable"]["probe"]["attempts"]
        seconds = "this second" if unavailable == 1 else f"each of these {unavailable:,} seconds"
        if traffic:
            sentence = f"In {seconds}, all {traffic:,} of {ours} {words[1]} failed"
            sentence += _codes(codes, channel, "traffic")
            if probes:
                sentence += ", and so did every synthetic probe"
                sentence += f" ({_plural(probes, ('attempt', 'attempts'))})"
            sentences.append(sentence + ".")
        else:
            sentences.append(
                f"In {seconds}, all {probes:,} of our synthetic {words[0]} probe attempts "
                f"failed{_codes(codes, channel, 'probe')}."
            )
    if sentences:
        return " ".join(sentences)
    return _partial_sentence(by_channel, summary, ours)


def _partial_sentence(by_channel: Mapping[str, Any], summary: Mapping[str, Any], ours: str) -> str:
    """No unavailable second: say why the failing seconds are only partial."""
    sentences = []
    for channel, words in CHANNEL_WORDS.items():
        stats = by_channel.get(channel)
        if stats is None:
            continue
        traffic_only = stats["partial_traffic_only"]
        probes_only = stats["partial_probes_only"]
        if traffic_only:
            sentences.append(
                f"In {_plural(traffic_only, ('second', 'seconds'))}, every one of {ours} "
                f"{words[1]} failed while the synthetic probes succeeded: those seconds are "
                "partial, not unavailable, since the contract counts a second only when all "
                "of the customer's calls in it fail."
            )
        if probes_only:
            sentences.append(
                f"In {_plural(probes_only, ('second', 'seconds'))}, every synthetic "
                f"{words[0]} probe failed while {ours} {words[1]} succeeded: those seconds "
                "are partial, not unavailable, since the contract counts a second only when "
                "all of the customer's calls in it fail."
            )
    if sentences:
        return " ".join(sentences)
    partial = summary.get("seconds", {}).get("partial", 0)
    if partial:
        return (
            f"In {_plural(partial, ('second', 'seconds'))} some calls failed by timeout or "
            "internal service error, but not all: no second was unavailable."
        )
    return "No second of the window was unavailable."


def _codes(codes: Mapping[tuple[str, str], Sequence[str]], channel: str, source: str) -> str:
    found = codes.get((channel, source))
    if not found:
        return ""
    protocol = found[0].split(" ", 1)[0]
    if all(code.startswith(protocol + " ") for code in found):
        return f" ({protocol} " + "/".join(code.split(" ", 1)[1] for code in found) + ")"
    return " (" + ", ".join(found) + ")"
