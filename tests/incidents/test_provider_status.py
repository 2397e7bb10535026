"""Statuspage documents read strictly, and the side-by-side sentences, case by case."""

from __future__ import annotations

from typing import Any

import pytest

from incidents.model import Run
from incidents.provider_status import (
    DeclaredTally,
    StatusPageError,
    read_components,
    read_updates,
    side_by_side,
)

ZERO = (0,) * 9


@pytest.mark.parametrize(
    ("summary", "message"),
    [
        pytest.param(
            [], "summary.json: expected an object with a list 'components'", id="not-object"
        ),
        pytest.param(
            {"components": [3]},
            "summary.json: components[0]: expected an object with a name",
            id="item",
        ),
        pytest.param(
            {"components": [{"name": "A"}]},
            "summary.json: components[0]: expected a status",
            id="status",
        ),
        pytest.param(
            {"components": [{"name": "A", "status": "operational", "updated_at": "yesterday"}]},
            "summary.json: components[0].updated_at: invalid RFC 3339 time 'yesterday'",
            id="time",
        ),
    ],
)
def test_bad_summary_is_located(summary: Any, message: str) -> None:
    """A document not in the Statuspage format names where it is wrong."""
    with pytest.raises(StatusPageError) as caught:
        read_components(summary, [])
    assert str(caught.value) == message


def test_components_filter_and_offsets() -> None:
    """Only the named components (or every non-group one) are read; offsets are understood."""
    summary = {
        "components": [
            {"name": "A", "status": "operational", "updated_at": "2026-11-20T07:00:00-05:00"},
            {
                "name": "G",
                "status": "operational",
                "group": True,
                "updated_at": "2026-11-20T12:00:00Z",
            },
        ]
    }
    assert [c.name for c in read_components(summary, [])] == ["A"]
    assert read_components(summary, ["G"])[0].id == "G"
    assert read_components(summary, ["A"])[0].changed_at == 1_795_176_000


def test_bad_incident_update_is_located() -> None:
    """An update that is not an object is refused with its place."""
    with pytest.raises(StatusPageError) as caught:
        read_updates({"incidents": [{"incident_updates": ["x"]}]})
    assert (
        str(caught.value) == "incidents.json: incidents[0].incident_updates[0]: expected an object"
    )


def test_seconds_before_the_first_reading_are_unknown() -> None:
    """A second before any declared status counts as unknown; a change mid-second applies from the next."""
    tally = DeclaredTally({"A": [(104.5, "major_outage")]})
    tally.add(
        [
            Run("s", "combined", "unavailable", 100, 109, ZERO),
            Run("s", "api", "unavailable", 100, 109, ZERO),
        ],
        100,
        108,
    )
    assert tally.seconds == {"A": {"unknown": 5, "major_outage": 3}}


@pytest.mark.parametrize(
    ("after", "text"),
    [
        pytest.param(None, "The provider posted no incident on its status page.", id="none"),
        pytest.param(
            -90,
            "The provider's incident was posted 1 min 30 s before our first failing second (T).",
            id="before",
        ),
        pytest.param(
            5,
            "The provider's incident was posted 5 s after our first failing second (T).",
            id="after",
        ),
    ],
)
def test_side_by_side_says_when_the_provider_posted(after: int | None, text: str) -> None:
    """The sentence on the provider's incident follows its timing."""
    part = {"first_provider_update_after_s": after, "first_provider_update_at": "T"}
    assert side_by_side(part, 0) == [text]
