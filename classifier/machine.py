"""The per-service classification state machine (DESIGN.md §5): verdicts in, signals out."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from classifier.signals import IncidentSignal, Opened, Reopened, Restored, Upgraded
from classifier.verdict import Verdict, channels_of_mask
from config.model import ClassifierConfig
from config.timetext import format_time

# Version 2 keeps the degraded window as runs; version 1 snapshots (one entry a second)
# are still read.
SNAPSHOT_VERSION = 2


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The classifier thresholds of one service, in whole seconds (config durations are floats)."""

    critical_after: int
    recover_after: int
    degraded_window: int
    degraded_min_seconds: int
    # Exact, so that e.g. 0.07 x 100 is 7 and not 7.000000000000001 (whose ceiling is 8).
    degraded_ratio: Fraction
    max_gap: int
    reopen_within: int

    @classmethod
    def from_config(cls, config: ClassifierConfig) -> Thresholds:
        """Round config durations to whole seconds: counts up, tolerances down."""
        return cls(
            critical_after=max(1, math.ceil(config.critical_after)),
            recover_after=max(1, math.ceil(config.recover_after)),
            degraded_window=max(1, math.ceil(config.degraded_window)),
            degraded_min_seconds=config.degraded_min_seconds,
            degraded_ratio=Fraction(repr(config.degraded_ratio)),
            max_gap=math.floor(config.max_gap),
            reopen_within=math.floor(config.reopen_within),
        )

    def degraded_needed(self, observed: int) -> int:
        """Bad seconds the degraded condition needs when ``observed`` seconds were observed.

        Integer arithmetic (the ceiling of ratio x observed), so a long window costs no
        table and a step no Fraction.
        """
        ratio = self.degraded_ratio
        return max(self.degraded_min_seconds, -(-ratio.numerator * observed // ratio.denominator))


def incident_id(service: str, started_at: int) -> str:
    """A deterministic incident id: service and first bad second, e.g. ``api-20261121T100140Z``."""
    return f"{service}-{format_time(started_at).replace('-', '').replace(':', '')}"


class ServiceMachine:
    """Consumes one service's combined verdicts, one second at a time, and emits incident signals.

    A plain object with explicit state so that the daemon can snapshot it with the open
    incident and restore it after a restart (``snapshot`` / ``restore``).
    """

    def __init__(
        self,
        service: str,
        thresholds: Thresholds,
        *,
        production: bool = True,
        names: Mapping[int, str] | None = None,
    ) -> None:
        self.service = service
        self.thresholds = thresholds
        # Non-production services only ever get severity 3 (SendGrid: P1/P2 are production only).
        self.production = production
        self.names: Mapping[int, str] = names or {n: f"Severity {n}" for n in (1, 2, 3)}
        self._needed = thresholds.degraded_needed
        # step_many's shortcuts rely on thresholds config validation guarantees: a streak of
        # at least one second, and a degraded threshold of at least one bad second that never
        # falls as observed seconds grow (a ratio of at least 0). Anything else is stepped
        # second by second.
        self._skippable = (
            thresholds.critical_after >= 1
            and thresholds.degraded_needed(0) >= 1
            and thresholds.degraded_ratio >= 0
        )

        # Seconds must come contiguously: gaps in the window arithmetic would be miscounted.
        self.last_second: int | None = None

        # The critical streak: unavailable seconds, tolerating gaps of up to max_gap
        # no_data/inconclusive seconds that neither extend nor break it.
        self.streak_start: int | None = None
        self.streak_len = 0
        self.streak_gap = 0
        self.streak_mask = 0

        # The degraded window: the first second it may count (machine start, or just after
        # a restore, which clears it), and its bad and unobserved seconds as runs of
        # consecutive seconds, so memory follows the verdict changes, not the window length.
        self.window_floor: int | None = None
        self.bad = SecondRuns()  # runs of bad seconds, each with its bad-channel mask
        self.unobserved = SecondRuns()

        # The open incident, if any, and its run of available seconds toward a restore.
        self.incident: str | None = None
        self.severity = 0
        self.incident_mask = 0
        self.good_start = 0
        self.good_len = 0

        # The last restored incident, which a new condition within reopen_within reopens.
        self.restored_incident: str | None = None
        self.restored_severity = 0
        self.restored_at = 0
        self.restored_mask = 0

    def step(self, second: int, verdict: Verdict, bad_mask: int, out: list[IncidentSignal]) -> None:
        """Consume the combined verdict of ``second`` (with the mask of its bad channels)."""
        last = self.last_second
        if last is not None and second != last + 1:
            raise ValueError(f"{self.service}: second {second} does not follow {last}")
        self.last_second = second
        unavailable = verdict is Verdict.UNAVAILABLE
        unobserved = verdict is Verdict.NO_DATA or verdict is Verdict.INCONCLUSIVE
        self._count_streak(second, unavailable, unobserved, bad_mask)
        degraded = self._count_window(second, verdict, unobserved, bad_mask)
        critical = self.streak_len >= self.thresholds.critical_after
        if self.incident is None:
            if critical or degraded:
                self._open(second, critical=critical, degraded=degraded, out=out)
            return
        self.incident_mask |= bad_mask
        if verdict is Verdict.AVAILABLE:
            if self.good_len == 0:
                self.good_start = second
            self.good_len += 1
            if self.good_len >= self.thresholds.recover_after:
                self._restore(second, out)
            return
        self.good_len = 0
        if critical and self.production and self.severity > 1:
            self._upgrade(second, out)

    def step_many(
        self, second: int, count: int, verdict: Verdict, bad_mask: int, out: list[IncidentSignal]
    ) -> None:
        """Consume ``count`` seconds from ``second`` on, all with ``verdict`` and ``bad_mask``.

        Exactly what ``count`` calls of ``step`` do. Stretches in which no signal can come
        (``_quiet``) are applied at once; the seconds around a change of state go one by one.
        """
        end = second + count
        while second < end:
            quiet = self._quiet(second, end - second, verdict)
            if quiet:
                self._skip(second, quiet, verdict, bad_mask)
                second += quiet
            else:
                self.step(second, verdict, bad_mask, out)
                second += 1

    def _quiet(self, second: int, remaining: int, verdict: Verdict) -> int:
        """How many of the next ``remaining`` steps, all ``verdict``, surely emit no signal.

        Available: the streak breaks at once; with an incident open only the restore can
        come, at a known step; without, the degraded condition, false now, stays false,
        since each available second can only drop bad seconds from the window and add
        observed ones, and the threshold never falls as observed seconds grow.
        No data or inconclusive: quiet once no streak is running and no bad second is left
        in the window (then the window holds no bad second at all). Unavailable or partial:
        quiet only with an incident open that cannot be upgraded any more.
        """
        if not self._skippable or self.last_second != second - 1 or self.window_floor is None:
            return 0
        if verdict is Verdict.AVAILABLE:
            if self.incident is not None:
                return max(0, min(remaining, self.thresholds.recover_after - self.good_len - 1))
            # After a step without an incident it was false (else it would have opened);
            # checked anyway for a state loaded by ``restore``.
            quiet = not self._degraded_now()
        elif verdict is Verdict.NO_DATA or verdict is Verdict.INCONCLUSIVE:
            low = max(second - self.thresholds.degraded_window + 1, self.window_floor)
            quiet = self.streak_start is None and not (self.bad and self.bad.last >= low)
        else:
            quiet = self.incident is not None and not (
                verdict is Verdict.UNAVAILABLE and self.production and self.severity > 1
            )
        return remaining if quiet else 0

    def _degraded_now(self) -> bool:
        """The degraded condition over the window as of the last second stepped."""
        assert self.last_second is not None  # noqa: S101  (checked by _quiet)
        assert self.window_floor is not None  # noqa: S101
        last = self.last_second
        low = max(last - self.thresholds.degraded_window + 1, self.window_floor)
        self._evict(low)
        return self.bad.count >= self._needed(last - low + 1 - self.unobserved.count)

    def _evict(self, low: int) -> None:
        self.bad.evict(low)
        self.unobserved.evict(low)

    def _skip(self, second: int, count: int, verdict: Verdict, bad_mask: int) -> None:
        """The state after ``count`` quiet steps of ``verdict`` from ``second`` on (see _quiet)."""
        assert self.window_floor is not None  # noqa: S101  (checked by _quiet)
        last = second + count - 1
        self.last_second = last
        low = max(last - self.thresholds.degraded_window + 1, self.window_floor)
        self._evict(low)
        # The seconds of this stretch still inside the window at its end.
        kept = range(max(second, low), last + 1)
        if verdict is Verdict.AVAILABLE:
            self._break_streak()
            if self.incident is not None:
                self.incident_mask |= bad_mask
                if self.good_len == 0:
                    self.good_start = second
                self.good_len += count
            return
        self.incident_mask |= bad_mask
        self.good_len = 0
        if verdict is Verdict.NO_DATA or verdict is Verdict.INCONCLUSIVE:
            self.unobserved.add(kept.start, kept.stop - 1)
            return
        if verdict is Verdict.UNAVAILABLE:
            if self.streak_start is None:
                self.streak_start = second
                self.streak_len = 0
                self.streak_mask = 0
            self.streak_len += count
            self.streak_gap = 0
            self.streak_mask |= bad_mask
        else:
            self._break_streak()
        self.bad.add(kept.start, kept.stop - 1, bad_mask)

    def _count_streak(self, second: int, unavailable: bool, unobserved: bool, mask: int) -> None:
        """Extend, tolerate (a gap of at most max_gap) or break the critical streak."""
        if unavailable:
            if self.streak_start is None:
                self.streak_start = second
                self.streak_len = 0
                self.streak_mask = 0
            self.streak_len += 1
            self.streak_gap = 0
            self.streak_mask |= mask
        elif self.streak_start is not None:
            if unobserved and self.streak_gap < self.thresholds.max_gap:
                self.streak_gap += 1
            else:
                self._break_streak()

    def _count_window(self, second: int, verdict: Verdict, unobserved: bool, mask: int) -> bool:
        """Slide the degraded window over ``second``; True when the degraded condition holds."""
        if self.window_floor is None:
            self.window_floor = second
        low = max(second - self.thresholds.degraded_window + 1, self.window_floor)
        bad = self.bad
        gaps = self.unobserved
        bad.evict(low)
        gaps.evict(low)
        if verdict is Verdict.UNAVAILABLE or verdict is Verdict.PARTIAL:
            bad.add(second, second, mask)
        elif unobserved:
            gaps.add(second, second)
        return bad.count >= self._needed(second - low + 1 - gaps.count)

    def _upgrade(self, second: int, out: list[IncidentSignal]) -> None:
        assert self.incident is not None  # noqa: S101  (only called with an incident open)
        out.append(
            Upgraded(
                service=self.service,
                incident=self.incident,
                from_severity=self.severity,
                to_severity=1,
                provider_severity=self.names[1],
                started_at=second if self.streak_start is None else self.streak_start,
                detected_at=second + 1,
                channels=channels_of_mask(self.incident_mask),
            )
        )
        self.severity = 1

    def _break_streak(self) -> None:
        self.streak_start = None
        self.streak_len = 0
        self.streak_gap = 0
        self.streak_mask = 0

    def _open(
        self, second: int, *, critical: bool, degraded: bool, out: list[IncidentSignal]
    ) -> None:
        level = (1 if critical else 2) if self.production else 3
        starts: list[int] = []
        mask = 0
        if critical and self.streak_start is not None:
            starts.append(self.streak_start)
            mask |= self.streak_mask
        if degraded:
            starts.append(self.bad.first)
            mask |= self.bad.mask()
        started_at = min(starts)
        self.good_len = 0
        if (
            self.restored_incident is not None
            and started_at - self.restored_at <= self.thresholds.reopen_within
        ):
            previous = self.restored_severity
            self.incident = self.restored_incident
            self.severity = min(previous, level)
            self.incident_mask = self.restored_mask | mask
            out.append(
                Reopened(
                    service=self.service,
                    incident=self.incident,
                    severity=self.severity,
                    previous_severity=previous,
                    provider_severity=self.names[self.severity],
                    started_at=started_at,
                    detected_at=second + 1,
                    restored_at=self.restored_at,
                    channels=channels_of_mask(self.incident_mask),
                )
            )
        else:
            self.incident = incident_id(self.service, started_at)
            self.severity = level
            self.incident_mask = mask
            out.append(
                Opened(
                    service=self.service,
                    incident=self.incident,
                    severity=level,
                    provider_severity=self.names[level],
                    started_at=started_at,
                    detected_at=second + 1,
                    channels=channels_of_mask(mask),
                )
            )
        self.restored_incident = None

    def _restore(self, second: int, out: list[IncidentSignal]) -> None:
        assert self.incident is not None  # noqa: S101  (only called with an incident open)
        out.append(
            Restored(
                service=self.service,
                incident=self.incident,
                severity=self.severity,
                restored_at=self.good_start,
                detected_at=second + 1,
                channels=channels_of_mask(self.incident_mask),
            )
        )
        self.restored_incident = self.incident
        self.restored_severity = self.severity
        self.restored_at = self.good_start
        self.restored_mask = self.incident_mask
        self.incident = None
        self.severity = 0
        self.incident_mask = 0
        self.good_len = 0
        # Seconds up to the restore no longer count toward a new condition.
        self._break_streak()
        self.window_floor = second + 1
        self.bad.clear()
        self.unobserved.clear()

    def snapshot(self) -> dict[str, Any]:
        """The machine's whole state as a JSON-able dict (integers, strings, lists)."""
        return {
            "version": SNAPSHOT_VERSION,
            "service": self.service,
            "last_second": self.last_second,
            "streak": [self.streak_start, self.streak_len, self.streak_gap, self.streak_mask],
            "window": {
                "floor": self.window_floor,
                "bad": self.bad.to_json(),
                "unobserved": self.unobserved.to_json(),
            },
            "incident": None
            if self.incident is None
            else {
                "id": self.incident,
                "severity": self.severity,
                "mask": self.incident_mask,
                "good_start": self.good_start,
                "good_len": self.good_len,
            },
            "restored": None
            if self.restored_incident is None
            else {
                "id": self.restored_incident,
                "severity": self.restored_severity,
                "restored_at": self.restored_at,
                "mask": self.restored_mask,
            },
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load a state made by ``snapshot`` (ValueError if it is not one for this service)."""
        version = state.get("version")
        if version not in (1, SNAPSHOT_VERSION) or state.get("service") != self.service:
            raise ValueError(f"{self.service}: not a classifier snapshot of this service")
        try:
            self.last_second = _opt_int(state["last_second"])
            start, length, gap, mask = state["streak"]
            self.streak_start = _opt_int(start)
            self.streak_len, self.streak_gap, self.streak_mask = int(length), int(gap), int(mask)
            window = state["window"]
            self.window_floor = _opt_int(window["floor"])
            if version == 1:
                # One entry a second: (second, mask) for bad ones, the second for the others.
                self.bad = SecondRuns.of_seconds((int(s), int(m)) for s, m in window["bad"])
                self.unobserved = SecondRuns.of_seconds((int(s), 0) for s in window["unobserved"])
            else:
                self.bad = SecondRuns.from_json(window["bad"])
                self.unobserved = SecondRuns.from_json(window["unobserved"])
            incident = state["incident"]
            self.incident = None if incident is None else str(incident["id"])
            if incident is not None:
                self.severity = int(incident["severity"])
                self.incident_mask = int(incident["mask"])
                self.good_start = int(incident["good_start"])
                self.good_len = int(incident["good_len"])
            restored = state["restored"]
            self.restored_incident = None if restored is None else str(restored["id"])
            if restored is not None:
                self.restored_severity = int(restored["severity"])
                self.restored_at = int(restored["restored_at"])
                self.restored_mask = int(restored["mask"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{self.service}: malformed classifier snapshot ({exc})") from None


class SecondRuns:
    """Seconds kept as runs ``[first, last, mask]`` of consecutive seconds with one mask.

    What the degraded window holds: appended in second order, evicted from the front,
    with the number of seconds it covers kept as it changes.
    """

    __slots__ = ("count", "runs")

    def __init__(self) -> None:
        self.runs: deque[list[int]] = deque()
        self.count = 0

    def __bool__(self) -> bool:
        return bool(self.runs)

    @property
    def first(self) -> int:
        """The first second held (the runs must not be empty)."""
        return self.runs[0][0]

    @property
    def last(self) -> int:
        """The last second held (the runs must not be empty)."""
        return self.runs[-1][1]

    def add(self, first: int, last: int, mask: int = 0) -> None:
        """Hold seconds ``first..last`` (after every second already held)."""
        if last < first:
            return
        runs = self.runs
        if runs and runs[-1][1] == first - 1 and runs[-1][2] == mask:
            runs[-1][1] = last
        else:
            runs.append([first, last, mask])
        self.count += last - first + 1

    def evict(self, low: int) -> None:
        """Drop every second before ``low``."""
        runs = self.runs
        while runs and runs[0][0] < low:
            run = runs[0]
            if run[1] < low:
                self.count -= run[1] - run[0] + 1
                runs.popleft()
            else:
                self.count -= low - run[0]
                run[0] = low

    def mask(self) -> int:
        """The masks of every run held, or-ed."""
        mask = 0
        for run in self.runs:
            mask |= run[2]
        return mask

    def clear(self) -> None:
        """Hold nothing."""
        self.runs.clear()
        self.count = 0

    def to_json(self) -> list[list[int]]:
        """The runs as JSON."""
        return [list(run) for run in self.runs]

    @classmethod
    def from_json(cls, data: Any) -> SecondRuns:
        """Runs made by ``to_json`` (ValueError or TypeError if they are not)."""
        held = cls()
        for first, last, mask in data:
            held.add(int(first), int(last), int(mask))
        return held

    @classmethod
    def of_seconds(cls, seconds: Any) -> SecondRuns:
        """Runs of ``(second, mask)`` pairs given one a second, in order."""
        held = cls()
        for second, mask in seconds:
            held.add(second, second, mask)
        return held


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
