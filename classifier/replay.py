"""Replay of an attempt log (JSON Lines, DESIGN.md §9) through the live classifier."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from classifier.engine import Classifier, Finalized, UnknownServiceError
from classifier.signals import IncidentSignal, Opened, Reopened, Restored, Upgraded
from classifier.verdict import COMBINED, OUTCOME_INDEX, VERDICTS
from config import Catalog, Config, ServiceConfig
from probe.attempt import (
    AttemptFormatError,
    Channel,
    Outcome,
    attempt_from_json,
    format_time,
    parse_time,
)


class ReplayError(ValueError):
    """A replay line is unusable: ``line`` is its 1-based number, the message names the field."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"{line}: {message}")


# The fast path: the exact form ``Attempt.to_json`` + ``json.dumps`` write, with printable
# ASCII strings free of escapes. Such a line means the same to this pattern as to
# ``json.loads`` + ``attempt_from_json``; every other line (other key order or spacing,
# escapes, non-ASCII, timings, exponents, any error) takes the full path, which also
# words every error. A test holds the two paths to the same answers.
_FAST_LINE = re.compile(
    rb'\{"service": "([\x20\x21\x23-\x5b\x5d-\x7e]+)", '
    rb'"channel": "(api|smtp|control)", '
    rb'"target": "[\x20\x21\x23-\x5b\x5d-\x7e]+", '
    rb'"prober": "([\x20\x21\x23-\x5b\x5d-\x7e]*)", '
    rb'"started_at": "(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d{1,6})?Z", '
    rb'"outcome": "([a-z_]+)"'
    rb'(?:, "duration_s": (?:0|[1-9]\d*)(?:\.\d+)?)?'
    rb'(?:, "phase": "[\x20\x21\x23-\x5b\x5d-\x7e]*")?'
    rb'(?:, "detail": "[\x20\x21\x23-\x5b\x5d-\x7e]*")?'
    rb"\}[ \t\r\n]*\Z"
)
_CHANNELS = {c.value.encode(): c for c in Channel}
_OUTCOMES = {o.value.encode(): OUTCOME_INDEX[o] for o in Outcome}

# One attempt as the classifier needs it: service, channel, prober, second, outcome index.
Fields = tuple[str, Channel, str, int, int]
# The same without the second, which a run of lines shares.
RunKey = tuple[str, Channel, str, int]
# Distinct (service, channel, prober, outcome) combinations remembered by the fast path.
_MAX_KEYS = 4096


class LineReader:
    """Turns replay lines into runs of same-second attempts; fast for the canonical form.

    ``check`` is called for each (service, channel) before its first attempt is returned:
    it raises for an unknown service, so the reader only remembers combinations that passed.
    """

    def __init__(self, check: Callable[[str, Channel], None]) -> None:
        self._check = check
        # Logs run in time order, so consecutive lines share their second: one entry suffices
        # (a dict of every second would grow with the input).
        self._prefix = b""
        self._second = 0
        self._day = b""
        self._midnight = 0
        # Raw (service, channel, prober, outcome) → the same, decoded and checked.
        self._keys: dict[tuple[bytes, ...], RunKey] = {}

    def runs(self, lines: Iterable[bytes]) -> Iterator[tuple[int, dict[RunKey, int]]]:
        """Consecutive attempts of one second, counted by (service, channel, prober, outcome).

        Counting a run before handing it over changes nothing downstream: a second's
        attempts are only judged after a later second's run has been handed over.
        """
        match = _FAST_LINE.match
        keys = self._keys
        run: dict[RunKey, int] = {}
        run_second = -(1 << 62)
        run_prefix = b"-"
        for number, line in enumerate(lines, 1):
            found = match(line)
            key: RunKey | None = None
            if found is not None:
                prefix = found.group(4)
                if prefix == run_prefix:
                    key = keys.get(found.group(1, 2, 3, 5)) or self._learn(found, number)
                    if key is not None:
                        run[key] = run.get(key, 0) + 1
                        continue
                elif prefix == self._prefix or self._start_second(prefix):
                    key = keys.get(found.group(1, 2, 3, 5)) or self._learn(found, number)
            if key is not None:
                second = self._second
            else:
                fields = self._slow(line, number)
                if fields is None:
                    continue
                service, channel, prober, second, index = fields
                key = (service, channel, prober, index)
            if second != run_second:
                if run:
                    yield run_second, run
                run, run_second = {}, second
            # Fast lines with the reader's current prefix continue this run.
            run_prefix = self._prefix if self._second == second else b"-"
            run[key] = run.get(key, 0) + 1
        if run:
            yield run_second, run

    def _start_second(self, prefix: bytes) -> bool:
        """Make ``prefix`` (``YYYY-MM-DDTHH:MM:SS``, ASCII digits) current; False if invalid."""
        day = prefix[:10]
        if day != self._day:
            # The date is checked by the same parser as the full path, once a day.
            try:
                midnight = math.floor(parse_time(day.decode() + "T00:00:00Z"))
            except AttemptFormatError:
                return False
            self._day, self._midnight = day, midnight
        hour, minute, second = int(prefix[11:13]), int(prefix[14:16]), int(prefix[17:19])
        if hour > 23 or minute > 59 or second > 59:
            return False
        self._prefix = prefix
        self._second = self._midnight + hour * 3600 + minute * 60 + second
        return True

    def _learn(self, found: re.Match[bytes], number: int) -> RunKey | None:
        raw = found.group(1, 2, 3, 5)
        index = _OUTCOMES.get(raw[3])
        if index is None:
            return None
        key = (raw[0].decode(), _CHANNELS[raw[1]], raw[2].decode(), index)
        self._validate(key[0], key[1], number)
        if len(self._keys) < _MAX_KEYS:
            self._keys[raw] = key
        return key

    def _validate(self, service: str, channel: Channel, number: int) -> None:
        try:
            self._check(service, channel)
        except UnknownServiceError as exc:
            raise ReplayError(number, f"service: {exc}") from None

    def _slow(self, line: bytes, number: int) -> Fields | None:
        fields = _slow_fields(line, number)
        if fields is not None:
            self._validate(fields[0], fields[1], number)
        return fields


def _slow_fields(line: bytes, number: int) -> Fields | None:
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ReplayError(number, f"invalid JSON: {exc.msg} (column {exc.pos + 1})") from None
    except UnicodeDecodeError as exc:
        raise ReplayError(number, f"not UTF-8 text (byte {exc.start})") from None
    try:
        attempt = attempt_from_json(record)
    except AttemptFormatError as exc:
        raise ReplayError(number, str(exc)) from None
    return (
        attempt.service,
        attempt.channel,
        attempt.prober,
        math.floor(attempt.started_at),
        OUTCOME_INDEX[attempt.outcome],
    )


@dataclass
class ReplayIncident:
    """One incident as replay reports it; times are integer UTC epoch seconds."""

    id: str
    service: str
    severity: int
    provider_severity: str
    started_at: int
    detected_at: int
    restored_at: int | None = None
    # (at, from, to) for every change of level, in order.
    severity_changes: list[tuple[int, int, int]] = field(default_factory=list)
    reopened_at: list[int] = field(default_factory=list)
    channels: set[str] = field(default_factory=set)

    @property
    def open(self) -> bool:
        """True while the incident has not been restored (at the end of the input)."""
        return self.restored_at is None

    def apply(self, signal: IncidentSignal) -> None:
        """Fold a later signal about this incident into it."""
        self.channels.update(signal.channels)
        if isinstance(signal, Upgraded):
            self.severity_changes.append(
                (signal.detected_at, signal.from_severity, signal.to_severity)
            )
            self.severity, self.provider_severity = signal.to_severity, signal.provider_severity
        elif isinstance(signal, Restored):
            self.restored_at = signal.restored_at
        elif isinstance(signal, Reopened):
            self.reopened_at.append(signal.detected_at)
            self.restored_at = None
            if signal.severity != signal.previous_severity:
                self.severity_changes.append(
                    (signal.detected_at, signal.previous_severity, signal.severity)
                )
            self.severity, self.provider_severity = signal.severity, signal.provider_severity


@dataclass
class ReplayResult:
    """What a replay found: verdict totals per service and channel, and the incidents."""

    # service → channel (and "combined") → verdict → seconds.
    services: dict[str, dict[str, dict[str, int]]]
    incidents: list[ReplayIncident]
    first_second: int | None
    last_second: int | None
    attempts: int
    # Attempts that arrived after their second was final, by service.
    late: dict[str, int]

    @property
    def seconds(self) -> int:
        """The number of seconds in the span the verdicts cover."""
        if self.first_second is None or self.last_second is None:
            return 0
        return self.last_second - self.first_second + 1


def replay(
    lines: Iterable[bytes],
    config: Config,
    catalog: Catalog,
    *,
    horizon: int,
    on_signal: Callable[[IncidentSignal], None] | None = None,
) -> ReplayResult:
    """Run attempt log lines through the classifier the daemon uses; memory stays bounded.

    An attempt counts in the second it started in; a second is judged once an attempt
    starting ``horizon`` seconds after its end has been read (or at the end of input).
    """
    classifier = Classifier(config.services, catalog, horizon=horizon, emit_verdicts=False)
    incidents: dict[str, ReplayIncident] = {}
    reader = LineReader(classifier.check)
    # Every key was checked by the reader, so the buckets can take the counts directly.
    add = classifier.buckets.add
    newest = -(1 << 62)
    attempts = 0
    finalized = Finalized()

    def collect(signals: list[IncidentSignal]) -> None:
        for signal in signals:
            if on_signal is not None:
                on_signal(signal)
            if isinstance(signal, Opened):
                incidents[signal.incident] = ReplayIncident(
                    id=signal.incident,
                    service=signal.service,
                    severity=signal.severity,
                    provider_severity=signal.provider_severity,
                    started_at=signal.started_at,
                    detected_at=signal.detected_at,
                    channels=set(signal.channels),
                )
            else:
                incidents[signal.incident].apply(signal)

    for second, run in reader.runs(lines):
        for (service, channel, prober, outcome), count in run.items():
            add(service, channel, prober, second, outcome, count)
            attempts += count
        if second > newest:
            newest = second
            classifier.advance(newest, finalized)
            if finalized.signals:
                collect(finalized.signals)
                finalized.signals.clear()
    collect(classifier.finish().signals)
    return ReplayResult(
        services={name: classifier.totals(name) for name in classifier.services},
        incidents=list(incidents.values()),
        first_second=classifier.buckets.first_second,
        last_second=classifier.buckets.max_second,
        attempts=attempts,
        late=dict(classifier.late),
    )


# A clock function adds SLA clocks to an incident: the incidents package provides one.
ClockFunction = Callable[[ServiceConfig, ReplayIncident], Mapping[str, Any]]


def result_json(
    result: ReplayResult, config: Config, clocks: ClockFunction | None = None
) -> dict[str, Any]:
    """The replay JSON of DESIGN.md §11 (``clocks`` on incidents only when a function is given)."""
    services: dict[str, Any] = {}
    for name, totals in result.services.items():
        services[name] = {
            "channels": {ch: counts for ch, counts in totals.items() if ch != COMBINED},
            "combined": totals[COMBINED],
        }
        if result.late.get(name):
            services[name]["late_attempts"] = result.late[name]
    incidents = []
    for incident in result.incidents:
        item: dict[str, Any] = {
            "id": incident.id,
            "service": incident.service,
            "severity": incident.severity,
            "provider_severity": incident.provider_severity,
            "state": "open" if incident.open else "restored",
            "started_at": format_time(incident.started_at),
            "detected_at": format_time(incident.detected_at),
            "restored_at": None
            if incident.restored_at is None
            else format_time(incident.restored_at),
            "severity_changes": [
                {"at": format_time(at), "from": old, "to": new}
                for at, old, new in incident.severity_changes
            ],
            "reopened_at": [format_time(at) for at in incident.reopened_at],
            "channels": sorted(incident.channels),
        }
        if clocks is not None:
            item["clocks"] = dict(clocks(config.service(incident.service), incident))
        incidents.append(item)
    span = None
    if result.first_second is not None and result.last_second is not None:
        span = {
            "from": format_time(result.first_second),
            "to": format_time(result.last_second + 1),
            "seconds": result.seconds,
        }
    return {
        "span": span,
        "attempts": result.attempts,
        "late_attempts": dict(sorted(result.late.items())),
        "services": services,
        "incidents": incidents,
    }


def result_text(result: ReplayResult) -> str:
    """A readable summary of a replay: span, verdict seconds per channel, incidents."""
    lines: list[str] = []
    if result.first_second is None or result.last_second is None:
        lines.append("no attempts")
    else:
        lines.append(
            f"span {format_time(result.first_second)} .. {format_time(result.last_second + 1)} "
            f"({result.seconds} s), {result.attempts} attempts"
        )
    for name, totals in result.services.items():
        lines.append(f"service {name}")
        for channel, counts in totals.items():
            cells = "  ".join(f"{verdict} {counts[verdict]}" for verdict in VERDICTS)
            lines.append(f"  {channel:<9} {cells}  ({_availability(counts)})")
    late = {k: v for k, v in sorted(result.late.items()) if v}
    if late:
        listed = ", ".join(f"{k} {v}" for k, v in late.items())
        lines.append(f"late attempts (their second was already judged; raise --horizon): {listed}")
    lines.append(f"incidents: {len(result.incidents)}")
    for incident in result.incidents:
        lines.append(
            f"  {incident.id}  severity {incident.severity} ({incident.provider_severity})  "
            f"channels {', '.join(sorted(incident.channels)) or '-'}"
        )
        opened_at = (
            incident.severity_changes[0][1] if incident.severity_changes else incident.severity
        )
        lines.append(f"    started   {format_time(incident.started_at)}")
        lines.append(f"    detected  {format_time(incident.detected_at)}  severity {opened_at}")
        for at, old, new in incident.severity_changes:
            lines.append(f"    severity  {format_time(at)}  {old} -> {new}")
        for at in incident.reopened_at:
            lines.append(f"    reopened  {format_time(at)}")
        restored = (
            "still open" if incident.restored_at is None else format_time(incident.restored_at)
        )
        lines.append(f"    restored  {restored}")
    return "\n".join(lines)


def _availability(counts: Mapping[str, int]) -> str:
    observed = sum(counts.values()) - counts["no_data"] - counts["inconclusive"]
    if not observed:
        return "nothing observed"
    # The contract's uptime: unavailable seconds out of the seconds that could be judged.
    share = 100.0 * (1 - counts["unavailable"] / observed)
    return f"availability {share:.3f} %"
