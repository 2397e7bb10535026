"""Replay of an attempt log (JSON Lines, DESIGN.md §9) through the live classifier."""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from classifier.buckets import RunKey
from classifier.engine import Classifier, Finalized, UnknownServiceError
from classifier.signals import IncidentSignal, Opened, Reopened, Restored, Upgraded
from classifier.verdict import COMBINED, OUTCOME_INDEX, OUTCOMES, VERDICTS
from config import Catalog, Config
from config.timetext import TimeTextError, format_time, parse_time
from probe.attempt import (
    Attempt,
    AttemptFormatError,
    Channel,
    Outcome,
    Source,
    attempt_from_json,
)

T = TypeVar("T")


class ReplayError(ValueError):
    """A replay line is unusable: ``line`` is its 1-based number, the message names the field."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"{line}: {message}")


# Longest replay line accepted (an attempt is a few hundred bytes): longer lines are refused
# after reading this much of them, so one huge line cannot exhaust memory.
MAX_LINE_BYTES = 64 * 1024


def bounded_chunks(
    read: Callable[[int], bytes], limit: int = MAX_LINE_BYTES, block: int = 1 << 20
) -> Iterator[bytes]:
    """Whole lines of what ``read`` yields, ``block`` bytes or so at a time.

    Each chunk ends with a newline, except the input's last when it has none. A month of
    attempts is millions of lines: :class:`LineReader` takes them a chunk at a time, and
    most never become a ``bytes`` of their own. ReplayError names the first line over
    ``limit`` bytes (the chunk before it is handed over first); at most ``block`` plus
    ``limit`` bytes of such a line are read before it is refused.
    """
    number = 0
    pending = b""
    while data := read(block):
        if pending:
            data = pending + data
        cut = data.rfind(b"\n") + 1
        whole, pending = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
        over = _overlong(whole, limit)
        if over is not None:
            if over:
                yield whole[:over]
            number += whole.count(b"\n", 0, over)
            raise ReplayError(number + 1, f"line is longer than {limit} bytes")
        number += whole.count(b"\n")
        if whole:
            yield whole
        if len(pending) > limit:
            raise ReplayError(number + 1, f"line is longer than {limit} bytes")
    if pending:
        yield pending


def _overlong(whole: bytes, limit: int) -> int | None:
    """Where the first line longer than ``limit`` starts in ``whole`` (whole lines); None: none.

    Jumps a window of ``limit`` bytes at a time to the window's last newline: a line that
    fits in the window ends in it.
    """
    at = 0
    while len(whole) - at > limit:
        newline = whole.rfind(b"\n", at, at + limit + 1)
        if newline < 0:
            return at
        at = newline + 1
    return None


def chunk_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of ``chunks`` (as :func:`bounded_chunks` gives them), each with its newline."""
    for chunk in chunks:
        lines = chunk.split(b"\n")
        last = lines.pop()
        yield from map(operator.add, lines, itertools.repeat(b"\n"))
        if last:
            yield last


# The fast path: the exact form ``Attempt.to_json`` + ``json.dumps`` write, with printable
# ASCII strings free of escapes. Such a line means the same to these patterns as to
# ``json.loads`` + ``attempt_from_json``; every other line (other key order or spacing,
# escapes, non-ASCII, timings, exponents, any error) takes the full path, which also
# words every error. A test holds the two paths to the same answers.
#
# A canonical line is HEAD + ``"started_at": "`` + STAMP + TAIL: HEAD names the service,
# channel, target and prober, STAMP is the second (``YYYY-MM-DDTHH:MM:SS``) and TAIL the
# fraction, the outcome and the rest. No string in HEAD may hold a quote, so the first
# ``"started_at": "`` of a line is where it splits. A log repeats few heads and few tails,
# so both are checked once and remembered: an ordinary line costs a split and two look-ups.
_STARTED_AT = b'"started_at": "'
_TEXT = rb"[\x20\x21\x23-\x5b\x5d-\x7e]"
_HEAD = re.compile(
    rb'\{"service": "(' + _TEXT + rb'+)", '
    rb'"channel": "(api|smtp|control)", '
    rb'"target": "' + _TEXT + rb'+", '
    rb'"prober": "(' + _TEXT + rb'*)", '
)
_STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
_STAMP_WIDTH = 19
# STAMP is MINUTE (``YYYY-MM-DDTHH:MM:``) and the seconds: valid seconds by their two bytes.
_MINUTE_WIDTH = 17
_SECONDS = {f"{s:02d}".encode(): s for s in range(60)}
_SECOND_TEXT = list(_SECONDS)
_TAIL = re.compile(
    rb'(?:\.\d{1,6})?Z", '
    rb'"outcome": "([a-z_]+)"'
    rb'(?:, "duration_s": (?:0|[1-9]\d*)(?:\.\d+)?)?'
    rb'(?:, "phase": "' + _TEXT + rb'*")?'
    rb'(?:, "detail": "' + _TEXT + rb'*")?'
    rb"\}[ \t\r\n]*"
)
_OUTCOMES = {o.value.encode(): OUTCOME_INDEX[o] for o in Outcome}
# Heads and tails remembered by the fast path (each cache starts afresh when full).
_MAX_KEYS = 4096

# One attempt as the classifier needs it: service, channel, prober, second, outcome.
Fields = tuple[str, Channel, str, int, int]

# Attempts before 2000-01-01T00:00:00Z are refused: no such log exists, and a stamp that
# old is a broken clock or a mangled line.
EARLIEST = 946_684_800
# So is an attempt more than this after the latest one so far: one far-future stamp
# would have the replay judge every second up to it.
MAX_AHEAD_S = 86_400


def _alike(
    chunk: bytes, at: int, pieces: list[bytes], stamp: bytes, second: int
) -> tuple[int, int, bytes]:
    """Alike seconds in ``chunk`` from ``at``: how many, where they end, the last one's STAMP.

    An alike second is the lines ``pieces`` joined by its STAMP, from ``second`` (whose
    STAMP is ``stamp``) on.
    Looks a second at a time, and a whole minute at a time from a minute's start: the
    minute's lines are then its ``YYYY-MM-DDTHH:MM:`` joining pieces built once.
    """
    matched = 0
    last = stamp
    minute: list[bytes] | None = None
    step = len(stamp.join(pieces))
    while True:
        if second % 60 == 0 and len(chunk) - at >= 60 * step:
            prefix = stamp[:_MINUTE_WIDTH]
            if minute is None:
                image = b"".join((prefix + s).join(pieces) for s in _SECOND_TEXT)
                minute = image.split(prefix)
                if len(minute) != 60 * (len(pieces) - 1) + 1:
                    minute = []
            if minute and chunk.startswith(expected := prefix.join(minute), at):
                at += len(expected)
                matched += 60
                last = prefix + _SECOND_TEXT[59]
                second += 60
                stamp = _stamp_after(last, second)
                continue
        if not chunk.startswith(expected := stamp.join(pieces), at):
            return matched, at, last
        at += len(expected)
        matched += 1
        last = stamp
        second += 1
        stamp = _stamp_after(stamp, second)


def _stamp_after(stamp: bytes, second: int) -> bytes:
    """The STAMP of ``second``, given ``stamp``, the STAMP of the second before it."""
    of_minute = second % 60
    if of_minute:
        return stamp[:_MINUTE_WIDTH] + _SECOND_TEXT[of_minute]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()


class LineReader:
    """Turns replay lines into runs of same-second attempts; fast for the canonical form.

    ``check`` is called for each (service, channel) before its first attempt is returned:
    it raises for an unknown service, so the reader only remembers heads that passed.
    """

    def __init__(self, check: Callable[[str, Channel], None]) -> None:
        self._check = check
        # Logs run in time order, so consecutive lines share their date and minute: one
        # entry each suffices.
        self._day = b""
        self._midnight = 0
        self._minute = b"-"
        self._minute_start = 0
        # HEAD → its run keys, indexed by outcome; TAIL → the outcome's index.
        self._heads: dict[bytes, tuple[RunKey, ...]] = {}
        self._tails: dict[bytes, int] = {}
        # The latest second seen: a line far past it is refused (see MAX_AHEAD_S).
        self._newest: int | None = None

    def runs(self, chunks: Iterable[bytes]) -> Iterator[tuple[int, list[RunKey]]]:
        """Consecutive attempts of one second, one key each, in the order of the lines.

        ``chunks`` are whole lines (one or many each, as :func:`bounded_chunks` reads them).
        Handing a second's attempts over as one run changes nothing downstream: a second's
        attempts are only judged after a later second's run has been handed over.
        """
        for first, keys, count in self.repeats(chunks):
            yield first, keys
            for second in range(first + 1, first + count):
                yield second, list(keys)

    def repeats(  # noqa: PLR0912, PLR0915  (the hot loop of replay, kept in one frame)
        self, chunks: Iterable[bytes]
    ) -> Iterator[tuple[int, list[RunKey], int]]:
        """The runs of :meth:`runs`, alike consecutive seconds as one: ``(first, keys, count)``.

        ``count`` consecutive seconds from ``first`` each had the attempts ``keys``, in that
        order, and each was later than any second before it (so a classifier can take them
        with ``add_repeat``); other runs come with a count of 1. On a bad line the stretch
        before it is handed over first, as its seconds were read.

        A steady log repeats one second's lines for hours with only the STAMP changing:
        once two seconds in a row came out alike, the next second is looked for as the
        bytes of the last one with the next STAMP in place of its own (one join and one
        comparison a second, whatever its number of lines). Those bytes are canonical
        lines with the same heads and tails, so the lines give the same keys either way.
        """
        heads = self._heads
        tails = self._tails
        number = 0
        # The second being read: its keys so far, its STAMP (``-`` until a canonical line
        # showed it) and where its lines start in the chunk while all are canonical (-1: not).
        run: list[RunKey] = []
        run_second = -(1 << 62)
        run_stamp = b"-"
        run_start = -1
        # The stretch before it, not handed over yet: ``count`` seconds from ``first``
        # (count 0: none). It may grow only if it began after every second before it;
        # ``tried``: a look for its next second by its bytes failed once already.
        first, alike, count, growing, tried = 0, run, 0, False, False
        # The latest second of any run before the one being read.
        latest = -(1 << 62)
        try:
            for chunk in chunks:
                size = len(chunk)
                pos = 0
                run_start = -1
                while pos < size:
                    end = chunk.find(b"\n", pos)
                    if end < 0:
                        end = size
                    start, pos = pos, end + 1
                    number += 1
                    head, _, rest = chunk[start:end].partition(_STARTED_AT)
                    keys = heads.get(head)
                    index = tails.get(rest[_STAMP_WIDTH:])
                    key: RunKey
                    stamp = rest[:_STAMP_WIDTH]
                    if keys is not None and index is not None:
                        if stamp == run_stamp:
                            run.append(keys[index])
                            continue
                        seconds = _SECONDS.get(stamp[_MINUTE_WIDTH:])
                        if seconds is not None and stamp[:_MINUTE_WIDTH] == self._minute:
                            second, key = self._minute_start + seconds, keys[index]
                            fast = True
                        else:
                            fast = False
                    else:
                        fast = False
                    if not fast:
                        found = self._fast(head, rest, number)
                        if found is not None:
                            key, second = found
                        else:
                            stamp = b"-"
                            fields = self._slow(chunk[start:pos], number)
                            if fields is None:
                                run_start = -1
                                continue
                            service, channel, prober, second, outcome = fields
                            key = (service, channel.value, prober, outcome)
                    if second == run_second:
                        if stamp == b"-":
                            run_start = -1
                        elif run_stamp == b"-":
                            run_stamp = stamp
                        run.append(key)
                        continue
                    newest = self._newest
                    fresh = newest is not None and second == newest + 1
                    if fresh:
                        self._newest = second
                    else:
                        self._plausible(second, number)
                    if run:
                        # The run of run_second is complete: it joins the stretch or ends it.
                        if growing and run_second == first + count and run == alike:
                            count += 1
                        else:
                            if count:
                                yield first, alike, count
                            first, alike, count, tried = run_second, run, 1, False
                            growing = run_second > latest
                        latest = max(latest, run_second)
                        if (
                            count > 1
                            and not tried
                            and fresh
                            and run_start >= 0
                            and stamp != b"-"
                            and second == run_second + 1
                        ):
                            span = start - run_start
                            pieces = chunk[run_start:start].split(run_stamp)
                            width = len(run)
                            matched = 0
                            if len(pieces) == width + 1:
                                matched, at, run_stamp = _alike(chunk, start, pieces, stamp, second)
                            if matched:
                                # All but the last matched second are complete and alike.
                                run_second = second + matched - 1
                                count += matched - 1
                                latest = run_second - 1
                                self._newest = run_second
                                number += matched * width - 1
                                run = list(alike)
                                run_start = at - span
                                pos = at
                                continue
                            tried = True
                    run, run_second, run_stamp = [], second, stamp
                    run_start = start if stamp != b"-" else -1
                    run.append(key)
        except ReplayError:
            if count:
                yield first, alike, count
            raise
        # The last run ends the input: it joins the stretch, or follows it.
        if run and growing and run_second == first + count and run == alike:
            count, run = count + 1, []
        if count:
            yield first, alike, count
        if run:
            yield run_second, run, 1

    def _fast(self, head: bytes, rest: bytes, number: int) -> tuple[RunKey, int] | None:
        """The key and second of a canonical line split at its STAMP; None if not canonical."""
        index = self._tails.get(rest[_STAMP_WIDTH:])
        if index is None:
            index = self._learn_tail(rest[_STAMP_WIDTH:])
            if index is None:
                return None
        second = self._second(rest[:_STAMP_WIDTH])
        if second is None:
            return None
        keys = self._heads.get(head)
        if keys is None:
            keys = self._learn_head(head, number)
            if keys is None:
                return None
        return keys[index], second

    def _learn_tail(self, tail: bytes) -> int | None:
        found = _TAIL.fullmatch(tail)
        if found is None:
            return None
        index = _OUTCOMES.get(found.group(1))
        if index is not None:
            if len(self._tails) >= _MAX_KEYS:
                self._tails.clear()
            self._tails[tail] = index
        return index

    def _learn_head(self, head: bytes, number: int) -> tuple[RunKey, ...] | None:
        found = _HEAD.fullmatch(head)
        if found is None:
            return None
        service, channel, prober = found.group(1).decode(), found.group(2).decode(), found.group(3)
        self._validate(service, Channel(channel), number)
        keys = tuple((service, channel, prober.decode(), i) for i in range(len(OUTCOMES)))
        if len(self._heads) >= _MAX_KEYS:
            self._heads.clear()
        self._heads[head] = keys
        return keys

    def _second(self, stamp: bytes) -> int | None:
        """The epoch second of a STAMP (``YYYY-MM-DDTHH:MM:SS``); None if it is not one."""
        seconds = _SECONDS.get(stamp[_MINUTE_WIDTH:])
        if seconds is not None and stamp[:_MINUTE_WIDTH] == self._minute:
            return self._minute_start + seconds
        if _STAMP.fullmatch(stamp) is None:
            return None
        day = stamp[:10]
        if day != self._day:
            # The date is checked by the same parser as the full path, once a day.
            try:
                midnight = math.floor(parse_time(day.decode() + "T00:00:00Z"))
            except TimeTextError:
                return None
            self._day, self._midnight = day, midnight
        hour, minute, second = int(stamp[11:13]), int(stamp[14:16]), int(stamp[17:19])
        if hour > 23 or minute > 59 or second > 59:
            return None
        self._minute = stamp[:_MINUTE_WIDTH]
        self._minute_start = self._midnight + hour * 3600 + minute * 60
        return self._minute_start + second

    def _plausible(self, second: int, number: int) -> None:
        """Refuse an attempt before EARLIEST or more than MAX_AHEAD_S past the latest so far."""
        if second < EARLIEST:
            raise ReplayError(
                number,
                f"started_at: {format_time(second)} is before {format_time(EARLIEST)} "
                "(not a plausible time for an attempt)",
            )
        newest = self._newest
        if newest is not None and second > newest + MAX_AHEAD_S:
            raise ReplayError(
                number,
                f"started_at: {format_time(second)} is more than a day after the latest "
                f"attempt so far ({format_time(newest)})",
            )
        if newest is None or second > newest:
            self._newest = second

    def _validate(self, service: str, channel: Channel, number: int) -> None:
        try:
            self._check(service, channel)
        except UnknownServiceError as exc:
            raise ReplayError(number, f"service: {exc}") from None

    def _slow(self, line: bytes, number: int) -> Fields | None:
        attempt = self._attempt(line, number)
        if attempt is None:
            return None
        return (
            attempt.service,
            attempt.channel,
            attempt.prober,
            attempt.second,
            OUTCOME_INDEX[attempt.outcome],
        )

    def _attempt(self, line: bytes, number: int) -> Attempt | None:
        attempt = parse_line(line, number)
        if attempt is not None:
            self._validate(attempt.service, attempt.channel, number)
        return attempt

    def attempts(self, chunks: Iterable[bytes]) -> Iterator[tuple[int, Attempt]]:
        """Every attempt in full (for a store that keeps samples), with its second."""
        for number, line in enumerate(chunk_lines(chunks), 1):
            attempt = self._attempt(line, number)
            if attempt is not None:
                self._plausible(attempt.second, number)
                yield attempt.second, attempt


def parse_line(
    line: bytes, number: int, *, default_source: Source = Source.PROBE
) -> Attempt | None:
    """The attempt of one replay line (None for a blank line); ReplayError naming the field.

    ``default_source`` is the source of a line that names none (the push API's is traffic).

    The one full parser of the replay format: the fast path of :class:`LineReader` only
    ever takes lines this function reads the same way.
    """
    if not line.strip():
        return None
    try:
        record = json.loads(line, object_pairs_hook=_unique_keys)
    except DuplicateKeyError as exc:
        raise ReplayError(number, str(exc)) from None
    except json.JSONDecodeError as exc:
        raise ReplayError(number, f"invalid JSON: {exc.msg} (column {exc.pos + 1})") from None
    except UnicodeDecodeError as exc:
        raise ReplayError(number, f"not UTF-8 text (byte {exc.start})") from None
    try:
        return attempt_from_json(record, default_source=default_source)
    except AttemptFormatError as exc:
        raise ReplayError(number, str(exc)) from None


class DuplicateKeyError(ValueError):
    """A JSON object that names one key twice (refused, as duplicate YAML keys are)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"{key}: duplicate key (a line gives each field once)")
        out[key] = value
    return out


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

    @classmethod
    def from_opened(cls, signal: Opened) -> ReplayIncident:
        """A new incident as its ``Opened`` signal describes it."""
        return cls(
            id=signal.incident,
            service=signal.service,
            severity=signal.severity,
            provider_severity=signal.provider_severity,
            started_at=signal.started_at,
            detected_at=signal.detected_at,
            channels=set(signal.channels),
        )

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


class IncidentTally:
    """The incidents a replay's signals describe, in the order they opened."""

    def __init__(self, known: Callable[[str], ReplayIncident | None] | None = None) -> None:
        self._incidents: dict[str, ReplayIncident] = {}
        # Where an incident opened before this replay is found (a store resumed into).
        self._known = known

    def take(self, signal: IncidentSignal) -> None:
        """Fold one signal in."""
        if isinstance(signal, Opened):
            self._incidents[signal.incident] = ReplayIncident.from_opened(signal)
            return
        incident = self._incidents.get(signal.incident)
        if incident is None and self._known is not None:
            incident = self._known(signal.incident)
            if incident is not None:
                self._incidents[signal.incident] = incident
        if incident is not None:
            incident.apply(signal)

    def found(self) -> list[ReplayIncident]:
        """Every incident seen."""
        return list(self._incidents.values())


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

    @classmethod
    def of(
        cls, classifier: Classifier, incidents: list[ReplayIncident], attempts: int
    ) -> ReplayResult:
        """What ``classifier`` judged, once the input is finished."""
        return cls(
            services={name: classifier.totals(name) for name in classifier.services},
            incidents=incidents,
            first_second=classifier.buckets.first_second,
            last_second=classifier.buckets.max_second,
            attempts=attempts,
            late=dict(classifier.late),
        )

    @property
    def seconds(self) -> int:
        """The number of seconds in the span the verdicts cover."""
        if self.first_second is None or self.last_second is None:
            return 0
        return self.last_second - self.first_second + 1


def drive(
    items: Iterable[tuple[int, T]],
    add: Callable[[int, T], object],
    classifier: Classifier,
    found: Callable[[Finalized], object],
) -> None:
    """The replay loop: feed ``(second, item)`` in log order, judge as seconds become final.

    ``second`` is the latest second the item holds attempts of.

    A second is judged once an attempt starting ``horizon`` seconds after its end has been
    read (or at the end of input). ``found`` sees every Finalized (it may empty it). On a
    ReplayError, what was judged before the bad line is still reported, then it is raised.
    """
    newest: int | None = None
    out = Finalized()
    try:
        for second, item in items:
            add(second, item)
            if newest is None or second > newest:
                newest = second
                classifier.advance(newest, out)
                if out.verdicts or out.signals:
                    found(out)
                    out.verdicts.clear()
                    out.signals.clear()
    except ReplayError:
        found(classifier.flush())
        raise
    found(classifier.finish())


def replay(
    chunks: Iterable[bytes],
    config: Config,
    catalog: Catalog,
    *,
    horizon: int,
    on_signal: Callable[[IncidentSignal], None] | None = None,
) -> ReplayResult:
    """Run attempt log chunks (whole lines) through the live classifier; memory stays bounded."""
    classifier = Classifier(
        config.services, catalog, horizon=horizon, emit_verdicts=False, hold_runs=True
    )
    incidents = IncidentTally()
    # Every key was checked by the reader, so the buckets can take the runs directly.
    add_run = classifier.buckets.add_run
    add_repeat = classifier.buckets.add_repeat
    attempts = 0

    def add(_last: int, repeat: tuple[int, list[RunKey], int]) -> None:
        nonlocal attempts
        first, keys, count = repeat
        attempts += len(keys) * count
        if count == 1:
            add_run(first, keys)
        else:
            add_repeat(first, keys, count)

    def found(out: Finalized) -> None:
        for signal in out.signals:
            if on_signal is not None:
                on_signal(signal)
            incidents.take(signal)

    repeats = LineReader(classifier.check).repeats(chunks)
    # drive() advances to the latest second an item covers: a repeat's last one.
    items = ((r[0] + r[2] - 1, r) for r in repeats)
    drive(items, add, classifier, found)
    return ReplayResult.of(classifier, incidents.found(), attempts)


def result_json(
    result: ReplayResult, clocks: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The replay JSON of DESIGN.md §11; ``clocks`` maps incident ids to their clocks' JSON."""
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
        if clocks is not None and incident.id in clocks:
            item["clocks"] = dict(clocks[incident.id])
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
