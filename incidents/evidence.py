"""Evidence bundles (DESIGN.md §8): one incident's seconds under a hash chain, in four formats.

A bundle is built once as JSON-able data (:func:`build_bundle`), then rendered as JSON,
CSV, Markdown or HTML by the one pure :func:`render`. Each per-second record carries
``digest = sha256(previous digest + canonical record)``, starting from ``GENESIS``; the
bundle carries the last digest (the head), which the ticket body quotes. The canonical
record is the JSON array of the record's values in ``RECORD_FIELDS`` order, so the CSV
(the same columns) verifies exactly like the JSON.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from classifier.verdict import COMBINED, OUTCOMES, VERDICTS
from config import LoadedConfig
from config.catalog import ClockName
from config.secrets import Redactor
from config.timetext import format_time
from incidents.lifecycle import fold
from incidents.model import EventRecord, Incident, Run
from incidents.store import IncidentStore
from incidents.view import clock_states
from probe.attempt import Attempt, Outcome
from sla.clocks import ClockState, clocks_json

Format = Literal["json", "csv", "md", "html"]
FORMATS: tuple[Format, ...] = get_args(Format)
BUNDLE_FORMAT = "slawatch-evidence/1"
GENESIS = "0" * 64
# Seconds shown before ``started_at`` unless told otherwise: the run-up to the outage.
DEFAULT_MARGIN_S = 60
# Failures listed in the ticket body and the printable page (the JSON keeps them all).
MAX_LISTED_SAMPLES = 20
CHANNELS = ("api", "smtp")
OUTCOME_NAMES: tuple[str, ...] = tuple(str(o) for o in OUTCOMES)
RECORD_FIELDS: tuple[str, ...] = (
    "second",
    "verdict",
    *CHANNELS,
    *OUTCOME_NAMES,
    "set_aside",
    "worst_latency_ms",
)
_INT_FIELDS = frozenset((*OUTCOME_NAMES, "set_aside"))
DEFINITION = (
    '"Unavailability" means when, in a given second, Customer attempts to make: (a) API '
    "calls and all such API calls fail due to either a server-side timeout or internal "
    "service error; and/or (b) SMTP injections and all such SMTP injections fail due to "
    "either a server-side timeout or internal service error."
)
DEFINITION_SOURCE = "Bird / SparkPost / MessageBird enterprise support terms"
# Timeline colours, one per verdict (also the legend).
COLOURS = {
    "available": "#2ca02c",
    "unavailable": "#d62728",
    "partial": "#ff7f0e",
    "inconclusive": "#9467bd",
    "no_data": "#c7c7c7",
}


class EvidenceError(ValueError):
    """A bundle that cannot be read or verified (not JSON or CSV, no records, wrong columns)."""


def canonical(record: Mapping[str, Any]) -> str:
    """The text a record's digest covers: its values in RECORD_FIELDS order, as compact JSON."""
    return json.dumps([record[name] for name in RECORD_FIELDS], separators=(",", ":"))


def chain_digest(previous: str, record: Mapping[str, Any]) -> str:
    """``sha256(previous digest + canonical record)`` as hex."""
    return hashlib.sha256((previous + canonical(record)).encode("utf-8")).hexdigest()


def seal(records: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The records with their chained ``digest`` added, and the head digest."""
    previous = GENESIS
    sealed = []
    for record in records:
        previous = chain_digest(previous, record)
        sealed.append({**{name: record[name] for name in RECORD_FIELDS}, "digest": previous})
    return sealed, previous


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking a bundle's chain: OK, or the first altered record."""

    records: int
    head: str
    # 0-based index and second of the first record whose digest does not match; None: OK.
    bad_index: int | None = None
    bad_second: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when every digest and the head match."""
        return self.bad_index is None and not self.reason


def verify(text: str) -> Verification:
    """Recompute the chain of a JSON or CSV bundle; EvidenceError if it is neither."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            bundle = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvidenceError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
        records = bundle.get("records") if isinstance(bundle, dict) else None
        chain = bundle.get("chain") if isinstance(bundle, dict) else None
        if not isinstance(records, list) or not isinstance(chain, dict):
            raise EvidenceError("not an evidence bundle (no records or chain)")
        return _verify_records(records, chain.get("head"))
    return _verify_records(_csv_records(text), None)


def _csv_records(text: str) -> list[dict[str, Any]]:
    rows = list(csv.reader(io.StringIO(text)))
    header = (*RECORD_FIELDS, "digest")
    if not rows or tuple(rows[0]) != header:
        raise EvidenceError("neither a JSON bundle nor an evidence CSV (unexpected columns)")
    records: list[dict[str, Any]] = []
    for row in rows[1:]:
        if not row:
            continue
        record: dict[str, Any] = {}
        for name, cell in zip(header, row, strict=False):
            record[name] = _cell_value(name, cell)
        records.append(record)
    return records


def _cell_value(name: str, cell: str) -> Any:
    if name in _INT_FIELDS:
        return int(cell) if cell.lstrip("-").isdigit() else cell
    if name == "worst_latency_ms":
        if cell == "":
            return None
        return int(cell) if cell.lstrip("-").isdigit() else cell
    if name in CHANNELS and cell == "":
        return None
    return cell


def _verify_records(records: list[Any], head: object) -> Verification:
    previous = GENESIS
    for index, record in enumerate(records):
        second = record.get("second") if isinstance(record, dict) else None
        try:
            expected = chain_digest(previous, record)
        except (KeyError, TypeError):
            expected = None
        if expected is None or not isinstance(record, dict) or record.get("digest") != expected:
            return Verification(
                records=len(records),
                head=previous,
                bad_index=index,
                bad_second=None if second is None else str(second),
                reason="digest does not match the record",
            )
        previous = expected
    if head is not None and head != previous:
        return Verification(
            records=len(records), head=previous, reason=f"head digest is not {previous}"
        )
    return Verification(records=len(records), head=previous)


def per_second_records(
    runs: Iterable[Run], samples: Iterable[Attempt], first: int, end: int
) -> list[dict[str, Any]]:
    """One record per second of ``first..end-1``: verdicts, attempts by outcome, worst latency.

    Seconds no run covers (slawatch was not running) are ``no_data``. The worst latency
    is that of the slowest sampled attempt of the second (samples are kept for every
    second that was not available), None when the second has none.
    """
    by_channel: dict[str, dict[int, Run]] = {}
    for run in runs:
        table = by_channel.setdefault(run.channel, {})
        for second in range(max(run.first, first), min(run.last, end - 1) + 1):
            table[second] = run
    worst: dict[int, float] = {}
    for attempt in samples:
        if first <= attempt.second < end:
            worst[attempt.second] = max(worst.get(attempt.second, 0.0), attempt.duration_s)
    zero = (0,) * len(OUTCOMES)
    records = []
    combined = by_channel.get(COMBINED, {})
    for second in range(first, end):
        combined_run = combined.get(second)
        record: dict[str, Any] = {
            "second": format_time(second),
            "verdict": "no_data" if combined_run is None else combined_run.verdict,
        }
        for channel in CHANNELS:
            channel_run = by_channel.get(channel, {}).get(second)
            record[channel] = None if channel_run is None else channel_run.verdict
        counts = zero if combined_run is None else combined_run.counts
        record.update(zip(OUTCOME_NAMES, counts, strict=True))
        record["set_aside"] = 0 if combined_run is None else combined_run.set_aside
        latency = worst.get(second)
        record["worst_latency_ms"] = None if latency is None else round(latency * 1000)
        records.append(record)
    return records


def build_bundle(
    incident: Incident,
    events: Sequence[EventRecord],
    runs: Iterable[Run],
    samples: Sequence[Attempt],
    clocks: Mapping[ClockName, ClockState],
    *,
    now: float,
    margin: int = DEFAULT_MARGIN_S,
    counts_as_unavailable: Sequence[str] = (),
    prober: str = "",
    version: str = "",
    config_digest: str = "",
    secrets: Iterable[str] = (),
    clocks_error: str = "",
) -> dict[str, Any]:
    """The evidence bundle of one incident as JSON-able data, sealed and with secrets redacted."""
    first = incident.started_at - max(0, margin)
    end = incident.restored_at if incident.restored_at is not None else math.floor(now)
    end = max(end, incident.started_at + 1)
    window_samples = [a for a in samples if first <= a.second < end]
    records, head = seal(per_second_records(runs, window_samples, first, end))
    summary = {str(v): 0 for v in VERDICTS}
    by_channel = dict.fromkeys(CHANNELS, 0)
    for record in records:
        summary[record["verdict"]] += 1
        for channel in CHANNELS:
            by_channel[channel] += record[channel] == "unavailable"
    probers = sorted(
        {a.prober for a in window_samples if a.prober} | ({prober} if prober else set())
    )
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "generated_at": format_time(now),
        "incident": incident.to_json(),
        "provider": (incident.terms.policy or {}).get("provider"),
        "definition": {
            "text": DEFINITION,
            "source": DEFINITION_SOURCE,
            "unit": "one wall-clock second; all attempts of one channel in it, from every prober",
            "counts_as_unavailable": list(counts_as_unavailable),
        },
        "window": {
            "from": format_time(first),
            "to": format_time(end),
            "seconds": end - first,
            "margin_s": incident.started_at - first,
        },
        "summary": {
            "seconds": summary,
            "unavailable_seconds": summary["unavailable"],
            "unavailable_by_channel": by_channel,
        },
        "clocks": clocks_json(clocks),
        "clocks_error": clocks_error,
        "events": [e.to_json() for e in events],
        "samples": [sample_json(a) for a in window_samples],
        "probers": probers,
        "software": {"name": "slawatch", "version": version},
        "config_digest": config_digest,
        "chain": {
            "algorithm": "sha256",
            "genesis": GENESIS,
            "canonical": "JSON array of the record's values in fields order",
            "fields": list(RECORD_FIELDS),
            "records": len(records),
            "head": head,
        },
        "records": records,
    }
    # The records hold only times, verdict names and numbers (no text a secret can be in),
    # and redacting them after sealing would break the chain: everything else is redacted.
    redact = Redactor(secrets)
    return {
        key: value if key in ("records", "chain") else redact.tree(value)
        for key, value in bundle.items()
    }


def bundle_for(
    store: IncidentStore,
    incident_id: str,
    loaded: LoadedConfig,
    *,
    now: float,
    version: str,
    margin: int = DEFAULT_MARGIN_S,
) -> dict[str, Any] | None:
    """The evidence bundle of a stored incident (None if there is no such incident)."""
    events = store.events(incident_id)
    incident = fold(events)
    if incident is None:
        return None
    first = incident.started_at - max(0, margin)
    last = (incident.restored_at if incident.restored_at is not None else math.floor(now)) - 1
    clocks, error = clock_states(incident, events, now)
    try:
        counting = list(loaded.config.service(incident.service).counts_as_unavailable)
    except KeyError:
        counting = []
    return build_bundle(
        incident,
        events,
        store.runs(incident.service, None, first, max(first, last)),
        store.samples(incident.service, first, max(first, last)),
        clocks,
        now=now,
        margin=margin,
        counts_as_unavailable=counting,
        prober=loaded.config.prober.id,
        version=version,
        config_digest=loaded.digest,
        secrets=loaded.secrets,
        clocks_error=error,
    )


def sample_json(attempt: Attempt) -> dict[str, Any]:
    """One sampled attempt as evidence shows it (times RFC 3339, durations in seconds)."""
    return {
        "started_at": format_time(attempt.started_at),
        "channel": str(attempt.channel),
        "target": attempt.target,
        "prober": attempt.prober,
        "outcome": str(attempt.outcome),
        "phase": attempt.phase,
        "detail": attempt.detail,
        "duration_s": round(attempt.duration_s, 3),
        "timings": {k: round(v, 3) for k, v in sorted(attempt.timings.items())},
    }


# -- rendering ---------------------------------------------------------------------


def render(bundle: Mapping[str, Any], fmt: str) -> str:
    """The bundle as JSON, CSV, Markdown (a ticket body) or HTML (a printable page)."""
    if fmt == "json":
        return json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return _csv(bundle)
    if fmt == "md":
        return _markdown(bundle)
    if fmt == "html":
        return _html(bundle)
    raise EvidenceError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")


def _csv(bundle: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*RECORD_FIELDS, "digest"))
    for record in bundle["records"]:
        writer.writerow(
            ["" if record[name] is None else record[name] for name in (*RECORD_FIELDS, "digest")]
        )
    return out.getvalue()


def _severity_line(bundle: Mapping[str, Any]) -> str:
    incident = bundle["incident"]
    provider = bundle.get("provider")
    policy = incident["sla"]["policy"]
    name = incident["provider_severity"]
    owner = f"{provider}'s " if provider else ""
    terms = f" under {policy}" if policy else ""
    return f"{incident['severity']} ({owner}{name}{terms})"


def _clock_rows(bundle: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for name, clock in bundle["clocks"].items():
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


def _sample_rows(bundle: Mapping[str, Any]) -> list[tuple[str, ...]]:
    failures = [s for s in bundle["samples"] if s["outcome"] != str(Outcome.OK)]
    rows: list[tuple[str, ...]] = []
    for sample in failures[:MAX_LISTED_SAMPLES]:
        timings = ", ".join(f"{k} {v:.3f}s" for k, v in sample["timings"].items())
        rows.append(
            (
                sample["started_at"],
                sample["channel"],
                sample["target"],
                sample["prober"] or "-",
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
    "Outcome",
    "Status / reply",
    "Duration",
    "Timings",
)
_CLOCK_HEAD = ("Clock", "Target", "Calendar", "Deadline (UTC)", "State")


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.extend("| " + " | ".join(cell(str(c)) for c in row) + " |" for row in rows)
    return lines


def _markdown(bundle: Mapping[str, Any]) -> str:
    incident = bundle["incident"]
    window = bundle["window"]
    summary = bundle["summary"]
    by_channel = ", ".join(f"{c.upper()} {n}" for c, n in summary["unavailable_by_channel"].items())
    lines = [
        f"# Unavailability of {incident['service']}: incident {incident['id']}",
        "",
        f"- **Severity:** {_severity_line(bundle)}",
        f"- **Window:** {window['from']} to {window['to']} ({window['seconds']} s, "
        f"from {window['margin_s']} s before the first bad second)",
        f"- **Unavailable seconds:** {summary['unavailable_seconds']} ({by_channel}); "
        f"partial seconds: {summary['seconds']['partial']}",
        f"- **Started:** {incident['started_at']} · **Detected:** {incident['detected_at']} · "
        f"**Restored:** {incident['restored_at'] or 'not yet'}",
    ]
    if incident["ticket"]:
        lines.append(f"- **Ticket:** {incident['ticket']}")
    lines += ["", "## Definition judged by", "", f"> {bundle['definition']['text']}", ""]
    lines.append(
        f"({bundle['definition']['source']}.) Unit: {bundle['definition']['unit']}. "
        f"Outcomes counted as failing: {', '.join(bundle['definition']['counts_as_unavailable'])}."
    )
    lines += ["", "## SLA clocks", ""]
    if bundle["clocks"]:
        lines += _md_table(_CLOCK_HEAD, _clock_rows(bundle))
    else:
        lines.append(bundle["clocks_error"] or "No SLA clocks under this service's terms.")
    lines += ["", "## Sample failures", ""]
    rows = _sample_rows(bundle)
    if rows:
        lines += _md_table(_SAMPLE_HEAD, rows)
    else:
        lines.append("No failing attempts were sampled in the window.")
    lines += [
        "",
        "## Provenance",
        "",
        f"- Probers: {', '.join(bundle['probers']) or '-'}",
        f"- Software: {bundle['software']['name']} {bundle['software']['version']}",
        f"- Config digest (SHA-256): `{bundle['config_digest']}`",
        f"- Evidence digest (SHA-256 hash-chain head over {bundle['chain']['records']} "
        f"per-second records): `{bundle['chain']['head']}`",
        f"- Generated: {bundle['generated_at']}",
        "",
    ]
    return "\n".join(lines)


def _timeline_svg(bundle: Mapping[str, Any]) -> str:
    """One row per channel and one for the service, each a strip of coloured verdict runs."""
    records = bundle["records"]
    total = max(1, len(records))
    width, row_h, label_w = 1000, 28, 90
    rows = [("service", "verdict"), *((c.upper(), c) for c in CHANNELS)]
    rows = [r for r in rows if r[1] == "verdict" or any(rec[r[1]] for rec in records)]
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
        start = 0
        for index in range(1, len(records) + 1):
            current = records[start][key] or "no_data"
            if index < len(records) and (records[index][key] or "no_data") == current:
                continue
            x = label_w + start * scale
            w = max((index - start) * scale, 0.5)
            parts.append(
                f'<rect class="{html.escape(current)}" x="{x:.2f}" y="{y + 2}" width="{w:.2f}" '
                f'height="{row_h - 6}" fill="{COLOURS.get(current, "#000000")}">'
                f"<title>{html.escape(records[start]['second'])}: {html.escape(current)}"
                f" ({index - start} s)</title></rect>"
            )
            start = index
    axis_y = row_h * len(rows) + 16
    if records:
        parts.append(
            f'<text x="{label_w}" y="{axis_y}" font-size="12">'
            f"{html.escape(records[0]['second'])}</text>"
            f'<text x="{label_w + width}" y="{axis_y}" font-size="12" text-anchor="end">'
            f"{html.escape(bundle['window']['to'])}</text>"
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


def _html(bundle: Mapping[str, Any]) -> str:
    esc = html.escape
    incident = bundle["incident"]
    window = bundle["window"]
    summary = bundle["summary"]
    facts = [
        ("Severity", _severity_line(bundle)),
        ("Window", f"{window['from']} to {window['to']} ({window['seconds']} s)"),
        ("Unavailable seconds", str(summary["unavailable_seconds"])),
        ("Partial seconds", str(summary["seconds"]["partial"])),
        ("Started", incident["started_at"]),
        ("Detected", incident["detected_at"]),
        ("Restored", incident["restored_at"] or "not yet"),
        ("Ticket", incident["ticket"] or "-"),
    ]
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{esc(name)}</span>'
        for name, colour in COLOURS.items()
    )
    clocks = (
        _html_table(_CLOCK_HEAD, _clock_rows(bundle))
        if bundle["clocks"]
        else f"<p>{esc(bundle['clocks_error'] or 'No SLA clocks under these terms.')}</p>"
    )
    samples = _sample_rows(bundle)
    sample_html = (
        _html_table(_SAMPLE_HEAD, samples)
        if samples
        else "<p>No failing attempts were sampled in the window.</p>"
    )
    provenance = [
        ("Probers", ", ".join(bundle["probers"]) or "-"),
        ("Software", f"{bundle['software']['name']} {bundle['software']['version']}"),
        ("Config digest (SHA-256)", bundle["config_digest"]),
        (
            f"Evidence digest (chain head, {bundle['chain']['records']} records)",
            bundle["chain"]["head"],
        ),
        ("Generated", bundle["generated_at"]),
    ]
    title = f"Unavailability of {incident['service']}: incident {incident['id']}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f"{_html_table(('Fact', 'Value'), facts)}"
        f"<h2>Timeline (one column per second)</h2>{_timeline_svg(bundle)}"
        f'<p class="legend">{legend}</p>'
        f"<h2>Definition judged by</h2><blockquote>{esc(bundle['definition']['text'])}</blockquote>"
        f"<p>{esc(bundle['definition']['source'])}. Unit: {esc(bundle['definition']['unit'])}. "
        f"Outcomes counted as failing: "
        f"{esc(', '.join(bundle['definition']['counts_as_unavailable']))}.</p>"
        f"<h2>SLA clocks</h2>{clocks}"
        f"<h2>Sample failures</h2>{sample_html}"
        f"<h2>Provenance</h2>" + _html_table(("Item", "Value"), provenance) + "</body></html>\n"
    )
