"""``slawatch sla deadline``: JSON and text answers, custom calendars, bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slawatch.cli import main

BERLIN = """\
calendars:
  berlin:
    time_zone: Europe/Berlin
    hours: {mon-fri: "09:00-17:00"}
    holidays: {country: DE, subdiv: BE}
    add: [2026-12-24]
"""


def deadline_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    """Run ``sla deadline --format json`` and parse its output."""
    assert main(["sla", "deadline", "--format", "json", *args]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_thanksgiving_example(capsys: pytest.CaptureFixture[str]) -> None:
    """Essentials severity 1 on US Eastern skips Thanksgiving: the JSON of DESIGN.md §9."""
    assert deadline_json(
        capsys,
        "--policy",
        "sendgrid-email-api/essentials",
        "--severity",
        "1",
        "--calendar",
        "us-eastern",
        "--opened",
        "2026-11-25T15:00:00-05:00",
    ) == {
        "policy": "sendgrid-email-api/essentials",
        "severity": 1,
        "provider_severity": "Business Critical",
        "opened": "2026-11-25T20:00:00Z",
        "clocks": {
            "first_response": {
                "target": "3h",
                "calendar": "us-eastern",
                "deadline": "2026-11-27T15:00:00Z",
            }
        },
    }


@pytest.mark.parametrize(
    ("args", "clocks"),
    [
        pytest.param(
            ["--policy", "bird-email-enterprise", "--severity", "1"],
            {
                "first_response": {
                    "target": "15m",
                    "calendar": "24x7",
                    "deadline": "2026-11-18T20:15:00Z",
                },
                "update": {"target": None, "calendar": "24x7", "deadline": None},
            },
            id="bird-critical-needs-no-calendar",
        ),
        pytest.param(
            ["--policy", "bird-email-premium", "--severity", "2", "--calendar", "uk"],
            {"first_response": {"target": None, "calendar": "uk", "deadline": None}},
            id="tracked-clock-has-null-deadline",
        ),
        pytest.param(
            ["--policy", "megaport", "--severity", "1", "--responded", "2026-11-18T20:10:00Z"],
            {
                "first_response": {
                    "target": "15m",
                    "calendar": "24x7",
                    "deadline": "2026-11-18T20:15:00Z",
                },
                "update": {"target": "30m", "calendar": "24x7", "deadline": "2026-11-18T20:40:00Z"},
                "restore": {"target": "6h", "calendar": "24x7", "deadline": "2026-11-19T02:00:00Z"},
            },
            id="responded-arms-the-update-clock",
        ),
        pytest.param(
            ["--policy", "sendgrid-marketing-campaigns/free", "--severity", "1"],
            {},
            id="free-plan-has-no-clocks",
        ),
    ],
)
def test_deadline_json(
    capsys: pytest.CaptureFixture[str], args: list[str], clocks: dict[str, object]
) -> None:
    """Only the clocks the policy defines are listed, null deadlines where none exists."""
    result = deadline_json(capsys, "--opened", "2026-11-18T20:00:00Z", *args)
    assert result["clocks"] == clocks


def test_config_calendar(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--config makes custom calendars usable, with their added holidays."""
    config = tmp_path / "slawatch.yaml"
    config.write_text(BERLIN, encoding="utf-8")
    result = deadline_json(
        capsys,
        "--policy",
        "sendgrid-email-api/essentials",
        "--severity",
        "1",
        "--calendar",
        "berlin",
        "--config",
        str(config),
        "--opened",
        "2026-12-23T15:00:00+01:00",
    )
    # Wed 2 h; Christmas Eve (added), Christmas, weekend skipped; Mon 09:00-10:00 CET.
    assert result["clocks"] == {
        "first_response": {"target": "3h", "calendar": "berlin", "deadline": "2026-12-28T09:00:00Z"}
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--policy", "megaport", "--severity", "3", "--calendar", "uk"],
            "policy    megaport\n"
            "severity  3 (Severity 3)\n"
            "opened    2026-11-18T20:00:00Z\n"
            "\n"
            "CLOCK           TARGET  CALENDAR  DEADLINE\n"
            "first_response  30m     24x7      2026-11-18T20:30:00Z\n"
            "update          4h      24x7      one interval after the first response\n"
            "restore         48h     uk        2026-11-26T16:30:00Z\n",
            id="megaport-3",
        ),
        pytest.param(
            ["--policy", "bird-email-premium", "--severity", "1", "--calendar", "us-pacific"],
            "policy    bird-email-premium\n"
            "severity  1 (Critical Issue)\n"
            "opened    2026-11-18T20:00:00Z\n"
            "\n"
            "CLOCK           TARGET   CALENDAR    DEADLINE\n"
            "first_response  tracked  us-pacific  none (tracked, no numeric target)\n",
            id="bird-premium",
        ),
        pytest.param(
            ["--policy", "sendgrid-email-api/free", "--severity", "2"],
            "policy    sendgrid-email-api/free\n"
            "severity  2 (Degraded Service)\n"
            "opened    2026-11-18T20:00:00Z\n"
            "no SLA clocks at this severity\n",
            id="free",
        ),
    ],
)
def test_deadline_text(capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    """The text format is a small table of clocks."""
    assert main(["sla", "deadline", "--opened", "2026-11-18T15:00:00-05:00", *args]) == 0
    assert capsys.readouterr().out == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--policy", "megaport", "--severity", "3"],
            "sla deadline: policy 'megaport' severity 3 has business-hours clocks: give --calendar",
            id="calendar-required",
        ),
        pytest.param(
            ["--policy", "bird-email-enterprise", "--severity", "2"],
            "sla deadline: policy 'bird-email-enterprise' severity 2 has business-hours clocks: "
            "give --calendar (one of: us-eastern, us-pacific, uk)",
            id="calendar-required-with-choices",
        ),
        pytest.param(
            ["--policy", "bird-email-enterprise", "--severity", "2", "--calendar", "24x7"],
            "sla deadline: policy 'bird-email-enterprise': Bird's business hours are one of "
            "us-eastern, us-pacific, uk, not '24x7'",
            id="calendar-not-the-providers",
        ),
        pytest.param(
            ["--policy", "megaport", "--severity", "1", "--calendar", "mars"],
            "sla deadline: --calendar: unknown calendar 'mars' (known: 24x7, uk, us-eastern, us-pacific)",
            id="unknown-calendar",
        ),
        pytest.param(
            ["--policy", "acme", "--severity", "1"],
            "sla deadline: unknown policy 'acme' (known: bird-email-enterprise,",
            id="unknown-policy",
        ),
        pytest.param(
            ["--policy", "megaport", "--severity", "1", "--responded", "later"],
            "sla deadline: --responded: invalid RFC 3339 time 'later'",
            id="bad-responded",
        ),
    ],
)
def test_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Bad input is exit status 2 with one line saying what to fix."""
    assert main(["sla", "deadline", "--opened", "2026-11-18T20:00:00Z", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("opened", "message"),
    [
        pytest.param("2026-11-18T20:00:00", "has no UTC offset", id="naive"),
        pytest.param("yesterday", "invalid RFC 3339 time", id="garbage"),
    ],
)
def test_bad_opened_time(capsys: pytest.CaptureFixture[str], opened: str, message: str) -> None:
    """--opened must be RFC 3339 with an offset."""
    assert (
        main(["sla", "deadline", "--policy", "megaport", "--severity", "1", "--opened", opened])
        == 2
    )
    assert message in capsys.readouterr().err
