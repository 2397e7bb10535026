"""What the daemon knows of itself and of each channel: health facts and the last verdicts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from classifier.verdict import COMBINED, SecondVerdict, Verdict
from config import Config
from probe.attempt import Attempt

# /healthz fails when launches have lagged more than this (the loop is starved).
HEALTHY_LAG_S = 1.0


@dataclass(slots=True)
class Health:
    """Liveness and readiness facts, updated by the loops that know them."""

    config_loaded: bool = False
    store_open: bool = False
    store_writable: bool = True
    last_tick: float = 0.0
    # The worst launch lag seen since the last tick (reset each tick).
    lag_window: float = 0.0
    last_lag: float = 0.0
    store_error: str = ""
    last_store_log: float = -math.inf
    pending_batches: int = 0
    stopping: bool = False
    # (service, target) → the detail of its last attempt, while it fails by its own config.
    misconfigured: dict[tuple[str, str], str] = field(default_factory=dict)

    def note(self, attempt: Attempt) -> None:
        """Keep which targets fail through the probe's own configuration, with why."""
        key = (attempt.service, attempt.target)
        if attempt.misconfigured:
            self.misconfigured[key] = attempt.detail
        else:
            self.misconfigured.pop(key, None)


@dataclass(slots=True)
class ChannelStatus:
    """What the API and status page show of one channel: its last final second."""

    verdict: str | None = None
    second: int | None = None
    streak: int = 0


@dataclass(slots=True)
class Board:
    """The last final second of every service's channels (and ``combined``)."""

    channels: dict[str, dict[str, ChannelStatus]] = field(default_factory=dict)

    def reconfigure(self, config: Config) -> None:
        """Make room for every configured service and channel (kept ones keep their status)."""
        for service in config.services:
            channels = self.channels.setdefault(service.name, {})
            for name, targets in (("api", service.api), ("smtp", service.smtp)):
                if targets:
                    channels.setdefault(name, ChannelStatus())
            channels.setdefault(COMBINED, ChannelStatus())

    def record(self, verdict: SecondVerdict) -> int:
        """Take final seconds (one verdict); the channel's unavailable streak after them."""
        status = self.channels.setdefault(verdict.service, {}).setdefault(
            verdict.channel, ChannelStatus()
        )
        unavailable = verdict.verdict is Verdict.UNAVAILABLE
        status.streak = status.streak + verdict.seconds if unavailable else 0
        status.verdict = str(verdict.verdict)
        status.second = verdict.last
        return status.streak

    def of(self, service: str) -> dict[str, ChannelStatus]:
        """The channels of one service (empty when unknown)."""
        return self.channels.get(service, {})
