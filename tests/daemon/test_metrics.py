"""The metrics of DESIGN.md §9: names, labels, zero-initialised label sets, promtool-clean."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from classifier.verdict import OUTCOMES, SecondVerdict, Verdict
from probe.attempt import Attempt, Channel, Outcome
from slawatch.attemptmetrics import SLICE
from slawatch.metrics import Metrics
from tests.support.configs import config_from_yaml
from tests.support.site import open_site

CONFIG = """
control: [{name: gw, tcp: "127.0.0.1:1"}]
services:
  - name: sparkpost
    api: [{name: account, url: "http://127.0.0.1:1/"}]
    smtp: [{name: inject, host: 127.0.0.1}]
"""


def _metrics() -> tuple[Metrics, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = Metrics(registry, "1.2.3")
    metrics.prepare(config_from_yaml(CONFIG).config)
    return metrics, registry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def _verdict(verdict: Verdict, second: int, channel: str = "api") -> SecondVerdict:
    return SecondVerdict("sparkpost", channel, second, verdict, (0,) * len(OUTCOMES))


def test_label_sets_start_at_zero() -> None:
    """Every known series exists at 0 before anything happens."""
    _, registry = _metrics()
    assert (
        _value(
            registry,
            "slawatch_seconds_total",
            service="sparkpost",
            channel="combined",
            verdict="unavailable",
        )
        == 0
    )
    assert (
        _value(
            registry,
            "slawatch_seconds_total",
            service="sparkpost",
            channel="smtp",
            verdict="no_data",
        )
        == 0
    )
    assert (
        _value(
            registry,
            "slawatch_attempts_total",
            service="sparkpost",
            channel="api",
            target="account",
            outcome="timeout",
        )
        == 0
    )
    assert (
        _value(
            registry,
            "slawatch_attempts_total",
            service="_control",
            channel="control",
            target="gw",
            outcome="ok",
        )
        == 0
    )
    assert _value(registry, "slawatch_incidents_open", service="sparkpost", severity="1") == 0
    assert (
        _value(
            registry,
            "slawatch_sla_breaches_total",
            service="sparkpost",
            severity="2",
            clock="restore",
        )
        == 0
    )
    assert (
        _value(
            registry,
            "slawatch_sla_deadline_timestamp_seconds",
            service="sparkpost",
            clock="first_response",
        )
        == 0
    )
    assert _value(registry, "slawatch_build_info", version="1.2.3") == 1


def test_attempts_and_verdicts_are_counted() -> None:
    """Attempts count by outcome; verdicts count by second with streak and availability gauges."""
    metrics, registry = _metrics()
    metrics.attempt(Attempt("sparkpost", Channel.API, "account", "eu-1", 1.0, 0.2, Outcome.TIMEOUT))
    for second in range(3):
        metrics.verdict(_verdict(Verdict.UNAVAILABLE, second), streak=second + 1)
    assert (
        _value(
            registry,
            "slawatch_attempts_total",
            service="sparkpost",
            channel="api",
            target="account",
            outcome="timeout",
        )
        == 1
    )
    assert (
        _value(
            registry,
            "slawatch_attempt_duration_seconds_count",
            service="sparkpost",
            channel="api",
            target="account",
        )
        == 1
    )
    assert (
        _value(
            registry,
            "slawatch_seconds_total",
            service="sparkpost",
            channel="api",
            verdict="unavailable",
        )
        == 3
    )
    assert (
        _value(registry, "slawatch_unavailable_streak_seconds", service="sparkpost", channel="api")
        == 3
    )
    assert _value(registry, "slawatch_channel_available", service="sparkpost", channel="api") == 0
    metrics.verdict(_verdict(Verdict.NO_DATA, 3), streak=0)
    assert (
        _value(registry, "slawatch_unavailable_streak_seconds", service="sparkpost", channel="api")
        == 0
    )
    assert _value(registry, "slawatch_channel_available", service="sparkpost", channel="api") == 0
    metrics.verdict(_verdict(Verdict.AVAILABLE, 4), streak=0)
    assert _value(registry, "slawatch_channel_available", service="sparkpost", channel="api") == 1


def test_reload_drops_removed_targets_and_keeps_counters() -> None:
    """prepare() on a new config removes gone targets' series and keeps unchanged ones."""
    metrics, registry = _metrics()
    metrics.attempt(Attempt("sparkpost", Channel.API, "account", "eu-1", 1.0, 0.2, Outcome.OK))
    smaller = "services: [{name: sparkpost, api: [{name: account, url: 'http://127.0.0.1:1/'}]}]"
    metrics.prepare(config_from_yaml(smaller).config)
    assert (
        _value(
            registry,
            "slawatch_attempts_total",
            service="sparkpost",
            channel="api",
            target="account",
            outcome="ok",
        )
        == 1
    )
    assert (
        _value(
            registry,
            "slawatch_attempts_total",
            service="sparkpost",
            channel="smtp",
            target="inject",
            outcome="ok",
        )
        is None
    )


def test_exposition_passes_promtool(require_tool: Callable[[str], str], tmp_path: Path) -> None:
    """`promtool check metrics` finds nothing to complain about."""
    promtool = require_tool("promtool")
    metrics, registry = _metrics()
    metrics.attempt(Attempt("sparkpost", Channel.SMTP, "inject", "eu-1", 1.0, 0.05, Outcome.OK))
    metrics.verdict(_verdict(Verdict.AVAILABLE, 1, "combined"), streak=0)
    metrics.launch_lag(0.002)
    metrics.set_open({("sparkpost", 1): 1}, ["sparkpost"])
    metrics.set_deadlines({("sparkpost", "first_response"): 1_790_000_900.0}, ["sparkpost"])
    text = generate_latest(registry)
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout.decode().strip() == ""
    labels = {
        label
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        for label in sample.labels
    }
    # Bounded label sets only: no incident id, no free text.
    assert labels == {
        "service",
        "channel",
        "target",
        "outcome",
        "verdict",
        "severity",
        "clock",
        "version",
        "le",
    }


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def _busy_metrics(per_target: bool) -> tuple[Metrics, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = Metrics(registry, "1.2.3", per_target=per_target)
    two = """
services:
  - name: sparkpost
    api:
      - {name: account, url: "http://127.0.0.1:1/"}
      - {name: send, url: "http://127.0.0.1:1/send"}
    smtp: [{name: inject, host: 127.0.0.1}]
"""
    metrics.prepare(config_from_yaml(two).config)
    for target, outcome, seconds in (
        ("account", Outcome.OK, 0.004),
        ("account", Outcome.TIMEOUT, 10.0),
        ("send", Outcome.OK, 0.3),
        ("send", Outcome.OK, 31.0),
    ):
        metrics.attempt(Attempt("sparkpost", Channel.API, target, "eu-1", 1.0, seconds, outcome))
    metrics.missed_launch("sparkpost", "api", "send", 3)
    metrics.attempt(
        Attempt(
            "sparkpost",
            Channel.SMTP,
            "inject",
            "eu-1",
            1.0,
            0.1,
            Outcome.CLIENT_ERROR,
            misconfigured=True,
        )
    )
    return metrics, registry


@pytest.mark.parametrize(
    "per_target", [pytest.param(True, id="per-target"), pytest.param(False, id="per-channel")]
)
async def test_page_is_the_registry_s_samples(per_target: bool) -> None:
    """The page built a slice at a time holds exactly the samples the registry reads."""
    metrics, registry = _busy_metrics(per_target)
    page = (await metrics.exposition()).decode()
    assert _samples(page) == _samples(generate_latest(registry).decode())


async def test_per_channel_sums_targets_without_the_target_label() -> None:
    """metrics.per_target false: one counter and histogram per channel; the gauges stay per target."""
    metrics, _ = _busy_metrics(per_target=False)
    page = _samples((await metrics.exposition()).decode())
    api = (("channel", "api"), ("service", "sparkpost"))
    assert page[("slawatch_attempts_total", tuple(sorted((*api, ("outcome", "ok")))))] == 3
    assert page[("slawatch_attempt_duration_seconds_count", api)] == 4
    assert (
        page[("slawatch_attempt_duration_seconds_bucket", tuple(sorted((*api, ("le", "0.005")))))]
        == 1
    )
    assert (
        page[("slawatch_attempt_duration_seconds_bucket", tuple(sorted((*api, ("le", "30.0")))))]
        == 3
    )
    assert page[("slawatch_attempt_duration_seconds_sum", api)] == pytest.approx(41.304)
    assert not [
        key for key in page if key[0].startswith("slawatch_attempt") and "target" in dict(key[1])
    ]
    assert (
        page[("slawatch_missed_launches_total", (("service", "sparkpost"), ("target", "send")))]
        == 3
    )
    assert (
        page[("slawatch_probe_misconfigured", (("service", "sparkpost"), ("target", "inject")))]
        == 1
    )
    assert (
        page[("slawatch_probe_misconfigured", (("service", "sparkpost"), ("target", "account")))]
        == 0
    )


@pytest.mark.parametrize(
    "per_target", [pytest.param(True, id="per-target"), pytest.param(False, id="per-channel")]
)
async def test_page_passes_promtool(per_target: bool, require_tool: Callable[[str], str]) -> None:
    """The page /metrics serves, either way, passes `promtool check metrics`."""
    promtool = require_tool("promtool")
    metrics, _ = _busy_metrics(per_target)
    metrics.launch_lag(0.002)
    page = await metrics.exposition()
    proc = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=page, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout.decode().strip() == ""


async def test_attempt_of_a_removed_target_is_still_counted() -> None:
    """An attempt finishing after a reload removed its target is counted, not lost or fatal."""
    metrics, _ = _metrics()
    metrics.prepare(config_from_yaml("services: [{name: sparkpost}]").config)
    metrics.attempt(Attempt("sparkpost", Channel.API, "account", "eu-1", 1.0, 0.2, Outcome.OK))
    page = _samples((await metrics.exposition()).decode())
    labels = (
        ("channel", "api"),
        ("outcome", "ok"),
        ("service", "sparkpost"),
        ("target", "account"),
    )
    assert page[("slawatch_attempts_total", labels)] == 1


async def test_the_page_is_streamed_as_it_is_rendered(tmp_path: Path) -> None:
    """/metrics goes out in parts (chunked), never joined whole, and says what the registry says."""
    api = [{"name": f"t{i}", "url": f"http://127.0.0.1:9/t{i}"} for i in range(3 * SLICE)]
    site = await open_site(tmp_path, {"services": [{"name": "svc", "api": api}]}, 1_790_000_000.0)
    try:
        metrics = site.daemon.metrics
        parts = [part async for part in metrics.exposition_parts()]
        # The head, then each family's header and its slices of SLICE targets.
        assert len(parts) > 3 * 4
        response = await site.client.get("/metrics")
        assert response.status == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert response.headers["Content-Type"].startswith("text/plain")
        body = await response.read()
        assert body == b"".join(parts) == await metrics.exposition()
    finally:
        await site.close()
