"""Timeline helpers for classifier tests: one character a second, turned into replay lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from classifier.replay import ReplayResult, replay
from classifier.signals import IncidentSignal, Opened, Reopened, Restored, Upgraded
from config import Config, load_catalog, load_config_text
from probe.attempt import Attempt, Channel, Outcome

T0 = 1_795_255_200  # 2026-11-21T10:00:00Z
HORIZON = 2

CONFIG = """
services:
  - name: svc
    sla: {policy: bird-email-enterprise, calendar: us-eastern}
  - name: stage
    environment: staging
    sla: {policy: sendgrid-email-api/pro, calendar: us-eastern}
  - name: bare
"""

# One character a second. Every stream has two targets, so `p` can fail one of them.
# `i`: the prober's control probe failed and its own attempts timed out (its network was down).
CHARS: dict[str, tuple[Outcome, Outcome] | None] = {
    ".": (Outcome.OK, Outcome.OK),
    "x": (Outcome.TIMEOUT, Outcome.TIMEOUT),
    "s": (Outcome.SERVER_ERROR, Outcome.SERVER_ERROR),
    "c": (Outcome.CLIENT_ERROR, Outcome.CLIENT_ERROR),
    "r": (Outcome.RATE_LIMITED, Outcome.RATE_LIMITED),
    "e": (Outcome.PROBE_ERROR, Outcome.PROBE_ERROR),
    "p": (Outcome.OK, Outcome.TIMEOUT),
    "i": (Outcome.TIMEOUT, Outcome.TIMEOUT),
    "?": None,
}


def expand(timeline: str) -> str:
    """Expand run-length tokens: ``"30. 5x ..x"`` is 30 dots, 5 x's, then ``..x``."""
    out = []
    for token in timeline.split():
        match = re.fullmatch(r"(\d+)(.)", token)
        out.append(match.group(2) * int(match.group(1)) if match else token)
    return "".join(out)


def attempts(streams: Mapping[str, str], service: str = "svc", start: int = T0) -> list[Attempt]:
    """Attempts for ``{"api": timeline, "smtp@p2": timeline, ...}`` (prober ``p1`` by default)."""
    out: list[Attempt] = []
    expanded = {key: expand(timeline) for key, timeline in streams.items()}
    length = max(len(t) for t in expanded.values())
    for offset in range(length):
        for key, timeline in expanded.items():
            if offset >= len(timeline):
                continue
            char = timeline[offset]
            channel, _, prober = key.partition("@")
            prober = prober or "p1"
            second = start + offset
            if char == "i":
                out.append(
                    _attempt("_control", Channel.CONTROL, "gw", prober, second, Outcome.TIMEOUT)
                )
            pair = CHARS[char]
            if pair is None:
                continue
            for index, outcome in enumerate(pair):
                out.append(
                    _attempt(
                        service,
                        Channel(channel),
                        f"t{index}",
                        prober,
                        second + 0.1 * index,
                        outcome,
                    )
                )
    return out


def _attempt(  # noqa: PLR0917  (a terse record builder for tables)
    service: str, channel: Channel, target: str, prober: str, started: float, outcome: Outcome
) -> Attempt:
    return Attempt(
        service=service,
        channel=channel,
        target=target,
        prober=prober,
        started_at=started + 0.25,
        duration_s=0.05,
        outcome=outcome,
    )


def lines(items: Iterable[Attempt]) -> list[bytes]:
    """The attempts as replay JSON Lines."""
    return [json.dumps(a.to_json()).encode() + b"\n" for a in items]


def config(text: str = CONFIG) -> Config:
    """A validated config from YAML text."""
    return load_config_text(text, "test.yaml", {}).config


def run(
    items: Iterable[Attempt], cfg: Config | None = None, horizon: int = HORIZON
) -> tuple[ReplayResult, list[IncidentSignal]]:
    """Replay attempts; the result and every signal in order."""
    signals: list[IncidentSignal] = []
    result = replay(
        lines(items), cfg or config(), load_catalog(), horizon=horizon, on_signal=signals.append
    )
    return result, signals


def events(signals: Iterable[IncidentSignal], start: int = T0) -> list[tuple[object, ...]]:
    """Signals as short tuples with times relative to ``start``, for tables."""
    out: list[tuple[object, ...]] = []
    for s in signals:
        if isinstance(s, Opened):
            out.append(("opened", s.severity, s.started_at - start, s.detected_at - start))
        elif isinstance(s, Upgraded):
            out.append(("upgraded", s.to_severity, s.started_at - start, s.detected_at - start))
        elif isinstance(s, Restored):
            out.append(("restored", s.restored_at - start, s.detected_at - start))
        elif isinstance(s, Reopened):
            out.append(("reopened", s.severity, s.started_at - start, s.detected_at - start))
    return out
