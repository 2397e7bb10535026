"""Classifier-test timelines: streams in the tests' one notation, turned into replay lines.

The characters are those of ``tests.support.timeline``. A stream is one channel of one
prober (``"api"``, ``"smtp@p2"``); it has two targets, ``t0`` and ``t1``, and each second's
outcomes are spread over them, so ``p`` fails one of the two.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from classifier.replay import ReplayResult, replay
from classifier.signals import IncidentSignal
from config import Config, load_catalog
from probe.attempt import Attempt, Channel, Outcome
from tests.support.configs import config_from_yaml
from tests.support.timeline import SECONDS, T0, expand

HORIZON = 2
TARGETS = 2

CONFIG = """
services:
  - name: svc
    sla: {policy: bird-email-enterprise, calendar: us-eastern}
  - name: stage
    environment: staging
    sla: {policy: sendgrid-email-api/pro, calendar: us-eastern}
  - name: bare
"""


def attempts(streams: Mapping[str, str], service: str = "svc", start: int = T0) -> list[Attempt]:
    """Attempts for ``{"api": timeline, "smtp@p2": timeline, ...}`` (prober ``p1`` by default)."""
    out: list[Attempt] = []
    expanded = {key: expand(timeline) for key, timeline in streams.items()}
    length = max(len(t) for t in expanded.values())
    for offset in range(length):
        for key, timeline in expanded.items():
            if offset >= len(timeline):
                continue
            seen = SECONDS[timeline[offset]]
            channel, _, prober = key.partition("@")
            prober = prober or "p1"
            second = start + offset
            if seen.control_failed:
                out.append(
                    _attempt("_control", Channel.CONTROL, "gw", prober, second, Outcome.TIMEOUT)
                )
            if not seen.outcomes:
                continue
            for index in range(TARGETS):
                outcome = seen.outcomes[index % len(seen.outcomes)]
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
    """A validated config from YAML text (the three services above by default)."""
    return config_from_yaml(text).config


def run(
    items: Iterable[Attempt], cfg: Config | None = None, horizon: int = HORIZON
) -> tuple[ReplayResult, list[IncidentSignal]]:
    """Replay attempts; the result and every signal in order."""
    signals: list[IncidentSignal] = []
    result = replay(
        lines(items), cfg or config(), load_catalog(), horizon=horizon, on_signal=signals.append
    )
    return result, signals
