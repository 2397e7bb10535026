"""The one timeline notation of the tests: one character a second, run-length tokens allowed.

A timeline is written as the seconds read: ``"30. 90x 120."`` is 30 available seconds,
90 unavailable ones, then 120 available ones (a token that does not start with a number
stands for itself: ``"..x"``). Every character is one second of one stream, and the table
says what that second was and which attempts stand for it:

==== ============= =====================================================================
char verdict       the attempts of the stream in that second
==== ============= =====================================================================
.    available     ok
x    unavailable   timeout
p    partial       ok and timeout (one target fails, the other answers)
?    no data       none
i    inconclusive  timeout, in a second where the prober's control probe failed too
s    unavailable   server_error
c    available     client_error: a 4xx is the request's fault, it does not count
r    available     rate_limited: a 429 does not count either
e    no data       probe_error: slawatch's own fault, set aside
==== ============= =====================================================================

The first five are the verdicts' own characters: a line of judged verdicts (:func:`line`)
is written with them, so a timeline and the verdicts judged from it read alike. The last
four are seconds judged like one of those, made of other outcomes. Which targets see which
outcome is the generator's choice: the classifier tests spread each second's outcomes over
two targets, the incidents tests make one attempt per outcome. Expected incident events sit
beside a timeline as :func:`events` tuples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from classifier.signals import IncidentSignal, Opened, Reopened, Restored, Upgraded
from classifier.verdict import SecondVerdict, Verdict
from probe.attempt import Outcome

# A fixed start for synthetic timelines: 2026-11-21T10:00:00Z, a Saturday.
T0 = 1_795_255_200
# 2026-11-02T10:00:00Z, a Monday within US Eastern business hours (SLA clocks tick).
BUSINESS_T0 = 1_793_613_600


@dataclass(frozen=True, slots=True)
class Second:
    """What one character of a timeline stands for."""

    verdict: Verdict
    # The distinct outcomes the stream's attempts see in that second (none: no attempt).
    outcomes: tuple[Outcome, ...]
    # The prober's own network was down: its control probe failed in that second.
    control_failed: bool = False


SECONDS: Mapping[str, Second] = {
    ".": Second(Verdict.AVAILABLE, (Outcome.OK,)),
    "x": Second(Verdict.UNAVAILABLE, (Outcome.TIMEOUT,)),
    "p": Second(Verdict.PARTIAL, (Outcome.OK, Outcome.TIMEOUT)),
    "?": Second(Verdict.NO_DATA, ()),
    "i": Second(Verdict.INCONCLUSIVE, (Outcome.TIMEOUT,), control_failed=True),
    "s": Second(Verdict.UNAVAILABLE, (Outcome.SERVER_ERROR,)),
    "c": Second(Verdict.AVAILABLE, (Outcome.CLIENT_ERROR,)),
    "r": Second(Verdict.AVAILABLE, (Outcome.RATE_LIMITED,)),
    "e": Second(Verdict.NO_DATA, (Outcome.PROBE_ERROR,)),
}
# Every character of the notation, in the table's order.
CHARS = "".join(SECONDS)
# The character a judged verdict is written with: the first the table gives it.
VERDICT_CHAR: Mapping[Verdict, str] = {
    verdict: next(char for char, second in SECONDS.items() if second.verdict is verdict)
    for verdict in Verdict
}
# (kind, severity, first bad second or restored_at, detected_at), times relative to the start.
Event = tuple[str, int, int, int]


def expand(timeline: str) -> str:
    """One character a second: ``"30. 5x ..x"`` is 30 dots, 5 x's, then ``..x``."""
    out: list[str] = []
    for token in timeline.split():
        match = re.fullmatch(r"(\d+)(.)", token)
        out.append(match.group(2) * int(match.group(1)) if match else token)
    text = "".join(out)
    unknown = sorted(set(text) - set(SECONDS))
    if unknown:
        raise ValueError(f"not timeline characters: {''.join(unknown)!r} in {timeline!r}")
    return text


def line(verdicts: Iterable[SecondVerdict | Verdict | str]) -> str:
    """Verdicts (judged seconds, verdicts or their names) written one character a second."""
    out = []
    for item in verdicts:
        verdict = item.verdict if isinstance(item, SecondVerdict) else Verdict(item)
        out.append(VERDICT_CHAR[verdict])
    return "".join(out)


# Each signal's kind, and the fields holding its severity and its time.
_EVENT_FIELDS: Mapping[type, tuple[str, str, str]] = {
    Opened: ("opened", "severity", "started_at"),
    Upgraded: ("upgraded", "to_severity", "started_at"),
    Restored: ("restored", "severity", "restored_at"),
    Reopened: ("reopened", "severity", "started_at"),
}


def event(signal: IncidentSignal, start: int) -> Event:
    """A signal as an :data:`Event`, its times relative to ``start``."""
    kind, severity, at = _EVENT_FIELDS[type(signal)]
    return (
        kind,
        getattr(signal, severity),
        getattr(signal, at) - start,
        signal.detected_at - start,
    )


def events(signals: Iterable[IncidentSignal], start: int = T0) -> list[Event]:
    """Every signal as an :data:`Event`, for tables of expected incident events."""
    return [event(signal, start) for signal in signals]
