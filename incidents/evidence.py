"""Evidence bundles (DESIGN.md §8): one incident's seconds, sealed whole, in four formats.

A bundle (format ``slawatch-evidence/4``) is written streaming, in constant memory: its
small parts (incident header, definition, window, summary, clocks, events, provenance)
first, then the sampled attempts and the records, read from the store a slice of the
window at a time, then the ``chain`` and the ``seal``.

- **Records** describe the window's seconds. A record covers ``seconds`` consecutive
  seconds from ``second`` that are alike in every field (counts are those of each
  second); an ``unavailable`` or ``partial`` second, the seconds the contract counts, is
  always a record of its own. Each record carries
  ``digest = sha256(previous digest + canonical record)`` from ``GENESIS``; the canonical
  record is the JSON array of its values in ``RECORD_FIELDS`` order, so the CSV (the same
  columns) verifies exactly like the JSON. ``probers_reporting`` and ``probers_expected``
  say from how many vantage points each second was judged: a fleet's pooled counts
  (``IncidentStore.vantage_seconds``), 1 and 1 for a single instance's monitored seconds,
  empty where no second was pooled or monitored.
- **The seal** holds the SHA-256 of every other part (its canonical JSON: sorted keys,
  no spaces, UTF-8), the chain's part included, which holds the record count and the
  head, and ``digest``, the SHA-256 of those part digests: the one value a ticket quotes.
  With a signing key, ``signature`` is the Ed25519 signature of ``digest``.

Seconds that no stored run covers (slawatch was not running: before its first second,
after its last, or down in between) are ``unmonitored``, the report's notion
(:func:`incidents.report.figures`); ``no_data`` stays what DESIGN §4 says, a monitored
second without attempts. Bundles of formats 2 and 3 (records without the vantage columns,
or without the traffic ones too) still verify; format 1 bundles (records only chained,
one per second) too, and ``verify`` says that nothing else of them is sealed.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from classifier.verdict import COMBINED, OUTCOMES, VERDICTS, Verdict
from config import LoadedConfig
from config.secrets import Redactor
from config.timetext import format_time
from incidents.lifecycle import fold
from incidents.model import EventRecord, Incident, Run
from incidents.provider_status import (
    KIND as PROVIDER_STATUS,
)
from incidents.provider_status import (
    DeclaredTally,
    declared_timelines,
    first_update_at,
    side_by_side,
)
from incidents.report import figures
from incidents.signing import Signer, check_signature
from incidents.sources import SourceTally, lead_sentence
from incidents.store import IncidentStore, VantageRun
from incidents.view import clock_states
from probe.attempt import Attempt, Outcome
from sla.clocks import clocks_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

Format = Literal["json", "csv", "md", "html"]
FORMATS: tuple[Format, ...] = get_args(Format)
BUNDLE_FORMAT = "slawatch-evidence/4"
# Bundles of the first format: only the per-second records were chained.
FORMAT_1 = "slawatch-evidence/1"
# Sealed bundles before records counted attempts by source.
FORMAT_2 = "slawatch-evidence/2"
# Sealed bundles before records said how many probers reported.
FORMAT_3 = "slawatch-evidence/3"
GENESIS = "0" * 64
# Seconds shown before ``started_at`` unless told otherwise: the run-up to the outage.
DEFAULT_MARGIN_S = 60
# Failures listed in the ticket body and the printable page (the JSON keeps them all).
MAX_LISTED_SAMPLES = 20
# The window is read from the store this many seconds at a time (memory stays bounded);
# the summary, which needs only the runs, in longer slices.
SLICE_S = 3_600
SUMMARY_SLICE_S = 6 * 3_600
CHANNELS = ("api", "smtp")
OUTCOME_NAMES: tuple[str, ...] = tuple(str(o) for o in OUTCOMES)
# Format 1 columns; format 2 appends ``seconds``, format 3 the counts of the customer's
# own traffic by outcome (``traffic_ok``, ...: the rest of each count came from probes),
# format 4 the probers reporting and expected in each second.
RECORD_FIELDS_1: tuple[str, ...] = (
    "second",
    "verdict",
    *CHANNELS,
    *OUTCOME_NAMES,
    "set_aside",
    "worst_latency_ms",
)
RECORD_FIELDS_2: tuple[str, ...] = (*RECORD_FIELDS_1, "seconds")
TRAFFIC_FIELDS: tuple[str, ...] = tuple(f"traffic_{name}" for name in OUTCOME_NAMES)
RECORD_FIELDS_3: tuple[str, ...] = (*RECORD_FIELDS_2, *TRAFFIC_FIELDS)
VANTAGE_FIELDS: tuple[str, ...] = ("probers_reporting", "probers_expected")
RECORD_FIELDS: tuple[str, ...] = (*RECORD_FIELDS_3, *VANTAGE_FIELDS)
_INT_FIELDS = frozenset((*OUTCOME_NAMES, "set_aside", "seconds", *TRAFFIC_FIELDS))
# Integer fields that are empty (null) where they do not apply.
_NULLABLE_INT_FIELDS = frozenset(("worst_latency_ms", *VANTAGE_FIELDS))
# What one instance's monitored second says of its vantage points: itself, expected.
SINGLE_VANTAGE = (1, 1)
# Fields two neighbouring records must share to be joined (all but their place and length).
_JOINED = tuple(name for name in RECORD_FIELDS if name not in ("second", "seconds"))
# A second no stored run covers: slawatch was not watching (not "no attempts").
UNMONITORED = "unmonitored"
# Verdicts the contract counts against the provider: always one record a second.
_COUNTED = frozenset((str(Verdict.UNAVAILABLE), str(Verdict.PARTIAL)))
DEFINITION = (
    '"Unavailability" means when, in a given second, Customer attempts to make: (a) API '
    "calls and all such API calls fail due to either a server-side timeout or internal "
    "service error; and/or (b) SMTP injections and all such SMTP injections fail due to "
    "either a server-side timeout or internal service error."
)
DEFINITION_SOURCE = "Bird / SparkPost / MessageBird enterprise support terms"
CANONICAL = "JSON with sorted keys, no spaces, UTF-8"
UNSIGNED_NOTE = (
    "not signed: the seal shows any edit that leaves the digests as they were, but not "
    "one that recomputes them; compare the seal digest with the one quoted in the ticket, "
    "or sign bundles (evidence.signing_key)"
)
# Timeline colours and legend, one per label a second can have.
COLOURS = {
    "available": "#2ca02c",
    "unavailable": "#d62728",
    "partial": "#ff7f0e",
    "inconclusive": "#9467bd",
    "no_data": "#c7c7c7",
    UNMONITORED: "#aec7e8",
}
LEGEND = {
    "available": "no attempt failed in a way that counts",
    "unavailable": "every attempt failed by timeout or internal service error",
    "partial": "some attempts failed that way, not all",
    "inconclusive": "only attempts of probers whose own network was down (set aside)",
    "no_data": "monitored, but no attempt was made",
    UNMONITORED: "slawatch was not running: nothing was observed",
}


class EvidenceError(ValueError):
    """A bundle that cannot be read or verified (not JSON or CSV, no records, wrong columns)."""


# One encoder each, made once: ``json.dumps`` with options builds a new one every call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(record: Mapping[str, Any], fields: Sequence[str] = RECORD_FIELDS) -> str:
    """The text a record's digest covers: its values in ``fields`` order, as compact JSON."""
    return _COMPACT.encode([record[name] for name in fields])


def chain_digest(
    previous: str, record: Mapping[str, Any], fields: Sequence[str] = RECORD_FIELDS
) -> str:
    """``sha256(previous digest + canonical record)`` as hex."""
    return hashlib.sha256((previous + canonical(record, fields)).encode("utf-8")).hexdigest()


def part_text(value: Any) -> str:
    """The canonical JSON of a bundle part: sorted keys, no spaces, UTF-8 kept as it is."""
    return _CANONICAL.encode(value)


def part_digest(value: Any) -> str:
    """The SHA-256 (hex) of a part's canonical JSON."""
    return hashlib.sha256(part_text(value).encode("utf-8")).hexdigest()


class _ListDigest:
    """The part digest of a list fed one item at a time (the same as ``part_digest(list)``)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(b"[")
        self._first = True

    def add(self, text: str) -> None:
        if not self._first:
            self._hash.update(b",")
        self._first = False
        self._hash.update(text.encode("utf-8"))

    def hexdigest(self) -> str:
        done = self._hash.copy()
        done.update(b"]")
        return done.hexdigest()


class Chain:
    """The hash chain as records are added: each digest covers the previous one."""

    def __init__(self, fields: Sequence[str] = RECORD_FIELDS) -> None:
        self.fields = tuple(fields)
        self.head = GENESIS
        self.records = 0

    def add(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record in field order with its chained ``digest``."""
        self.head = chain_digest(self.head, record, self.fields)
        self.records += 1
        return {**{name: record[name] for name in self.fields}, "digest": self.head}

    def to_json(self) -> dict[str, Any]:
        """The ``chain`` part: how to recompute it, the record count and the head."""
        return {
            "algorithm": "sha256",
            "genesis": GENESIS,
            "canonical": "JSON array of the record's values in fields order",
            "fields": list(self.fields),
            "records": self.records,
            "head": self.head,
        }


def seal_digest(parts: Mapping[str, str]) -> str:
    """The digest of the whole bundle: SHA-256 of the canonical JSON of its part digests."""
    return part_digest(dict(parts))


# -- the window and its records ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """The seconds a bundle covers, ``[first, end)``, and why it ends where it does."""

    first: int
    end: int
    started_at: int
    until: str

    @property
    def seconds(self) -> int:
        """How many seconds the window holds."""
        return self.end - self.first

    def to_json(self) -> dict[str, Any]:
        """The ``window`` part."""
        return {
            "from": format_time(self.first),
            "to": format_time(self.end),
            "seconds": self.seconds,
            "margin_s": self.started_at - self.first,
            "until": self.until,
        }


def evidence_window(
    incident: Incident, last_monitored: int | None, now: float, margin: int
) -> Window:
    """From ``margin`` before the first bad second to the restore, else the last monitored second.

    An open incident's window never runs past the last second the store holds: a store
    whose data ended long ago (or an incident open for days) costs only what was seen.
    """
    first = incident.started_at - max(0, margin)
    if incident.restored_at is not None:
        end, until = incident.restored_at, "restored"
    elif last_monitored is not None and last_monitored + 1 < math.floor(now):
        end, until = last_monitored + 1, "last monitored second"
    else:
        end, until = math.floor(now), "now"
    return Window(first, max(end, incident.started_at + 1), incident.started_at, until)


def _slices(first: int, end: int, size: int = SLICE_S) -> Iterator[tuple[int, int]]:
    for low in range(first, end, size):
        yield low, min(low + size, end)


def window_summary(
    store: IncidentStore,
    service: str,
    window: Window,
    *,
    counting: Sequence[str] = (),
    environment: str = "",
    declared: DeclaredTally | None = None,
) -> dict[str, Any]:
    """Seconds by label, unavailable ones by channel, counted seconds' attempts by source.

    The labels are the five verdicts and ``unmonitored``; the sources are tallied by
    :class:`incidents.sources.SourceTally`.
    """
    seconds = dict.fromkeys((*(str(v) for v in VERDICTS), UNMONITORED), 0)
    by_channel = dict.fromkeys(CHANNELS, 0)
    sources = SourceTally(counting)
    for low, high in _slices(window.first, window.end, SUMMARY_SLICE_S):
        runs = store.runs(service, None, low, high - 1)
        sources.add(runs, low, high)
        if declared is not None:
            declared.add(runs, low, high)
        combined = figures(runs, COMBINED, low, high)
        for name, count in combined.seconds.items():
            seconds[name] += count
        seconds[UNMONITORED] += combined.unmonitored
        for channel in CHANNELS:
            by_channel[channel] += figures(runs, channel, low, high).unavailable
    return {
        "seconds": seconds,
        "unavailable_seconds": seconds["unavailable"],
        "unavailable_by_channel": by_channel,
        "sources": sources.to_json(),
        "environment": environment,
    }


@dataclass(frozen=True, slots=True)
class Slice:
    """One slice of the window as the store holds it: its runs, sampled attempts and vantage.

    ``vantage`` is None for a single instance (no fleet pooled the seconds).
    """

    low: int
    high: int
    runs: list[Run]
    samples: list[Attempt]
    vantage: list[VantageRun] | None = None


def window_slices(store: IncidentStore, service: str, window: Window) -> Iterator[Slice]:
    """The window a slice at a time (memory stays bounded however long the window is)."""
    for low, high in _slices(window.first, window.end):
        yield Slice(
            low,
            high,
            store.runs(service, None, low, high - 1),
            store.samples(service, low, high - 1),
            store.vantage_seconds(low, high - 1),
        )


class RecordMerger:
    """Joins alike neighbouring records across slices (never those of a counted verdict)."""

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None

    def add(self, part: Slice) -> Iterator[dict[str, Any]]:
        """The records completed by the slice ``part``."""
        worst: dict[int, float] = {}
        for attempt in part.samples:
            worst[attempt.second] = max(worst.get(attempt.second, 0.0), attempt.duration_s)
        for record in slice_records(part.runs, worst, part.low, part.high, part.vantage):
            pending = self.pending
            if pending is not None and _joins(pending, record):
                pending["seconds"] += record["seconds"]
                continue
            if pending is not None:
                yield pending
            self.pending = record

    def finish(self) -> Iterator[dict[str, Any]]:
        """The last record."""
        if self.pending is not None:
            yield self.pending
        self.pending = None


def _joins(record: Mapping[str, Any], following: Mapping[str, Any]) -> bool:
    if record["verdict"] in _COUNTED:
        return False
    return all(record[name] == following[name] for name in _JOINED)


def slice_records(
    runs: Iterable[Run],
    worst: Mapping[int, float],
    low: int,
    high: int,
    vantage: Sequence[VantageRun] | None = None,
) -> Iterator[dict[str, Any]]:
    """Records of seconds ``low..high-1`` from the runs overlapping them and worst latencies.

    A record breaks wherever a run of any channel starts or ends, wherever the count of
    probers reporting or expected changes (``vantage``: a fleet's pooled seconds; None for
    a single instance, whose monitored seconds have 1 and 1) and around every second with
    a sampled latency; seconds of a counted verdict are one record each.
    """
    by_channel: dict[str, list[Run]] = {}
    points = {low, high}
    for run in sorted(runs, key=lambda r: r.first):
        by_channel.setdefault(run.channel, []).append(run)
        points.update((max(run.first, low), min(run.last + 1, high)))
    pooled = sorted(vantage or ())
    for first, last, _, _ in pooled:
        points.update((max(first, low), min(last + 1, high)))
    for second in worst:
        if low <= second < high:
            points.update((second, second + 1))
    cursor = dict.fromkeys(by_channel, 0)
    zero = (0,) * len(OUTCOMES)

    def covering(channel: str, second: int) -> Run | None:
        table = by_channel.get(channel)
        if not table:
            return None
        index = cursor[channel]
        while index < len(table) and table[index].last < second:
            index += 1
        cursor[channel] = index
        if index < len(table) and table[index].first <= second:
            return table[index]
        return None

    pooled_index = 0

    def probers(second: int, monitored: bool) -> tuple[int | None, int | None]:
        nonlocal pooled_index
        if vantage is None:
            return SINGLE_VANTAGE if monitored else (None, None)
        while pooled_index < len(pooled) and pooled[pooled_index][1] < second:
            pooled_index += 1
        if pooled_index < len(pooled) and pooled[pooled_index][0] <= second:
            return pooled[pooled_index][2], pooled[pooled_index][3]
        return None, None

    for start, stop in pairwise(sorted(p for p in points if low <= p <= high)):
        combined = covering(COMBINED, start)
        base: dict[str, Any] = {
            "second": "",
            "verdict": UNMONITORED if combined is None else combined.verdict,
        }
        for channel in CHANNELS:
            lane = covering(channel, start)
            base[channel] = None if lane is None else lane.verdict
        base.update(zip(OUTCOME_NAMES, zero if combined is None else combined.counts, strict=True))
        base["set_aside"] = 0 if combined is None else combined.set_aside
        traffic = zero if combined is None or not combined.traffic else combined.traffic
        reporting, expected = probers(start, combined is not None)
        seconds = (
            [(s, 1) for s in range(start, stop)]
            if base["verdict"] in _COUNTED
            else [(start, stop - start)]
        )
        for second, count in seconds:
            latency = worst.get(second) if count == 1 else None
            yield {
                **base,
                "second": format_time(second),
                "worst_latency_ms": None if latency is None else round(latency * 1000),
                "seconds": count,
                **dict(zip(TRAFFIC_FIELDS, traffic, strict=True)),
                "probers_reporting": reporting,
                "probers_expected": expected,
            }


def sample_json(attempt: Attempt) -> dict[str, Any]:
    """One sampled attempt as the bundle lists it."""
    return {
        "started_at": format_time(attempt.started_at),
        "channel": str(attempt.channel),
        "target": attempt.target,
        "prober": attempt.prober,
        "source": str(attempt.source),
        "outcome": str(attempt.outcome),
        "phase": attempt.phase,
        "detail": attempt.detail,
        "duration_s": round(attempt.duration_s, 3),
        "timings": {k: round(v, 3) for k, v in sorted(attempt.timings.items())},
    }


# -- assembling and writing ----------------------------------------------------------


@dataclass
class EvidenceSource:
    """What one incident's bundle is made of: its small parts and the store to stream from."""

    store: IncidentStore
    incident: Incident
    window: Window
    # The small parts in bundle order, already redacted.
    head: dict[str, Any]
    redact: Redactor


def evidence_source(
    store: IncidentStore,
    incident_id: str,
    loaded: LoadedConfig,
    *,
    now: float,
    version: str,
    margin: int = DEFAULT_MARGIN_S,
) -> EvidenceSource | None:
    """Everything but the streamed parts of a stored incident's bundle (None: no incident)."""
    events: list[EventRecord] = store.events(incident_id)
    incident = fold(events)
    if incident is None:
        return None
    window = evidence_window(
        incident, store.high_water().get((incident.service, COMBINED)), now, margin
    )
    clocks, clocks_error = clock_states(incident, events, now)
    try:
        service = loaded.config.service(incident.service)
        counting, environment = list(service.counts_as_unavailable), str(service.environment)
    except KeyError:
        counting, environment = [], ""
    # The provider's status page beside the measurement, when it was polled.
    timelines = declared_timelines(events)
    posted_at = first_update_at(events)
    declared = DeclaredTally(timelines) if timelines or posted_at is not None else None
    summary = window_summary(
        store,
        incident.service,
        window,
        counting=counting,
        environment=environment,
        declared=declared,
    )
    # Ingested attempts that came after their second was judged: counted, never judged.
    summary["late_attempts"] = sum(
        int(e.data.get("count", 0)) for e in events if e.kind == "attempts_late"
    )
    head: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "generated_at": format_time(now),
        "incident": incident.to_json(),
        "provider": (incident.terms.policy or {}).get("provider"),
        "definition": {
            "text": DEFINITION,
            "source": DEFINITION_SOURCE,
            "unit": "one wall-clock second; all attempts of one channel in it, from every prober",
            "counts_as_unavailable": counting,
        },
        "window": window.to_json(),
        "summary": summary,
        "provider_status": None
        if declared is None
        else declared.to_json(incident.started_at, posted_at),
        "clocks": clocks_json(clocks),
        "clocks_error": clocks_error,
        "events": [e.to_json() for e in events],
        "legend": dict(LEGEND),
        "software": {"name": "slawatch", "version": version},
        "config_digest": loaded.digest,
    }
    # A fleet's bundle names its vantage points (sealed like every part); one instance's has none.
    span_end = window.end - 1 if incident.restored_at is None else int(incident.restored_at) - 1
    vantage = store.vantage(window.first, window.end - 1, (incident.started_at, span_end))
    if vantage is not None:
        head["vantage"] = vantage
    redact = loaded.redact
    return EvidenceSource(
        store, incident, window, {k: redact.tree(v) for k, v in head.items()}, redact
    )


class _Writer(Protocol):
    def write(self, text: str, /) -> object: ...


class _Discard:
    """A writer that keeps nothing: the seal of a Markdown or HTML page is computed, not kept."""

    def write(self, text: str, /) -> int:
        return len(text)


def _member(out: _Writer, key: str, value: Any, *, first: bool = False) -> None:
    text = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  ")
    out.write(("" if first else ",\n") + f"  {json.dumps(key)}: {text}")


@dataclass
class Sealed:
    """What writing a bundle found beyond its small parts: probers, chain, seal."""

    head: dict[str, Any]
    probers: list[str]
    chain: dict[str, Any]
    seal: dict[str, Any]
    listed: list[dict[str, Any]] = field(default_factory=list)
    # The replies of failing samples by (channel, source), e.g. ("api", "traffic") → HTTP 503.
    codes: dict[tuple[str, str], list[str]] = field(default_factory=dict)


class _Texts:
    """The redactor for sample text, remembering answers: a log repeats few details."""

    LIMIT = 4096

    def __init__(self, redact: Redactor) -> None:
        self._redact = redact
        self._seen: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        done = self._seen.get(text)
        if done is None:
            if len(self._seen) >= self.LIMIT:
                self._seen.clear()
            done = self._seen[text] = self._redact(text)
        return done


# A sample detail that is a reply code: "HTTP 503", "SMTP 451".
_REPLY = re.compile(r"^(HTTP|SMTP) \d{3}$")


class _SampleList:
    """The ``samples`` part as it is written: redacted, digested, probers and failures noted."""

    def __init__(self, out: _Writer, redact: Redactor) -> None:
        self._out = out
        self._redact = _Texts(redact)
        self._separator = "\n"
        self.digest = _ListDigest()
        self.probers: set[str] = set()
        self.listed: list[dict[str, Any]] = []
        self.codes: dict[tuple[str, str], set[str]] = {}

    def add(self, attempt: Attempt) -> None:
        """Write one sampled attempt (every text that can hold a secret redacted)."""
        sample = sample_json(attempt)
        for key in ("target", "prober", "phase", "detail"):
            sample[key] = self._redact(sample[key])
        text = part_text(sample)
        self.digest.add(text)
        self._out.write(f"{self._separator}    {text}")
        self._separator = ",\n"
        if attempt.prober:
            self.probers.add(attempt.prober)
        if attempt.outcome is not Outcome.OK:
            if _REPLY.match(sample["detail"]):
                kind = (sample["channel"], sample["source"])
                self.codes.setdefault(kind, set()).add(sample["detail"])
            if len(self.listed) < MAX_LISTED_SAMPLES:
                self.listed.append(sample)

    def close(self) -> None:
        """End the list."""
        self._out.write("\n  ]" if self._separator != "\n" else "]")


class _RecordList:
    """The ``records`` part as it is made: chained, written to ``out``, shown to ``on_record``."""

    def __init__(self, out: _Writer, on_record: Callable[[Mapping[str, Any]], None] | None) -> None:
        self._out = out
        self._on_record = on_record
        self._separator = "\n"
        self.chain = Chain()

    def take(self, records: Iterable[dict[str, Any]]) -> None:
        """Chain and write records."""
        for record in records:
            sealed = self.chain.add(record)
            if self._on_record is not None:
                self._on_record(sealed)
            self._out.write(f"{self._separator}    {json.dumps(sealed)}")
            self._separator = ",\n"

    def close(self) -> str:
        """The end of the list."""
        return "\n  ]" if self._separator != "\n" else "]"


def write_json(
    out: _Writer,
    source: EvidenceSource,
    signer: Signer | None = None,
    *,
    on_record: Callable[[Mapping[str, Any]], None] | None = None,
) -> Sealed:
    """Write the bundle as JSON in one pass over the store; what was sealed.

    Each slice's samples go straight to ``out`` and its records to a spool file (the
    records follow the samples in the bundle), copied after the last slice.
    """
    parts: dict[str, str] = {}
    out.write("{\n")
    for index, (key, value) in enumerate(source.head.items()):
        _member(out, key, value, first=index == 0)
        parts[key] = part_digest(value)
    discard = isinstance(out, _Discard)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        samples = _SampleList(out, source.redact)
        records = _RecordList(out if discard else spool, on_record)
        merger = RecordMerger()
        out.write(',\n  "samples": [')
        for part in window_slices(source.store, source.incident.service, source.window):
            for attempt in part.samples:
                samples.add(attempt)
            records.take(merger.add(part))
        records.take(merger.finish())
        samples.close()
        parts["samples"] = samples.digest.hexdigest()
        # The probers that made an attempt in the window, as the samples show them (every
        # second that was not available keeps its attempts); never this host's own id.
        names = sorted(samples.probers)
        _member(out, "probers", names)
        parts["probers"] = part_digest(names)
        out.write(',\n  "records": [')
        spool.seek(0)
        shutil.copyfileobj(spool, out)
        out.write(records.close())
    chain_part = records.chain.to_json()
    _member(out, "chain", chain_part)
    parts["chain"] = part_digest(chain_part)
    top = seal_digest(parts)
    seal = {
        "algorithm": "sha256",
        "canonical": CANONICAL,
        "parts": parts,
        "digest": top,
        "signature": None if signer is None else signer.sign(top),
    }
    if signer is None:
        seal["note"] = UNSIGNED_NOTE
    _member(out, "seal", seal)
    out.write("\n}\n")
    codes = {key: sorted(found) for key, found in samples.codes.items()}
    return Sealed(source.head, names, chain_part, seal, samples.listed, codes)


def write_csv(out: _Writer, source: EvidenceSource) -> None:
    """The records alone, one row each, chained (no seal: the JSON holds that)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*RECORD_FIELDS, "digest"))
    chain = Chain()
    merger = RecordMerger()
    columns = (*RECORD_FIELDS, "digest")

    def take(records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            sealed = chain.add(record)
            writer.writerow(["" if sealed[n] is None else sealed[n] for n in columns])

    for part in window_slices(source.store, source.incident.service, source.window):
        take(merger.add(part))
    take(merger.finish())


def write_evidence(
    out: _Writer, fmt: str, source: EvidenceSource, signer: Signer | None = None
) -> None:
    """Write the bundle as JSON, CSV, Markdown (a ticket body) or HTML (a printable page)."""
    if fmt == "json":
        write_json(out, source, signer)
    elif fmt == "csv":
        write_csv(out, source)
    elif fmt == "md":
        out.write(_markdown(write_json(_Discard(), source, signer)))
    elif fmt == "html":
        timeline = _Timeline(source.window)
        sealed = write_json(_Discard(), source, signer, on_record=timeline.add)
        out.write(_html(sealed, timeline))
    else:
        raise EvidenceError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")


def render_evidence(
    store: IncidentStore,
    incident_id: str,
    loaded: LoadedConfig,
    fmt: str,
    *,
    now: float,
    version: str,
    margin: int = DEFAULT_MARGIN_S,
    signer: Signer | None = None,
) -> str | None:
    """A stored incident's bundle as text (None: no such incident); ``-o`` streams instead."""
    source = evidence_source(store, incident_id, loaded, now=now, version=version, margin=margin)
    if source is None:
        return None
    out = io.StringIO()
    write_evidence(out, fmt, source, signer)
    return out.getvalue()


# -- verifying -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking a bundle: OK, or the first thing that does not match."""

    format: str
    records: int
    head: str
    # 0-based index and second of the first record whose digest does not match; None: OK.
    bad_index: int | None = None
    bad_second: str | None = None
    # The first part of the bundle that does not match its seal (None: none, or no seal).
    part: str | None = None
    reason: str = ""
    # The seal digest of a format 2 JSON bundle ("" for CSV and format 1).
    seal: str = ""
    # The fingerprint of the key that signed the seal ("" when unsigned), and whether it
    # was checked against a key given to verify.
    signed_by: str = ""
    key_checked: bool = False

    @property
    def ok(self) -> bool:
        """True when every digest, the seal and any signature match."""
        return self.bad_index is None and self.part is None and not self.reason


def verify(text: str, key: Ed25519PublicKey | None = None) -> Verification:
    """Check a JSON or CSV bundle (with ``key``, its signature too); EvidenceError if neither."""
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        fields, rows = _csv_records(text)
        formats = {RECORD_FIELDS_1: FORMAT_1, RECORD_FIELDS_2: FORMAT_2, RECORD_FIELDS_3: FORMAT_3}
        result = _verify_records(rows, fields, formats.get(fields, BUNDLE_FORMAT))
        if result.ok and key is not None:
            return _failed(result, "a CSV holds the records only: it carries no signature")
        return result
    try:
        bundle = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvidenceError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    records = bundle.get("records") if isinstance(bundle, dict) else None
    chain = bundle.get("chain") if isinstance(bundle, dict) else None
    if not isinstance(records, list) or not isinstance(chain, dict):
        raise EvidenceError("not an evidence bundle (no records or chain)")
    if bundle.get("format") == FORMAT_1:
        result = _verify_records(records, RECORD_FIELDS_1, FORMAT_1)
        if result.ok and result.head != chain.get("head"):
            return _failed(result, f"head digest is not {result.head}")
        if result.ok and key is not None:
            return _failed(result, "a format 1 bundle carries no signature")
        return result
    sealed_fields = {
        FORMAT_2: RECORD_FIELDS_2,
        FORMAT_3: RECORD_FIELDS_3,
        BUNDLE_FORMAT: RECORD_FIELDS,
    }
    fmt = bundle.get("format")
    if fmt not in sealed_fields:
        raise EvidenceError(
            f"unknown bundle format {fmt!r} (this slawatch reads "
            f"{FORMAT_1}, {FORMAT_2}, {FORMAT_3} and {BUNDLE_FORMAT})"
        )
    return _verify_sealed(bundle, records, key, sealed_fields[fmt], fmt)


def _failed(result: Verification, reason: str, part: str | None = None) -> Verification:
    return Verification(
        format=result.format,
        records=result.records,
        head=result.head,
        part=part,
        reason=reason,
        seal=result.seal,
        signed_by=result.signed_by,
    )


def _verify_sealed(
    bundle: dict[str, Any],
    records: list[Any],
    key: Ed25519PublicKey | None,
    fields: Sequence[str],
    fmt: str,
) -> Verification:
    result = _verify_records(records, fields, fmt)
    if not result.ok:
        return result
    problem = next(_seal_mismatches(bundle, result), None)
    if problem is not None:
        return _failed(result, problem[1], problem[0])
    seal = bundle["seal"]
    digest = str(seal["digest"])
    signature = seal.get("signature")
    signed_by = str(signature.get("key_fingerprint", "")) if isinstance(signature, dict) else ""
    result = Verification(
        format=fmt,
        records=result.records,
        head=result.head,
        seal=digest,
        signed_by=signed_by,
        key_checked=key is not None and signature is not None,
    )
    if signature is None:
        return _failed(result, "the bundle is not signed", "seal") if key is not None else result
    reason = check_signature(signature, digest, key)
    return _failed(result, reason, "seal") if reason else result


def _seal_mismatches(bundle: dict[str, Any], result: Verification) -> Iterator[tuple[str, str]]:
    """(part, why) for each part that does not match the seal, in the bundle's order."""
    seal = bundle.get("seal")
    if not isinstance(seal, dict) or not isinstance(seal.get("parts"), dict):
        yield "seal", "the bundle has no seal"
        return
    sealed: dict[str, Any] = seal["parts"]
    chain = bundle["chain"]
    if chain.get("records") != result.records:
        yield (
            "chain",
            f"the chain says {chain.get('records')} records, the bundle has {result.records}",
        )
    if chain.get("head") != result.head:
        yield "chain", f"the chain's head is not {result.head}"
    for name, value in bundle.items():
        if name in ("records", "seal"):
            continue
        if name not in sealed:
            yield name, f"part {name!r} is not sealed (it was added)"
        elif sealed[name] != part_digest(value):
            yield name, f"part {name!r} does not match its seal digest"
    for name in sealed:
        if name not in bundle:
            yield name, f"part {name!r} is sealed but missing"
    covered = sum(r.get("seconds", 0) for r in bundle["records"])
    window = bundle.get("window")
    if not isinstance(window, dict) or window.get("seconds") != covered:
        yield "records", f"the records cover {covered} seconds, not the window's"
    digest = seal_digest(sealed)
    if seal.get("digest") != digest:
        yield "seal", f"the seal digest is not {digest}"


def _csv_records(text: str) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    rows = list(csv.reader(io.StringIO(text)))
    header = tuple(rows[0]) if rows else ()
    known = (RECORD_FIELDS, RECORD_FIELDS_3, RECORD_FIELDS_2, RECORD_FIELDS_1)
    fields = next((f for f in known if header == (*f, "digest")), None)
    if fields is None:
        raise EvidenceError("neither a JSON bundle nor an evidence CSV (unexpected columns)")
    records: list[dict[str, Any]] = []
    for row in rows[1:]:
        if not row:
            continue
        records.append(
            {name: _cell_value(name, cell) for name, cell in zip(header, row, strict=False)}
        )
    return fields, records


def _cell_value(name: str, cell: str) -> Any:
    if name in _INT_FIELDS:
        return int(cell) if cell.lstrip("-").isdigit() else cell
    if name in _NULLABLE_INT_FIELDS:
        if cell == "":
            return None
        return int(cell) if cell.lstrip("-").isdigit() else cell
    if name in CHANNELS and cell == "":
        return None
    return cell


def _verify_records(records: list[Any], fields: Sequence[str], fmt: str) -> Verification:
    previous = GENESIS
    for index, record in enumerate(records):
        second = record.get("second") if isinstance(record, dict) else None
        try:
            expected = chain_digest(previous, record, fields)
        except (KeyError, TypeError):
            expected = None
        if expected is None or not isinstance(record, dict) or record.get("digest") != expected:
            return Verification(
                format=fmt,
                records=len(records),
                head=previous,
                bad_index=index,
                bad_second=None if second is None else str(second),
                reason="digest does not match the record",
            )
        previous = expected
    return Verification(format=fmt, records=len(records), head=previous)


# -- rendering -----------------------------------------------------------------------


def _severity_line(head: Mapping[str, Any]) -> str:
    incident = head["incident"]
    provider = head.get("provider")
    policy = incident["sla"]["policy"]
    name = incident["provider_severity"]
    owner = f"{provider}'s " if provider else ""
    terms = f" under {policy}" if policy else ""
    return f"{incident['severity']} ({owner}{name}{terms})"


def _clock_rows(head: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for name, clock in head["clocks"].items():
        rows.append(
            (
                name,
                clock["target"] or "tracked (no numeric target)",
                clock["calendar"],
                clock["deadline"] or "not yet set",
                clock["state"]
                + (f" ({clock['breaches']} missed)" if clock["breaches"] > 1 else ""),
            )
        )
    return rows


def _sample_rows(
    listed: Sequence[Mapping[str, Any]], head: Mapping[str, Any]
) -> list[tuple[str, ...]]:
    """The listed samples as table rows; in a fleet each prober with its group (its location)."""
    groups = {p["id"]: p["group"] for p in head.get("vantage", {}).get("probers", ())}
    rows: list[tuple[str, ...]] = []
    for sample in listed:
        prober = sample["prober"] or "-"
        if groups.get(prober):
            prober = f"{prober} ({groups[prober]})"
        timings = ", ".join(f"{k} {v:.3f}s" for k, v in sample["timings"].items())
        rows.append(
            (
                sample["started_at"],
                sample["channel"],
                sample["target"],
                prober,
                sample.get("source", "probe"),
                sample["outcome"],
                sample["detail"] or "-",
                f"{sample['duration_s']:.3f}s",
                timings or "-",
            )
        )
    return rows


_SAMPLE_HEAD = (
    "Time (UTC)",
    "Channel",
    "Target",
    "Prober",
    "Source",
    "Outcome",
    "Status / reply",
    "Duration",
    "Timings",
)
_CLOCK_HEAD = ("Clock", "Target", "Calendar", "Deadline (UTC)", "State")


def _vantage_line(vantage: Mapping[str, Any]) -> str:
    """From how many probers and locations a fleet saw the incident."""
    probers = vantage["probers"]
    names = ", ".join(f"{p['id']} ({p['group']})" for p in probers)
    seen = vantage["incident"]["locations_reporting"]
    by = vantage["incident"]["probers_reporting"]
    if seen is None or by is None:
        return f"- **Vantage points:** {len(probers)} probers ({names})"

    def span(counts: Mapping[str, int]) -> str:
        low, high = counts["min"], counts["max"]
        return str(low) if low == high else f"{low} to {high}"

    return (
        f"- **Seen from:** {span(seen)} locations and {span(by)} probers in every second of "
        f"the incident (vantage points: {names})"
    )


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.extend("| " + " | ".join(cell(str(c)) for c in row) + " |" for row in rows)
    return lines


def _seal_lines(sealed: Sealed) -> list[tuple[str, str, bool]]:
    """Provenance rows shared by the ticket body and the printable page (name, value, is a code)."""
    head = sealed.head
    signature = sealed.seal["signature"]
    return [
        ("Probers", ", ".join(sealed.probers) or "-", False),
        ("Software", f"{head['software']['name']} {head['software']['version']}", False),
        ("Config digest (SHA-256)", head["config_digest"], True),
        (
            f"Records chain head (SHA-256, {sealed.chain['records']} records)",
            sealed.chain["head"],
            True,
        ),
        ("Evidence seal (SHA-256 over every part of the bundle)", sealed.seal["digest"], True),
        (
            "Signature",
            f"Ed25519, key {signature['key_fingerprint']}" if signature else UNSIGNED_NOTE,
            False,
        ),
        ("Generated", head["generated_at"], False),
    ]


def _legend_line(summary: Mapping[str, Any]) -> list[str]:
    return [
        f"- **{name}** ({summary['seconds'].get(name, 0)} s): {text}"
        for name, text in LEGEND.items()
    ]


def _lead(sealed: Sealed) -> str:
    """The strongest sentence the bundle's data supports (``incidents.sources.lead_sentence``)."""
    summary = sealed.head["summary"]
    return lead_sentence(summary, sealed.codes, environment=summary.get("environment", ""))


def _provider_sentences(head: Mapping[str, Any]) -> list[str]:
    """What the provider's page declared beside the measured seconds (none: not polled)."""
    part = head.get("provider_status")
    return side_by_side(part, head["summary"]["unavailable_seconds"]) if part else []


def _provider_lines(head: Mapping[str, Any]) -> list[str]:
    """The ticket's section on the provider's status page (none when it was not polled)."""
    sentences = _provider_sentences(head)
    if not sentences:
        return []
    lines = ["", "## The provider's status page", "", *sentences]
    rows = [(e["at"], e["note"]) for e in head["events"] if e["kind"] == PROVIDER_STATUS]
    if rows:
        lines += ["", *_md_table(("Time (UTC)", "The status page said"), rows)]
    return lines


def _markdown(sealed: Sealed) -> str:
    head = sealed.head
    incident = head["incident"]
    window = head["window"]
    summary = head["summary"]
    by_channel = ", ".join(f"{c.upper()} {n}" for c, n in summary["unavailable_by_channel"].items())
    lines = [
        f"# Unavailability of {incident['service']}: incident {incident['id']}",
        "",
        _lead(sealed),
        "",
        f"- **Severity:** {_severity_line(head)}",
        f"- **Window:** {window['from']} to {window['to']} ({window['seconds']} s, "
        f"from {window['margin_s']} s before the first bad second to the {window['until']})",
        f"- **Unavailable seconds:** {summary['unavailable_seconds']} ({by_channel}); "
        f"partial seconds: {summary['seconds']['partial']}; "
        f"unmonitored seconds: {summary['seconds'][UNMONITORED]}",
        f"- **Started:** {incident['started_at']} · **Detected:** {incident['detected_at']} · "
        f"**Restored:** {incident['restored_at'] or 'not yet'}",
    ]
    if summary.get("late_attempts"):
        lines.append(
            f"- **Late attempts:** {summary['late_attempts']} ingested attempts arrived after "
            "their second was judged: listed in the events, not counted in any second"
        )
    if incident["ticket"]:
        lines.append(f"- **Ticket:** {incident['ticket']}")
    if "vantage" in head:
        lines.append(_vantage_line(head["vantage"]))
    lines += _provider_lines(head)
    lines += ["", "## Definition judged by", "", f"> {head['definition']['text']}", ""]
    lines.append(
        f"({head['definition']['source']}.) Unit: {head['definition']['unit']}. "
        f"Outcomes counted as failing: {', '.join(head['definition']['counts_as_unavailable'])}."
    )
    lines += ["", "## Seconds by verdict", "", *_legend_line(summary)]
    lines += ["", "## SLA clocks", ""]
    if head["clocks"]:
        lines += _md_table(_CLOCK_HEAD, _clock_rows(head))
    else:
        lines.append(head["clocks_error"] or "No SLA clocks under this service's terms.")
    lines += ["", "## Sample failures", ""]
    rows = _sample_rows(sealed.listed, sealed.head)
    if rows:
        lines += _md_table(_SAMPLE_HEAD, rows)
    else:
        lines.append("No failing attempts were sampled in the window.")
    lines += ["", "## Provenance", ""]
    for name, value, code in _seal_lines(sealed):
        lines.append(f"- {name}: `{value}`" if code else f"- {name}: {value}")
    lines.append("")
    return "\n".join(lines)


class _Timeline:
    """The strips of the HTML timeline, merged from records as they stream past."""

    ROWS = (("service", "verdict"), *((c.upper(), c) for c in CHANNELS))

    def __init__(self, window: Window) -> None:
        self.window = window
        # row key → [label, first offset, seconds] strips, merged while the label repeats.
        self.strips: dict[str, list[list[Any]]] = {key: [] for _, key in self.ROWS}
        self.offset = 0

    def add(self, record: Mapping[str, Any]) -> None:
        for _, key in self.ROWS:
            label = record[key] or (UNMONITORED if record["verdict"] == UNMONITORED else "no_data")
            strips = self.strips[key]
            if strips and strips[-1][0] == label:
                strips[-1][2] += record["seconds"]
            else:
                strips.append([label, self.offset, record["seconds"]])
        self.offset += record["seconds"]

    def svg(self) -> str:
        """One row per channel seen and one for the service, each a strip of coloured runs."""
        total = max(1, self.window.seconds)
        width, row_h, label_w = 1000, 28, 90
        rows = [
            (label, key)
            for label, key in self.ROWS
            if key == "verdict"
            or any(s[0] not in ("no_data", UNMONITORED) for s in self.strips[key])
        ]
        parts = [
            f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="100%" '
            f'viewBox="0 0 {width + label_w} {row_h * len(rows) + 24}" role="img" '
            f'aria-label="per-second verdict timeline">'
        ]
        scale = width / total
        for row, (label, key) in enumerate(rows):
            y = row * row_h
            parts.append(
                f'<text x="0" y="{y + row_h * 0.65:.1f}" font-size="13">{html.escape(label)}</text>'
            )
            for name, offset, seconds in self.strips[key]:
                start = format_time(self.window.first + offset)
                parts.append(
                    f'<rect class="{html.escape(name)}" x="{label_w + offset * scale:.2f}" '
                    f'y="{y + 2}" width="{max(seconds * scale, 0.5):.2f}" height="{row_h - 6}" '
                    f'fill="{COLOURS.get(name, "#000000")}">'
                    f"<title>{start}: {html.escape(name)} ({seconds} s)</title></rect>"
                )
        axis_y = row_h * len(rows) + 16
        parts.append(
            f'<text x="{label_w}" y="{axis_y}" font-size="12">'
            f"{format_time(self.window.first)}</text>"
            f'<text x="{label_w + width}" y="{axis_y}" font-size="12" text-anchor="end">'
            f"{format_time(self.window.end)}</text>"
        )
        parts.append("</svg>")
        return "".join(parts)


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#111}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top}blockquote{border-left:4px solid #999;margin:8px 0;
padding:4px 12px;background:#f6f6f6}code{font-size:12px;word-break:break-all}
.legend span{display:inline-block;margin-right:14px;font-size:13px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
@media print{body{margin:0}h2{break-after:avoid}table{break-inside:avoid}}
"""


def _html(sealed: Sealed, timeline: _Timeline) -> str:
    esc = html.escape
    head = sealed.head
    incident = head["incident"]
    window = head["window"]
    summary = head["summary"]
    facts = [
        ("Severity", _severity_line(head)),
        (
            "Window",
            f"{window['from']} to {window['to']} ({window['seconds']} s, to the {window['until']})",
        ),
        ("Unavailable seconds", str(summary["unavailable_seconds"])),
        ("Partial seconds", str(summary["seconds"]["partial"])),
        ("Unmonitored seconds", str(summary["seconds"][UNMONITORED])),
        ("Started", incident["started_at"]),
        ("Detected", incident["detected_at"]),
        ("Restored", incident["restored_at"] or "not yet"),
        ("Ticket", incident["ticket"] or "-"),
    ]
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{esc(name)}: {esc(LEGEND[name])}</span>'
        for name, colour in COLOURS.items()
    )
    clocks = (
        _html_table(_CLOCK_HEAD, _clock_rows(head))
        if head["clocks"]
        else f"<p>{esc(head['clocks_error'] or 'No SLA clocks under these terms.')}</p>"
    )
    samples = _sample_rows(sealed.listed, sealed.head)
    sample_html = (
        _html_table(_SAMPLE_HEAD, samples)
        if samples
        else "<p>No failing attempts were sampled in the window.</p>"
    )
    title = f"Unavailability of {incident['service']}: incident {incident['id']}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f"<p>{esc(_lead(sealed))}</p>"
        f"{_html_table(('Fact', 'Value'), facts)}"
        f"<h2>Timeline</h2>{timeline.svg()}"
        f'<p class="legend">{legend}</p>'
        + "".join(f"<p>{esc(line)}</p>" for line in _provider_sentences(head))
        + f"<h2>Definition judged by</h2><blockquote>{esc(head['definition']['text'])}</blockquote>"
        f"<p>{esc(head['definition']['source'])}. Unit: {esc(head['definition']['unit'])}. "
        f"Outcomes counted as failing: "
        f"{esc(', '.join(head['definition']['counts_as_unavailable']))}.</p>"
        f"<h2>SLA clocks</h2>{clocks}"
        f"<h2>Sample failures</h2>{sample_html}"
        f"<h2>Provenance</h2>"
        + _html_table(("Item", "Value"), [(n, v) for n, v, _ in _seal_lines(sealed)])
        + "</body></html>\n"
    )
