"""The Prometheus rules pass promtool, and rules and dashboard use only the metrics slawatch exports."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ci_tools import require_tool
from tests.support.paths import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
RECORDING_RULES = PROMETHEUS / "recording_rules.yml"
ALERT_RULES = PROMETHEUS / "alert_rules.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARD = ROOT / "deploy" / "grafana" / "slawatch-dashboard.json"

# DESIGN.md §9, plus the probe and notification metrics: name -> labels. A rename here or in
# an asset without the other breaks the tests below.
EXPORTED: dict[str, frozenset[str]] = {
    "slawatch_attempts_total": frozenset({"service", "channel", "target", "outcome"}),
    "slawatch_attempt_duration_seconds": frozenset({"service", "channel", "target"}),
    "slawatch_seconds_total": frozenset({"service", "channel", "verdict"}),
    "slawatch_channel_available": frozenset({"service", "channel"}),
    "slawatch_unavailable_streak_seconds": frozenset({"service", "channel"}),
    "slawatch_incidents_open": frozenset({"service", "severity"}),
    "slawatch_incidents_opened_total": frozenset({"service", "severity"}),
    "slawatch_sla_deadline_timestamp_seconds": frozenset({"service", "clock"}),
    "slawatch_sla_breaches_total": frozenset({"service", "severity", "clock"}),
    "slawatch_scheduler_lag_seconds": frozenset(),
    "slawatch_build_info": frozenset({"version"}),
    "slawatch_probe_misconfigured": frozenset({"service", "target"}),
    "slawatch_notifications_total": frozenset({"channel", "result"}),
    "slawatch_notification_queue_depth": frozenset(),
}
HISTOGRAMS = frozenset({"slawatch_attempt_duration_seconds", "slawatch_scheduler_lag_seconds"})
# Labels Prometheus adds to every scraped series, and its own per-target series.
TARGET_LABELS = frozenset({"job", "instance"})
SYNTHETIC: dict[str, frozenset[str]] = {"up": TARGET_LABELS}

# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "${service}": ".*",
    "$service": ".*",
}

PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"offset", "bool", "inf", "nan", "sum", "min", "max", "avg", "count", "group", "stddev"}
    | {"stdvar", "topk", "bottomk", "quantile", "count_values"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*+)(?!\s*\()")


def _load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in _load_yaml(path)["groups"] for rule in group["rules"]]


def _recorded() -> set[str]:
    return {rule["record"] for rule in _rules(RECORDING_RULES)}


def _dashboard() -> dict[str, Any]:
    with open(DASHBOARD, encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def _expressions() -> list[Any]:
    """Every PromQL expression of the rules and the dashboard, as pytest params."""
    params = [
        pytest.param(rule["expr"], id=f"{path.stem}:{rule.get('record') or rule.get('alert')}")
        for path in (RECORDING_RULES, ALERT_RULES)
        for rule in _rules(path)
    ]
    dashboard = _dashboard()
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            params.append(
                pytest.param(
                    _grafana_to_promql(target["expr"]),
                    id=f"dashboard:panel-{panel['id']}:{target['refId']}",
                )
            )
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["definition"])
            assert match, variable["definition"]
            params.append(pytest.param(match.group(1), id=f"dashboard:variable-{variable['name']}"))
    return params


def _known_metrics() -> dict[str, frozenset[str] | None]:
    """Metric names an expression may use -> their labels (None: not checked)."""
    known: dict[str, frozenset[str] | None] = {}
    for name, labels in EXPORTED.items():
        if name in HISTOGRAMS:
            known[f"{name}_bucket"] = labels | {"le"}
            known[f"{name}_sum"] = labels
            known[f"{name}_count"] = labels
        else:
            known[name] = labels
    known.update(SYNTHETIC)
    known.update(dict.fromkeys(_recorded()))
    return known


def _metric_problems(expr: str) -> list[str]:
    """Names and labels in ``expr`` that slawatch does not export."""
    known = _known_metrics()
    all_labels = set().union(*EXPORTED.values()) | TARGET_LABELS | {"le"}
    problems: list[str] = []
    text = _STRING.sub('""', expr)
    for name, matchers in _SELECTOR.findall(text):
        labels = set(_MATCHER_LABEL.findall(matchers)) - {"__name__"}
        allowed = known.get(name)
        allowed_labels = (allowed | TARGET_LABELS) if allowed is not None else all_labels
        problems += [f"{name or '{}'}: unknown label {label}" for label in labels - allowed_labels]
    text = _SELECTOR.sub(lambda m: m.group(1) or "", text)
    for _, labels in _GROUPING.findall(text):
        names = {label.strip() for label in labels.split(",") if label.strip()}
        problems += [f"grouping by unknown label {label}" for label in names - all_labels]
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\boffset\s+\w+", "", text)
    for name in _IDENTIFIER.findall(text):
        if name not in PROMQL_KEYWORDS and name not in known:
            problems.append(f"unknown metric {name}")
    return problems


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool binary; required under CI, skipped elsewhere when missing."""
    return require_tool("promtool")


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, check=False, cwd=ROOT
    )


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(RECORDING_RULES, id="recording"),
        pytest.param(ALERT_RULES, id="alerts"),
    ],
)
def test_promtool_check_rules(promtool: str, path: Path) -> None:
    """``promtool check rules`` accepts the rule file without warnings."""
    result = _run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in RULE_TESTS])
def test_promtool_test_rules(promtool: str, path: Path) -> None:
    """The promtool unit tests of the rules pass."""
    result = _run(promtool, "test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_exist() -> None:
    """There is a promtool test file for each rule file."""
    tested = {
        (path.parent / rule_file).resolve()
        for path in RULE_TESTS
        for rule_file in _load_yaml(path)["rule_files"]
    }
    assert tested == {RECORDING_RULES.resolve(), ALERT_RULES.resolve()}


def test_every_alert_is_tested_firing_and_silent() -> None:
    """Each alert has a promtool case where it fires and one where it does not."""
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in _load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules(ALERT_RULES)}
    assert alerts - firing == set(), "never shown firing"
    assert alerts - silent == set(), "never shown silent"


def test_availability_rules_are_tested() -> None:
    """Every ratio and rate recording rule is evaluated by a promtool case."""
    exprs = " ".join(
        check["expr"]
        for path in RULE_TESTS
        for case in _load_yaml(path)["tests"]
        for check in case.get("promql_expr_test", [])
    )
    wanted = {name for name in _recorded() if ":ratio_" in name or name.endswith(":rate5m")}
    assert {name for name in wanted if not re.search(rf"{re.escape(name)}\b", exprs)} == set()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(f"slawatch:{kind}ratio_{window}", id=f"{kind or 'service:'}{window}")
        for kind in ("availability:", "channel_availability:")
        for window in ("1h", "1d", "30d")
    ],
)
def test_recording_rule_names(name: str) -> None:
    """The availability ratios dashboards and users read are recorded under stable names."""
    assert name in _recorded()


@pytest.mark.parametrize("rule", [pytest.param(r, id=r["alert"]) for r in _rules(ALERT_RULES)])
def test_alert_has_severity_and_annotations(rule: dict[str, Any]) -> None:
    """Each alert routes by severity and explains itself with the labels of what fired."""
    severity = rule["labels"]["severity"]
    assert severity in {"critical", "warning"} or re.search(r"\bcritical\b.*\bwarning\b", severity)
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description"}
    assert "$labels." in annotations["summary"] + annotations["description"]


@pytest.mark.parametrize("expr", _expressions())
def test_expression_uses_exported_metrics(expr: str) -> None:
    """Every metric and label in the rules and the dashboard is one slawatch exports or records."""
    assert _metric_problems(expr) == []


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        pytest.param(
            "rate(slawatch_attempt_total[5m])", "unknown metric slawatch_attempt_total", id="name"
        ),
        pytest.param(
            'slawatch_seconds_total{verdicts="x"}',
            "slawatch_seconds_total: unknown label verdicts",
            id="label",
        ),
        pytest.param(
            "sum by (services) (slawatch_incidents_open)",
            "grouping by unknown label services",
            id="grouping",
        ),
        pytest.param("slawatch_scheduler_lag_seconds_bucket", None, id="histogram-bucket"),
        pytest.param('up{job="slawatch"} == 0', None, id="up"),
        pytest.param("slawatch:availability:ratio_30d", None, id="recorded"),
    ],
)
def test_metric_check_catches_renames(expr: str, problem: str | None) -> None:
    """The name check itself: a renamed metric or label is reported, real names pass."""
    assert _metric_problems(expr) == ([problem] if problem else [])


def test_dashboard_queries_parse(promtool: str, tmp_path: Path) -> None:
    """Every dashboard query, with Grafana's variables filled in, is valid PromQL."""
    rules = [
        {"record": f"dashboard:query_{index}", "expr": str(param.values[0])}
        for index, param in enumerate(_expressions())
        if str(param.id).startswith("dashboard:panel-")
    ]
    assert rules
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_availability_agrees_with_recording_rule(promtool: str, tmp_path: Path) -> None:
    """The dashboard's availability over a 1 h range gives the recording rule's hand-computed values."""
    (panel,) = [
        p
        for p in _panels(_dashboard())
        if p["type"] == "stat" and p["title"].startswith("Availability by the contract")
    ]
    expr = _grafana_to_promql(panel["targets"][0]["expr"])
    recording_tests = _load_yaml(PROMETHEUS / "tests" / "recording_rules_test.yml")
    case = recording_tests["tests"][0]
    (expected,) = [
        check
        for check in case["promql_expr_test"]
        if check["expr"] == "slawatch:availability:ratio_1h" and check["eval_time"] == "60m"
    ]
    samples = [
        {
            "labels": re.sub(
                r'job="[^"]*",\s*',
                "",
                s["labels"].replace("slawatch:availability:ratio_1h", "dash"),
            ),
            "value": s["value"],
        }
        for s in expected["exp_samples"]
    ]
    assert samples, "the recording test has no expected samples to compare with"
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dash", "rules": [{"record": "dash", "expr": expr}]}]})
    )
    unit = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": case["interval"],
                "input_series": case["input_series"],
                "promql_expr_test": [
                    {"expr": "dash", "eval_time": "60m", "exp_samples": samples},
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(unit))
    result = _run(promtool, "test", "rules", tmp_path / "test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
