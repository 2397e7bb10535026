"""Fleet config: the prober's group, the cluster settings and the judging digest members share."""

from __future__ import annotations

import pytest

from config import load_config_text
from config.fleet import judging_digest, judging_terms

BASE = """
prober: {{id: "${{SLAWATCH_PROBER}}", group: "${{REGION}}"}}
storage: {{url: "postgresql://db.example.com/slawatch"}}
control: [{{name: gw, tcp: "{gateway}"}}]
services:
  - name: bird
    sla: {{policy: bird-email-enterprise, calendar: us-eastern}}
    classifier: {{critical_after: {critical}}}
    api:
      - {{name: {target}, url: "{url}", timeout: {timeout}, headers: {{Authorization: "${{KEY}}"}}}}
    smtp:
      - {{name: inject, host: {host}}}
"""
DEFAULTS = {
    "gateway": "192.0.2.1:53",
    "critical": "60s",
    "target": "send",
    "url": "https://eu.api.example.com/v1",
    "timeout": "10s",
    "host": "smtp.eu.example.com",
}


def _digest(environ: dict[str, str] | None = None, **changes: str) -> str:
    env = {"SLAWATCH_PROBER": "eu-1", "REGION": "eu", "KEY": "secret-1", **(environ or {})}
    loaded = load_config_text(BASE.format(**{**DEFAULTS, **changes}), "c.yaml", env)
    return judging_digest(loaded.config)


def test_cluster_defaults() -> None:
    """Without a cluster block the fleet runs on the documented defaults."""
    loaded = load_config_text("services: [{name: a}]", "c.yaml", {})
    cluster = loaded.config.cluster
    assert (cluster.lease_ttl, cluster.prober_timeout, cluster.grace) == (5.0, 5.0, 3.0)
    assert (cluster.max_clock_offset, cluster.min_probers, cluster.replicas) == (0.25, 1, 1)
    assert loaded.config.prober.group == "default"


def test_one_file_serves_every_member() -> None:
    """`${VAR}` sets the prober's id and group, so one file serves every location."""
    env = {"SLAWATCH_PROBER": "us-2", "REGION": "us-east", "KEY": "k"}
    loaded = load_config_text(BASE.format(**DEFAULTS), "c.yaml", env)
    assert (loaded.config.prober.id, loaded.config.prober.group) == ("us-2", "us-east")


@pytest.mark.parametrize(
    ("environ", "changes"),
    [
        pytest.param({"SLAWATCH_PROBER": "us-1", "REGION": "us"}, {}, id="prober-and-group"),
        pytest.param({}, {"url": "https://us.api.example.com/v1"}, id="regional-url"),
        pytest.param({}, {"host": "smtp.us.example.com"}, id="regional-host"),
        pytest.param({"KEY": "secret-2"}, {}, id="credentials"),
        pytest.param({}, {"timeout": "5s"}, id="timeout"),
        pytest.param({}, {"gateway": "198.51.100.1:53"}, id="control-check"),
    ],
)
def test_what_may_differ_by_location(environ: dict[str, str], changes: dict[str, str]) -> None:
    """Ids, groups, URLs, hosts, credentials, timeouts and control checks leave the digest alone."""
    assert _digest(environ, **changes) == _digest()


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"target": "account"}, id="target-name"),
        pytest.param({"critical": "30s"}, id="classifier"),
    ],
)
def test_what_members_must_share(changes: dict[str, str]) -> None:
    """A target name or a classifier threshold changes the digest."""
    assert _digest(**changes) != _digest()


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param("cluster: {min_probers: 2}", id="min-probers"),
        pytest.param("cluster: {max_clock_offset: 1s}", id="clock-offset"),
        pytest.param("cluster: {replicas: 2}", id="replicas"),
        pytest.param("calendars: {x: {time_zone: Europe/Berlin}}", id="calendars"),
        pytest.param("services: [{name: a, counts_as_unavailable: [timeout]}]", id="outcomes"),
        pytest.param("services: [{name: a, environment: staging}]", id="environment"),
        pytest.param("services: [{name: a, smtp_replies: {'550': server_error}}]", id="replies"),
    ],
)
def test_cluster_and_service_terms_feed_the_digest(extra: str) -> None:
    """Cluster settings that change a verdict, calendars and outcome rules are in the digest."""
    plain = load_config_text("services: [{name: a}]", "c.yaml", {}).config
    text = extra if extra.startswith("services") else "services: [{name: a}]\n" + extra
    changed = load_config_text(text, "c.yaml", {}).config
    assert judging_digest(changed) != judging_digest(plain)


def test_lease_and_timing_settings_may_differ() -> None:
    """lease_ttl, prober_timeout and grace are per instance: they do not feed the digest."""
    plain = load_config_text("services: [{name: a}]", "c.yaml", {}).config
    tuned = load_config_text(
        "services: [{name: a}]\ncluster: {lease_ttl: 3s, prober_timeout: 3s, grace: 1s}",
        "c.yaml",
        {},
    ).config
    assert judging_digest(tuned) == judging_digest(plain)


def test_no_secret_in_the_terms() -> None:
    """The judging terms never hold an expanded credential."""
    env = {"SLAWATCH_PROBER": "eu-1", "REGION": "eu", "KEY": "hunter2-very-secret"}
    loaded = load_config_text(BASE.format(**DEFAULTS), "c.yaml", env)
    assert "hunter2-very-secret" not in repr(judging_terms(loaded.config))
    assert judging_terms(loaded.config)["services"][0]["channels"] == {
        "api": ["send"],
        "smtp": ["inject"],
    }
