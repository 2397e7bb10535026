"""Availability reports: a month with a known outage gives the hand-computed figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier.signals import Opened, Restored, Upgraded
from config import load_config
from incidents.lifecycle import signal_event
from incidents.model import Run
from incidents.report import ReportError, build_report, figures, month_range, render_report
from incidents.sqlite_store import SqliteStore
from incidents.store import Batch
from sla.terms import freeze_terms
from tests.incidents.incidents_timeline import ENV, write_config
from tests.support.cli import run_slawatch

NOV = 1_793_491_200  # 2026-11-01T00:00:00Z
DEC = NOV + 30 * 86_400
OUTAGE = 1_795_168_800  # 2026-11-20T10:00:00Z
DAY = 86_400
OK = (1, 0, 0, 0, 0, 0, 0, 0, 0)


def _runs(channel: str, bad: bool) -> list[Run]:
    """A month of one channel: an hour of no data, a 30-minute outage, 10 minutes partial, 2 h down."""

    def run(verdict: str, first: int, last: int) -> Run:
        return Run("bird", channel, verdict, first, last, OK)

    return [
        run("available", NOV - 12 * 3600, NOV + 9 * DAY - 1),  # starts in October: clipped
        run("no_data", NOV + 9 * DAY, NOV + 9 * DAY + 3599),
        run("available", NOV + 9 * DAY + 3600, OUTAGE - 1),
        run("unavailable" if bad else "available", OUTAGE, OUTAGE + 1799),
        run("partial" if bad else "available", OUTAGE + 1800, OUTAGE + 2399),
        run("available", OUTAGE + 2400, NOV + 25 * DAY - 1),
        # slawatch was not running for two hours: no run at all
        run("available", NOV + 25 * DAY + 7200, DEC + 5000),  # runs on into December: clipped
    ]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A config and its store holding November 2026 for the API, SMTP and the service."""
    config = write_config(tmp_path)
    loaded = load_config(config, ENV)
    terms = freeze_terms(
        loaded.config.service("bird"), loaded.catalog, loaded.calendars(), at=OUTAGE
    )
    signals = [
        Opened(
            "bird", "bird-20261120T100000Z", 2, "Non-Critical Issue", OUTAGE, OUTAGE + 11, ("api",)
        ),
        Upgraded(
            "bird", "bird-20261120T100000Z", 2, 1, "Critical Issue", OUTAGE, OUTAGE + 60, ("api",)
        ),
        Restored("bird", "bird-20261120T100000Z", 1, OUTAGE + 2400, OUTAGE + 2520, ("api",)),
    ]
    with SqliteStore(tmp_path / "store.db") as store:
        store.commit(
            Batch(
                events=[signal_event(s, terms, source="classifier") for s in signals],
                runs=_runs("api", bad=True)
                + _runs("smtp", bad=False)
                + _runs("combined", bad=True),
            )
        )
    return tmp_path


def test_month_report_gives_the_exact_availability(folder: Path) -> None:
    """November 2026: 2,592,000 s, 3,600 no data, 7,200 unmonitored, 1,800 unavailable, 600 partial.

    observed = 2,592,000 - 3,600 - 7,200 = 2,581,200
    availability = (2,581,200 - 1,800) / 2,581,200 = 71650/717 % = 99.930265 %
    budget at 99.9 % = floor(2,581,200 x 0.1 %) = floor(2,581.2) = 2,581 s; 781 s remain.
    """
    done = run_slawatch(
        "report", "--config", "slawatch.yaml", "--service", "bird", "--month", "2026-11",
        "--format", "json", cwd=folder, env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["from"], report["to"], report["seconds"]) == (
        "2026-11-01T00:00:00Z",
        "2026-12-01T00:00:00Z",
        2_592_000,
    )
    assert report["combined"] == {
        "seconds": {
            "available": 2_578_800,
            "unavailable": 1_800,
            "partial": 600,
            "inconclusive": 0,
            "no_data": 3_600,
        },
        "unmonitored": 7_200,
        "observed": 2_581_200,
        "unavailable": 1_800,
        "available": 2_579_400,
        "availability_percent": 99.930265,
        "availability_percent_exact": "71650/717",
        # The same figure as a fraction 0-1 (what the pages carry in data-availability).
        "availability": 71650 / 71700,
    }
    assert report["channels"]["smtp"]["availability_percent"] == 100.0
    assert report["commitment"] == {
        "percent": 99.9,
        "met": True,
        "budget_seconds": 2_581,
        "used_seconds": 1_800,
        "remaining_seconds": 781,
    }
    (incident,) = report["incidents"]
    assert (incident["id"], incident["severity"], incident["restored_at"]) == (
        "bird-20261120T100000Z",
        1,
        "2026-11-20T10:40:00Z",
    )
    assert incident["clocks"]["first_response"] == {
        "deadline": "2026-11-20T10:15:11Z",
        "state": "breached",
    }


def test_text_and_markdown_say_the_same(folder: Path) -> None:
    """The text and Markdown forms carry the figure, the verdict on the commitment and the incident."""
    with SqliteStore(folder / "store.db") as store:
        from incidents.report import report_for

        report = report_for(store, "bird", start=NOV, end=DEC, commitment=99.9, now=DEC)
    text, markdown = render_report(report, "text"), render_report(report, "md")
    for output in (text, markdown):
        assert "combined" in output
        assert "99.930265 %" in output
        assert (
            "commitment 99.9 %: met (availability 99.930265 %); budget 2581 s, used 1800 s, remaining 781 s"
            in output
        )
        assert "bird-20261120T100000Z  severity 1 (Critical Issue)  restored" in output
        assert "first_response breached (deadline 2026-11-20T10:15:11Z)" in output


@pytest.mark.parametrize(
    ("commitment", "met", "remaining"),
    [
        pytest.param(99.9, True, 781, id="met"),
        pytest.param(99.95, False, -510, id="missed"),
        pytest.param(None, None, None, id="no-commitment"),
    ],
)
def test_commitment_and_budget(
    commitment: float | None, met: bool | None, remaining: int | None
) -> None:
    """Met means availability >= commitment; the budget is floor(observed x (100 - c) %)."""
    report = build_report(
        "bird", _runs("combined", bad=True), [], start=NOV, end=DEC, commitment=commitment
    )
    assert report.met is met
    budget = report.budget
    assert (None if budget is None else budget - report.combined.unavailable) == remaining


@pytest.mark.parametrize(
    ("verdicts", "availability"),
    [
        pytest.param({"available": 90, "partial": 10}, "100", id="partial-is-not-unavailability"),
        pytest.param({"available": 90, "unavailable": 10}, "90", id="unavailable"),
        pytest.param(
            {"available": 50, "no_data": 25, "inconclusive": 25},
            "100",
            id="unobserved-leave-the-denominator",
        ),
        pytest.param({"no_data": 100}, None, id="nothing-observed"),
    ],
)
def test_formula(verdicts: dict[str, int], availability: str | None) -> None:
    """available = observed - unavailable over observed = available, partial and unavailable seconds."""
    runs, first = [], 0
    for verdict, seconds in verdicts.items():
        runs.append(Run("s", "combined", verdict, first, first + seconds - 1, OK))
        first += seconds
    share = figures(runs, "combined", 0, 100).availability
    assert (None if share is None else str(share)) == availability


@pytest.mark.parametrize(
    ("month", "expected"),
    [
        pytest.param("2026-11", (NOV, DEC), id="november"),
        pytest.param("2026-12", (DEC, DEC + 31 * DAY), id="december-rolls-the-year"),
        pytest.param("2028-02", (1_832_976_000, 1_832_976_000 + 29 * DAY), id="leap-february"),
    ],
)
def test_month_range(month: str, expected: tuple[int, int]) -> None:
    """A month is its UTC calendar month."""
    assert month_range(month) == expected


@pytest.mark.parametrize(
    "month", [pytest.param("2026-13", id="month-13"), pytest.param("Nov 2026", id="words")]
)
def test_bad_month(month: str) -> None:
    """A malformed month is refused with the expected form."""
    with pytest.raises(ReportError, match="expected YYYY-MM"):
        month_range(month)


def test_range_report_on_the_cli_and_bad_input(folder: Path) -> None:
    """--from/--to picks any range; an unknown service is bad input (exit 2)."""
    base = ("report", "--config", "slawatch.yaml")
    done = run_slawatch(
        *base, "--service", "bird", "--from", "2026-11-20T09:00:00Z", "--to",
        "2026-11-20T11:00:00Z", "--format", "json", cwd=folder, env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        json.loads(done.stdout)["combined"]["availability_percent_exact"] == "75"
    )  # 1,800 of 7,200 s unavailable
    bad = run_slawatch(*base, "--service", "nope", "--month", "2026-11", cwd=folder, env=ENV)
    assert (bad.returncode, bad.stderr.strip()) == (
        2,
        "--service: unknown service 'nope' (known: bird)",
    )
