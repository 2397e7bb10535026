"""Every invalid config in testdata/ is refused with its exact one-line message and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from slawatch.cli import main

TESTDATA = Path(__file__).parent / "testdata"

CASES = [
    pytest.param(
        "invalid-bad-country.yaml",
        "invalid-bad-country.yaml: calendars.x.holidays.country: unknown holiday country 'XX'",
        id="bad-country",
    ),
    pytest.param(
        "invalid-bad-duration.yaml",
        "invalid-bad-duration.yaml: services[0].api[1].timeout: invalid duration 'ten seconds' (expected e.g. 250ms, 10s, 15m)",
        id="bad-duration",
    ),
    pytest.param(
        "invalid-bad-env.yaml",
        "invalid-bad-env.yaml: services[0].environment: must be 'production', 'staging' or 'development', got 'prod'",
        id="bad-env",
    ),
    pytest.param(
        "invalid-bad-hours.yaml",
        "invalid-bad-hours.yaml: calendars.x.hours: invalid hours '17:00-09:00' (expected e.g. 09:00-17:00)",
        id="bad-hours",
    ),
    pytest.param(
        "invalid-bad-listen.yaml",
        "invalid-bad-listen.yaml: server.listen: invalid address 'localhost' (expected host:port, e.g. 127.0.0.1:9797)",
        id="bad-listen",
    ),
    pytest.param(
        "invalid-bad-name.yaml",
        "invalid-bad-name.yaml: services[0].name: must be a name of letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit), got 'has space'",
        id="bad-name",
    ),
    pytest.param(
        "invalid-bad-outcome.yaml",
        "invalid-bad-outcome.yaml: services[0].counts_as_unavailable[1]: must be 'ok', 'timeout', 'server_error', 'connection_error', 'tls_error', 'dns_error', 'client_error', 'rate_limited' or 'probe_error', got 'meltdown'",
        id="bad-outcome",
    ),
    pytest.param(
        "invalid-bad-tz.yaml",
        "invalid-bad-tz.yaml: calendars.x.time_zone: unknown time zone 'Mars/Olympus'",
        id="bad-tz",
    ),
    pytest.param(
        "invalid-bad-url.yaml",
        "invalid-bad-url.yaml: services[0].api[0].url: invalid URL 'ftp://h/' (expected http:// or https://host/...)",
        id="bad-url",
    ),
    pytest.param(
        "invalid-bird-calendar.yaml",
        "invalid-bird-calendar.yaml: services[0].sla.calendar: Bird's business hours are one of us-eastern, us-pacific, uk, not '24x7'",
        id="bird-calendar",
    ),
    pytest.param(
        "invalid-control-both.yaml",
        "invalid-control-both.yaml: control[0]: give exactly one of tcp or http",
        id="control-both",
    ),
    pytest.param(
        "invalid-dup-service.yaml",
        "invalid-dup-service.yaml: services[1].name: duplicate service name 'a'",
        id="dup-service",
    ),
    pytest.param(
        "invalid-dup-target.yaml",
        "invalid-dup-target.yaml: services[0].smtp[0].name: duplicate target name 'x' in service 'a'",
        id="dup-target",
    ),
    pytest.param(
        "invalid-dup-yaml-key.yaml",
        "invalid-dup-yaml-key.yaml:3:5: YAML syntax error: duplicate key 'name'",
        id="dup-yaml-key",
    ),
    pytest.param(
        "invalid-empty.yaml",
        "invalid-empty.yaml: empty file (expected a mapping with 'services')",
        id="empty",
    ),
    pytest.param(
        "invalid-missing-name.yaml",
        "invalid-missing-name.yaml: services[0].name: required key is missing",
        id="missing-name",
    ),
    pytest.param(
        "invalid-no-calendar.yaml",
        "invalid-no-calendar.yaml: services[0].sla.calendar: policy 'sendgrid-email-api/essentials' has business-hours clocks: choose a calendar (one of: uk, us-eastern, us-pacific)",
        id="no-calendar",
    ),
    pytest.param(
        "invalid-not-mapping.yaml",
        "invalid-not-mapping.yaml: expected a mapping at the top level, got list",
        id="not-mapping",
    ),
    pytest.param(
        "invalid-notify-missing-url.yaml",
        "invalid-notify-missing-url.yaml: notify[0].url: required key is missing",
        id="notify-missing-url",
    ),
    pytest.param(
        "invalid-notify-type.yaml",
        "invalid-notify-type.yaml: notify[0]: unknown type 'carrier-pigeon' (expected one of 'webhook', 'slack', 'pagerduty', 'alertmanager', 'email')",
        id="notify-type",
    ),
    pytest.param(
        "invalid-notify-unknown-service.yaml",
        "invalid-notify-unknown-service.yaml: notify[0].services: unknown service 'b'",
        id="notify-unknown-service",
    ),
    pytest.param(
        "invalid-port-range.yaml",
        "invalid-port-range.yaml: services[0].smtp[0].port: must be less than 65536, got 70000",
        id="port-range",
    ),
    pytest.param(
        "invalid-rate-zero.yaml",
        "invalid-rate-zero.yaml: services[0].api[0].rate: must be greater than 0, got 0",
        id="rate-zero",
    ),
    pytest.param(
        "invalid-lease-ttl.yaml",
        "invalid-lease-ttl.yaml: cluster.lease_ttl: must be at least 2s, got 500ms",
        id="lease-ttl",
    ),
    pytest.param(
        "invalid-replicas.yaml",
        "invalid-replicas.yaml: cluster.replicas: must be 1 or 2, got 3",
        id="replicas",
    ),
    pytest.param(
        "invalid-ratio.yaml",
        "invalid-ratio.yaml: services[0].classifier.degraded_ratio: must be less than or equal to 1, got 1.5",
        id="ratio",
    ),
    pytest.param(
        "invalid-smtp-reply.yaml",
        "invalid-smtp-reply.yaml: services[0].smtp_replies: invalid SMTP reply code '999' (expected e.g. 451 or 554@greeting)",
        id="smtp-reply",
    ),
    pytest.param(
        "invalid-timeout-neg.yaml",
        "invalid-timeout-neg.yaml: services[0].smtp[0].timeout: must be greater than 0, got '0s'",
        id="timeout-neg",
    ),
    pytest.param(
        "invalid-two-credentials.yaml",
        "invalid-two-credentials.yaml: services[0].api[0]: give credentials either in the URL or in an Authorization header, not both",
        id="two-credentials",
    ),
    pytest.param(
        "invalid-unknown-calendar.yaml",
        "invalid-unknown-calendar.yaml: services[0].sla.calendar: unknown calendar 'mars' (known: 24x7, uk, us-eastern, us-pacific)",
        id="unknown-calendar",
    ),
    pytest.param(
        "invalid-unknown-key.yaml",
        "invalid-unknown-key.yaml: services[0].apii: unknown key",
        id="unknown-key",
    ),
    pytest.param(
        "invalid-unknown-policy.yaml",
        "invalid-unknown-policy.yaml: services[0].sla.policy: unknown policy 'acme/gold' (see 'slawatch catalog')",
        id="unknown-policy",
    ),
    pytest.param(
        "invalid-unset-var.yaml",
        "invalid-unset-var.yaml: services[0].api[0].headers.Authorization: environment variable NOPE_KEY is not set",
        id="unset-var",
    ),
    pytest.param(
        "invalid-wrong-type.yaml",
        "invalid-wrong-type.yaml: services[0].api[0].rate: must be a valid number, unable to parse string as a number, got 'fast'",
        id="wrong-type",
    ),
    pytest.param(
        "invalid-yaml-syntax.yaml",
        "invalid-yaml-syntax.yaml:3:4: YAML syntax error: expected <block end>, but found '<block mapping start>'",
        id="yaml-syntax",
    ),
    pytest.param(
        "invalid-traffic-regex.yaml",
        "invalid-traffic-regex.yaml: services[0].traffic[0].match: url.path: invalid regular expression '^([': unterminated character set at position 2",
        id="traffic-regex",
    ),
    pytest.param(
        "invalid-traffic-smtp-reply.yaml",
        "invalid-traffic-smtp-reply.yaml: services[0].traffic[0]: an smtp rule names the span attribute holding the SMTP reply code (reply_code: ...)",
        id="traffic-smtp-reply",
    ),
    pytest.param(
        "invalid-sources-twice.yaml",
        "invalid-sources-twice.yaml: services[0].sources: names a source twice",
        id="sources-twice",
    ),
    pytest.param(
        "invalid-status-page-interval.yaml",
        "invalid-status-page-interval.yaml: services[0].status_page.interval: must be greater than or equal to 5, got '1s'",
        id="status-page-interval",
    ),
    pytest.param(
        "invalid-ingest-ahead.yaml",
        "invalid-ingest-ahead.yaml: ingest.max_ahead: must be at most 1h, got 2h",
        id="ingest-ahead",
    ),
]


@pytest.mark.parametrize(("file_name", "message"), CASES)
def test_invalid_config_is_refused_with_located_message(
    file_name: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """check-config exits 2 with one line naming the file and the key path or line."""
    monkeypatch.chdir(TESTDATA)
    monkeypatch.delenv("NOPE_KEY", raising=False)
    assert main(["check-config", file_name]) == 2
    captured = capsys.readouterr()
    assert captured.err == message + "\n"
    assert captured.out == ""


def test_every_testdata_file_has_a_case() -> None:
    """No invalid fixture is left without an asserted message."""
    listed = {case.values[0] for case in CASES}
    assert listed == {p.name for p in TESTDATA.glob("invalid-*.yaml")}
