"""The span → attempt mapping: rules, the old attribute names, and one case per outcome row."""

from __future__ import annotations

from typing import Any

import pytest

from config import load_config_text
from config.model import ServiceConfig
from probe.attempt import Channel, Outcome, Source
from probe.traffic import SPAN_KIND_CLIENT, Span, TrafficRules, attribute

CONFIG = """
services:
  - name: sparkpost
    smtp_replies: {"550": server_error}
    traffic:
      - match: {server.address: api.sparkpost.com, url.path: "^/api/v1/transmissions"}
        target: transmissions
      - {match: {server.address: smtp.sparkpost.com}, channel: smtp, reply_code: smtp.reply.code}
  - name: other
    traffic:
      - {match: {server.address: api.other.example, http.request.method: POST}}
      - {match: {net.peer.name: old.other.example}, target: legacy}
"""


def services() -> list[ServiceConfig]:
    return list(load_config_text(CONFIG, "c.yaml", {}).config.services)


RULES = TrafficRules(services())
API = {"server.address": "api.sparkpost.com", "url.path": "/api/v1/transmissions"}


def span(attributes: dict[str, Any], **extra: Any) -> Span:
    values: dict[str, Any] = {
        "name": "POST",
        "kind": SPAN_KIND_CLIENT,
        "start": 1_795_000_000.25,
        "end": 1_795_000_000.75,
        "attributes": attributes,
        "service_name": "checkout",
    }
    values.update(extra)
    return Span(**values)


def test_a_matching_span_becomes_a_traffic_attempt() -> None:
    """Service, channel, target, prober, start and duration come from the rule and the span."""
    attempt = RULES.attempt(span({**API, "http.response.status_code": 200}))
    assert attempt is not None
    assert (attempt.service, attempt.channel, attempt.target) == (
        "sparkpost",
        Channel.API,
        "transmissions",
    )
    assert (attempt.prober, attempt.source) == ("traffic:checkout", Source.TRAFFIC)
    assert (attempt.started_at, attempt.duration_s) == (1_795_000_000.25, 0.5)
    assert (attempt.outcome, attempt.detail, attempt.phase) == (Outcome.OK, "HTTP 200", "done")


@pytest.mark.parametrize(
    ("attributes", "extra", "expected"),
    [
        pytest.param({**API, "url.path": "/api/v1/other"}, {}, None, id="regex-fails"),
        pytest.param({"server.address": "api.sparkpost.com"}, {}, None, id="attribute-missing"),
        pytest.param(API, {"kind": 2}, None, id="server-span"),
        pytest.param(
            {"http.url": "https://api.sparkpost.com/api/v1/transmissions?num_rcpt_errors=3"},
            {},
            ("sparkpost", "transmissions"),
            id="old-url-only",
        ),
        pytest.param(
            {"net.peer.name": "api.sparkpost.com", "http.target": "/api/v1/transmissions?x=1"},
            {},
            ("sparkpost", "transmissions"),
            id="old-names",
        ),
        pytest.param(
            {"server.address": "api.other.example", "http.method": "POST"},
            {},
            ("other", "traffic"),
            id="old-method",
        ),
        pytest.param(
            {"server.address": "api.other.example", "http.request.method": "GET"},
            {},
            None,
            id="equality-fails",
        ),
        pytest.param(
            {"server.address": "old.other.example"},
            {},
            ("other", "legacy"),
            id="rule-with-old-name",
        ),
        pytest.param(
            {"server.address": "smtp.sparkpost.com", "server.port": 587},
            {},
            ("sparkpost", "traffic"),
            id="smtp-port",
        ),
        pytest.param(
            {"server.address": "smtp.sparkpost.com", "server.port": 2525},
            {},
            None,
            id="smtp-other-port",
        ),
        pytest.param({"server.address": True}, {}, None, id="boolean-attribute"),
        pytest.param({"url.full": "http://[::1"}, {}, None, id="broken-url"),
    ],
)
def test_rules_match(
    attributes: dict[str, Any], extra: dict[str, Any], expected: tuple[str, str] | None
) -> None:
    """Equality and ^regex entries, client spans only, old names and the URL understood."""
    attempt = RULES.attempt(span(attributes, **extra))
    assert (None if attempt is None else (attempt.service, attempt.target)) == expected


@pytest.mark.parametrize(
    ("attributes", "extra", "outcome", "detail"),
    [
        pytest.param(
            {"http.response.status_code": 500}, {}, Outcome.SERVER_ERROR, "HTTP 500", id="500"
        ),
        pytest.param({"http.status_code": 503}, {}, Outcome.SERVER_ERROR, "HTTP 503", id="old-503"),
        pytest.param({"http.response.status_code": 504}, {}, Outcome.TIMEOUT, "HTTP 504", id="504"),
        pytest.param(
            {"http.response.status_code": 429}, {}, Outcome.RATE_LIMITED, "HTTP 429", id="429"
        ),
        pytest.param(
            {"http.response.status_code": "404"}, {}, Outcome.CLIENT_ERROR, "HTTP 404", id="404"
        ),
        pytest.param(
            {"error.type": "aiohttp.client_exceptions.ClientConnectorDNSError"},
            {"status": "error"},
            Outcome.DNS_ERROR,
            "name did not resolve: aiohttp.client_exceptions.ClientConnectorDNSError",
            id="dns",
        ),
        pytest.param(
            {},
            {
                "status": "error",
                "exceptions": ("ssl.SSLCertVerificationError: certificate verify failed",),
            },
            Outcome.TLS_ERROR,
            "TLS failed: ssl.SSLCertVerificationError: certificate verify failed",
            id="tls",
        ),
        pytest.param(
            {"error.type": "TimeoutError"},
            {"status": "error"},
            Outcome.TIMEOUT,
            "timed out: TimeoutError",
            id="timeout",
        ),
        pytest.param(
            {},
            {"status": "error", "status_message": "Connection refused"},
            Outcome.CONNECTION_ERROR,
            "connection failed: Connection refused",
            id="refused",
        ),
        pytest.param(
            {"error.type": "ServerDisconnectedError"},
            {},
            Outcome.CONNECTION_ERROR,
            "connection failed: ServerDisconnectedError",
            id="reset",
        ),
        pytest.param(
            {"error.type": "ValueError"},
            {"status": "error"},
            Outcome.PROBE_ERROR,
            "unknown error: ValueError",
            id="unknown",
        ),
        pytest.param(
            {"error.type": "_OTHER"},
            {"status": "error"},
            Outcome.PROBE_ERROR,
            "unknown error: span status error",
            id="status-only",
        ),
        pytest.param({}, {}, Outcome.OK, "", id="no-error"),
    ],
)
def test_api_outcomes(
    attributes: dict[str, Any], extra: dict[str, Any], outcome: Outcome, detail: str
) -> None:
    """The status table of the HTTP probe, then the error text, in the docstring's order."""
    attempt = RULES.attempt(span({**API, **attributes}, **extra))
    assert attempt is not None
    assert (attempt.outcome, attempt.detail) == (outcome, detail)


@pytest.mark.parametrize(
    ("code", "extra", "outcome"),
    [
        pytest.param(250, {}, Outcome.OK, id="250"),
        pytest.param("451", {}, Outcome.SERVER_ERROR, id="451"),
        pytest.param(550, {}, Outcome.SERVER_ERROR, id="550-overridden"),
        pytest.param(553, {}, Outcome.CLIENT_ERROR, id="553"),
        pytest.param(None, {"error.type": "TimeoutError"}, Outcome.TIMEOUT, id="no-code"),
    ],
)
def test_smtp_outcomes(code: int | str | None, extra: dict[str, Any], outcome: Outcome) -> None:
    """SMTP spans: 2xx/3xx ok, else the SMTP probe's reply table with the service's overrides."""
    attributes: dict[str, Any] = {"server.address": "smtp.sparkpost.com", "net.peer.port": "465"}
    if code is not None:
        attributes["smtp.reply.code"] = code
    attempt = RULES.attempt(span({**attributes, **extra}))
    assert attempt is not None
    assert (attempt.channel, attempt.outcome) == (Channel.SMTP, outcome)


def test_attribute_reads_the_url_and_old_names() -> None:
    """The port and scheme come from the URL when nothing else names them."""
    attributes = {"url.full": "https://h.example/a"}
    assert attribute(attributes, "server.port") == 443
    assert attribute(attributes, "url.scheme") == "https"
    assert attribute({"http.url": "http://h.example:8080"}, "url.path") == "/"
    assert attribute({"http.url": "http://h.example:8080"}, "net.peer.port") == 8080
    assert attribute({"url.full": 3}, "server.address") is None
    assert attribute({}, "error.type") is None


def test_no_rules_no_attempt() -> None:
    """Without traffic rules nothing matches, and the rules say they are empty."""
    rules = TrafficRules([])
    assert not rules
    assert RULES
    assert rules.attempt(span(API)) is None


def test_unknown_service_name() -> None:
    """A resource without service.name is prober traffic:unknown_service."""
    attempt = RULES.attempt(span(API, service_name=""))
    assert attempt is not None
    assert attempt.prober == "traffic:unknown_service"
