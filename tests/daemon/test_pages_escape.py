"""Every page escapes what users and configs control: nothing they write becomes markup."""

from __future__ import annotations

from typing import Any

from slawatch.incidentpage import render_incident_page
from slawatch.reportspage import render_reports_page
from slawatch.statuspage import render_status_page

EVIL = '<script>alert("x")</script>'
NOW = 1_790_000_000.0
TIMELINE = {
    "from": EVIL,
    "to": EVIL,
    "first": 1_790_000_000,
    "end": 1_790_000_002,
    "channels": {EVIL: [{"first": 1_790_000_000, "seconds": 2, "verdict": EVIL}]},
}


def _incident() -> dict[str, Any]:
    return {
        "id": EVIL,
        "service": EVIL,
        "state": "open",
        "severity": 1,
        "provider_severity": EVIL,
        "started_at": EVIL,
        "detected_at": EVIL,
        "restored_at": None,
        "ticket": EVIL,
        "channels": [EVIL],
        "sla": {"policy": EVIL, "calendar": EVIL},
        "clocks": {
            EVIL: {
                "state": EVIL,
                "target": EVIL,
                "deadline": EVIL,
                "deadline_epoch": None,
                "deadline_local": EVIL,
                "time_zone": EVIL,
            }
        },
        "severity_changes": [{"at": EVIL, "from": 2, "to": 1, "source": EVIL}],
        "events": [{"at": EVIL, "kind": EVIL, "source": EVIL, "note": EVIL, "ticket": EVIL}],
        "samples": [
            {
                "started_at": EVIL,
                "channel": EVIL,
                "target": EVIL,
                "prober": EVIL,
                "outcome": EVIL,
                "detail": EVIL,
                "duration_s": 0.5,
            }
        ],
        "samples_total": 1,
        "writable": {"allowed": True, "token_required": True},
        "timeline": {**TIMELINE, "hour": 1, "hours": 1, "window_from": EVIL, "window_to": EVIL},
    }


def _inert(page: str) -> None:
    assert EVIL not in page
    assert "&lt;script&gt;" in page
    assert page.count("<script>") == 1  # only the page's own script


def test_status_page_escapes_timelines_probers_and_figures() -> None:
    """Service names, channel and verdict names, figures and prober details are escaped."""
    service = {
        "name": EVIL,
        "environment": EVIL,
        "policy": EVIL,
        "channels": {EVIL: {"verdict": EVIL}},
        "open_incident": EVIL,
        "commitment": 99.9,
        "timeline": TIMELINE,
        "month": {
            "month": EVIL,
            "availability_text": EVIL,
            "combined": {"availability": 0.5, "unavailable": 1, "observed": 2},
            "commitment": {
                "percent": 99.9,
                "remaining_seconds": 0,
                "budget_seconds": 0,
                "used_seconds": 1,
            },
        },
        "days": [
            {
                "day": EVIL,
                "availability": None,
                "availability_text": EVIL,
                "observed": 0,
                "unavailable": 0,
            }
        ],
    }
    prober = {
        "id": EVIL,
        "healthy": False,
        "checks": [{"name": EVIL, "ok": False, "detail": EVIL}],
        "misconfigured": [{"service": EVIL, "target": EVIL, "detail": EVIL}],
    }
    _inert(render_status_page([service], [_incident()], now=NOW, version=EVIL, probers=[prober]))


def test_incident_page_escapes_everything() -> None:
    """Ids, notes, tickets, clock fields, sample details and timeline labels are escaped."""
    _inert(render_incident_page(_incident(), now=NOW, version="0.1.0"))


def test_reports_page_escapes_everything() -> None:
    """Service names, month names and incident fields on the reports page are escaped."""
    doc = {
        "month": EVIL,
        "months": [EVIL],
        "overview": [
            {
                "service": EVIL,
                "commitment": None,
                "months": {EVIL: {"availability": None, "availability_text": EVIL, "met": None}},
            }
        ],
        "reports": [
            {
                "service": EVIL,
                "availability_text": EVIL,
                "commitment": None,
                "combined": {"availability": None, "observed": 0, "unavailable": 0},
            }
        ],
        "incidents": [_incident()],
        "incidents_total": 1,
        "page": 1,
        "pages": 1,
    }
    _inert(render_reports_page(doc, now=NOW, version="0.1.0"))
