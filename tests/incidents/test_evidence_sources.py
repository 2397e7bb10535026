"""Evidence by source: records count traffic, samples carry their source, the ticket leads with the data.

Attempt logs with both sources (probes and the customer's traffic) are replayed into a
store; the bundle of the incident they open is read back in every format.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from config.timetext import format_time
from incidents.evidence import (
    FORMAT_2,
    RECORD_FIELDS_2,
    RECORD_FIELDS_3,
    TRAFFIC_FIELDS,
    Chain,
    evidence_source,
    verify,
    write_evidence,
)
from incidents.memory_store import MemoryStore
from incidents.recorder import replay_into_store
from incidents.sources import lead_sentence
from tests.support.configs import config_from_yaml

T0 = 1_793_610_000  # 2026-11-02T09:40:00Z
CONFIG = """
prober: {id: eu-1}
storage: {attempts_per_second: 10}
services:
  - name: sparkpost
    sla: {policy: megaport, calendar: uk}
    classifier: {critical_after: 10s, recover_after: 5s, degraded_window: 60s, degraded_min_seconds: 5}
"""
# Per source, what one attempt of an outcome says.
DETAIL = {"ok": "HTTP 200", "server_error": "HTTP 503", "timeout": "HTTP 504"}


def lines(
    seconds: int, probe: str, traffic: str, *, calls: int = 3, start: int = T0
) -> list[bytes]:
    """One probe attempt and ``calls`` traffic attempts a second, with the given outcomes."""
    out = []
    for offset in range(seconds):
        at = start + offset
        attempts = [("eu-1", probe, 0.5)] + [
            ("traffic:checkout", traffic, 0.1 + i / 10) for i in range(calls)
        ]
        for prober, outcome, fraction in sorted(attempts, key=lambda a: a[2]):
            record = {
                "service": "sparkpost",
                "channel": "api",
                "target": "transmissions" if prober.startswith("traffic:") else "account",
                "prober": prober,
                "started_at": format_time(at + fraction, precision=3),
                "outcome": outcome,
                "duration_s": 0.2,
                "detail": DETAIL[outcome],
            }
            out.append(json.dumps(record).encode() + b"\n")
    return out


def bundle(log: list[bytes], fmt: str = "json") -> tuple[str, Any]:
    loaded = config_from_yaml(CONFIG)
    store = MemoryStore()
    result = replay_into_store(log, loaded, store, horizon=2)
    (incident,) = result.incidents
    source = evidence_source(store, incident.id, loaded, now=T0 + 3600, version="test")
    assert source is not None
    out = io.StringIO()
    write_evidence(out, fmt, source)
    return out.getvalue(), result


def outage(probe: str, traffic: str) -> list[bytes]:
    return [
        *lines(20, "ok", "ok"),
        *lines(30, probe, traffic, start=T0 + 20),
        *lines(20, "ok", "ok", start=T0 + 50),
    ]


def test_an_outage_seen_by_both_sources() -> None:
    """Records split counts by source, samples carry theirs, and the ticket leads with the calls."""
    text, result = bundle(outage("server_error", "server_error"))
    assert result.incidents[0].severity == 1
    document = json.loads(text)
    assert document["format"] == "slawatch-evidence/4"
    assert verify(text).ok
    bad = [r for r in document["records"] if r["verdict"] == "unavailable"]
    assert len(bad) == 30
    assert (bad[0]["server_error"], bad[0]["traffic_server_error"], bad[0]["traffic_ok"]) == (
        4,
        3,
        0,
    )
    sources = document["summary"]["sources"]["api"]["unavailable"]
    assert sources == {
        "probe": {"attempts": 30, "failed": 30},
        "traffic": {"attempts": 90, "failed": 90},
    }
    assert {s["source"] for s in document["samples"]} == {"probe", "traffic"}
    markdown, _ = bundle(outage("server_error", "server_error"), "md")
    assert markdown.splitlines()[2] == (
        "In each of these 30 seconds, all 90 of our production API calls failed (HTTP 503), "
        "and so did every synthetic probe (30 attempts)."
    )
    assert "| traffic:checkout | traffic | server_error | HTTP 503 |" in markdown
    page, _ = bundle(outage("server_error", "server_error"), "html")
    assert "all 90 of our production API calls failed (HTTP 503)" in page


@pytest.mark.parametrize(
    ("probe", "traffic", "lead"),
    [
        pytest.param(
            "ok",
            "server_error",
            "In 30 seconds, every one of our production API calls failed while the synthetic "
            "probes succeeded: those seconds are partial, not unavailable, since the contract "
            "counts a second only when all of the customer's calls in it fail.",
            id="probes-ok-traffic-fails",
        ),
        pytest.param(
            "timeout",
            "ok",
            "In 30 seconds, every synthetic API probe failed while our production API calls "
            "succeeded: those seconds are partial, not unavailable, since the contract counts "
            "a second only when all of the customer's calls in it fail.",
            id="probes-fail-traffic-ok",
        ),
    ],
)
def test_one_source_failing_is_partial_and_explained(probe: str, traffic: str, lead: str) -> None:
    """One source failing, the other not: partial seconds, no critical incident, the reason said."""
    markdown, result = bundle(outage(probe, traffic), "md")
    assert result.services["sparkpost"]["api"]["partial"] == 30
    assert result.services["sparkpost"]["api"]["unavailable"] == 0
    assert all(incident.severity != 1 for incident in result.incidents)
    assert markdown.splitlines()[2] == lead


@pytest.mark.parametrize(
    ("summary", "codes", "environment", "lead"),
    [
        pytest.param(
            {
                "unavailable_by_channel": {"api": 0, "smtp": 4},
                "sources": {
                    "smtp": {
                        "unavailable": {
                            "probe": {"attempts": 4, "failed": 4},
                            "traffic": {"attempts": 0, "failed": 0},
                        },
                        "partial": {},
                        "partial_traffic_only": 0,
                        "partial_probes_only": 0,
                    }
                },
            },
            {("smtp", "probe"): ["SMTP 421", "SMTP 451"]},
            "production",
            "In each of these 4 seconds, all 4 of our synthetic SMTP probe attempts failed (SMTP 421/451).",
            id="probes-only",
        ),
        pytest.param(
            {
                "unavailable_by_channel": {"api": 1},
                "sources": {
                    "api": {
                        "unavailable": {
                            "probe": {"attempts": 0, "failed": 0},
                            "traffic": {"attempts": 1312, "failed": 1312},
                        },
                        "partial_traffic_only": 0,
                        "partial_probes_only": 0,
                    }
                },
            },
            {("api", "traffic"): ["HTTP 500", "timeout"]},
            "staging",
            "In this second, all 1,312 of our staging API calls failed (HTTP 500, timeout).",
            id="traffic-only",
        ),
        pytest.param(
            {
                "unavailable_by_channel": {"api": 2},
                "sources": {
                    "api": {
                        "unavailable": {
                            "probe": {"attempts": 2, "failed": 2},
                            "traffic": {"attempts": 0, "failed": 0},
                        }
                    }
                },
            },
            {},
            "",
            "In each of these 2 seconds, all 2 of our synthetic API probe attempts failed.",
            id="no-codes",
        ),
        pytest.param(
            {"seconds": {"partial": 3}, "sources": {}},
            {},
            "production",
            "In 3 seconds some calls failed by timeout or internal service error, but not all: "
            "no second was unavailable.",
            id="plain-partial",
        ),
        pytest.param(
            {"seconds": {"partial": 0}},
            {},
            "",
            "No second of the window was unavailable.",
            id="nothing",
        ),
    ],
)
def test_lead_sentence(summary: dict[str, Any], codes: Any, environment: str, lead: str) -> None:
    """The lead claims only what the counts show."""
    assert lead_sentence(summary, codes, environment=environment) == lead


def test_format_2_csv_still_verifies() -> None:
    """A records CSV written before traffic columns verifies as format 2."""
    chain = Chain(RECORD_FIELDS_2)
    record = {
        **dict.fromkeys(RECORD_FIELDS_2, 0),
        "second": "2026-11-02T09:40:00Z",
        "verdict": "available",
        "api": "available",
        "smtp": None,
        "worst_latency_ms": None,
    }
    sealed = chain.add(record)
    header = ",".join((*RECORD_FIELDS_2, "digest"))
    row = ",".join(
        "" if sealed[n] is None else str(sealed[n]) for n in (*RECORD_FIELDS_2, "digest")
    )
    result = verify(header + "\n" + row + "\n")
    assert (result.ok, result.format) == (True, FORMAT_2)
    assert RECORD_FIELDS_3[-len(TRAFFIC_FIELDS) :] == TRAFFIC_FIELDS
