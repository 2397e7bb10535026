"""The Grafana dashboard is importable: schema, variables, datasource and a sane panel grid."""

from __future__ import annotations

import json
from itertools import combinations
from typing import Any

import pytest

from tests.support.paths import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "slawatch-dashboard.json"
GRID_WIDTH = 24


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana reads it."""
    with open(DASHBOARD, encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]


def _variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [v for v in dashboard["templating"]["list"] if v["name"] == name]
    assert len(found) == 1, name
    return found[0]


def test_schema_and_identity(dashboard: dict[str, Any]) -> None:
    """Schema version 39, a stable uid and a title, so re-imports replace rather than duplicate."""
    assert dashboard["schemaVersion"] == 39
    assert dashboard["uid"] == "slawatch-overview"
    assert dashboard["title"]


def test_datasource_variable(dashboard: dict[str, Any]) -> None:
    """A Prometheus datasource variable that every panel and query uses."""
    variable = _variable(dashboard, "datasource")
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    expected = {"type": "prometheus", "uid": "${datasource}"}
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == expected, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == expected, panel["title"]


def test_service_variable(dashboard: dict[str, Any]) -> None:
    """The service variable lists the services slawatch has judged seconds for, many at once."""
    variable = _variable(dashboard, "service")
    assert variable["definition"] == "label_values(slawatch_seconds_total, service)"
    assert variable["query"]["query"] == variable["definition"]
    assert variable["multi"]
    assert variable["includeAll"]


def test_panel_ids_unique(dashboard: dict[str, Any]) -> None:
    """Panel ids are unique (Grafana links and edits panels by id)."""
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_panels_fit_the_grid_without_overlap(dashboard: dict[str, Any]) -> None:
    """Every panel has a gridPos inside the 24 columns, and no two panels overlap."""
    boxes = []
    for panel in _panels(dashboard):
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) and pos[k] >= 0 for k in ("x", "y", "w", "h"))
        assert pos["w"] > 0
        assert pos["h"] > 0
        assert pos["x"] + pos["w"] <= GRID_WIDTH, panel["title"]
        boxes.append((panel["title"], pos))
    for (name_a, a), (name_b, b) in combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, f"{name_a} overlaps {name_b}"


def test_targets_have_unique_ref_ids(dashboard: dict[str, Any]) -> None:
    """Within a panel every query has its own refId and a non-empty expression."""
    for panel in _panels(dashboard):
        targets = panel.get("targets", [])
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        assert all(t["expr"].strip() for t in targets), panel["title"]


@pytest.mark.parametrize(
    ("needle", "what"),
    [
        pytest.param("[$__range]", "availability over the dashboard range", id="range"),
        pytest.param('channel="combined"', "the contract's service-level channel", id="combined"),
        pytest.param("histogram_quantile(0.99, ", "latency percentiles", id="p99"),
        pytest.param("histogram_quantile(0.5, ", "median latency", id="p50"),
        pytest.param("- time()", "time left before SLA deadlines", id="deadline"),
        pytest.param("slawatch_scheduler_lag_seconds_bucket", "scheduler lag", id="lag"),
        pytest.param("slawatch_notifications_total", "notifications", id="notifications"),
        pytest.param("slawatch_incidents_open", "open incidents", id="incidents"),
        pytest.param("by (outcome)", "attempts by outcome", id="outcome"),
    ],
)
def test_dashboard_shows(dashboard: dict[str, Any], needle: str, what: str) -> None:
    """The dashboard has the panels an operator expects."""
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    assert any(needle in expr for expr in exprs), what


def test_unavailable_seconds_stacked_by_channel(dashboard: dict[str, Any]) -> None:
    """Unavailable seconds over time are stacked by API and SMTP channel."""
    (panel,) = [p for p in _panels(dashboard) if p["title"] == "Unavailable seconds by channel"]
    assert panel["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert 'channel=~"api|smtp"' in panel["targets"][0]["expr"]
    assert "by (service, channel)" in panel["targets"][0]["expr"]
