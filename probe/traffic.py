"""The customer's own calls as attempts: client spans matched to a service by its traffic rules.

Pure: a :class:`Span` (decoded from OTLP by ``slawatch.ingest``) and the configured rules
in, one :class:`Attempt` (source ``traffic``) or None out. The first rule that matches,
services in configuration order, wins.

Matching: only client spans (kind CLIENT). Every ``match`` entry must hold: the attribute
equals the value, or, for a value starting with ``^``, matches that regular expression.
Attributes are read by their stable semantic-convention names; a span that carries only
the old names is read through them (the right-hand column), and the address, port, path
and scheme are taken from the full URL when the span names no other::

    stable name                  old names
    ---------------------------  ----------------------
    server.address               net.peer.name
    server.port                  net.peer.port
    url.full                     http.url
    url.path                     http.target (path part)
    url.scheme                   http.scheme
    http.request.method          http.method
    http.response.status_code    http.status_code

An SMTP rule matches only spans to ``server.port`` 25, 465 or 587.

Outcome, first match wins (one test case per row)::

    what the span shows                       outcome
    ----------------------------------------  -----------------------------------------
    api: http.response.status_code            the HTTP probe's status table
                                              (probe.http.status_outcome: 5xx
                                              server_error, 504/408 timeout, 429
                                              rate_limited, other 4xx client_error)
    smtp: the rule's reply_code attribute     2xx/3xx ok, else the SMTP probe's reply
                                              table with the service's smtp_replies
    error text names DNS / name resolution    dns_error
    error text names TLS / SSL / certificate  tls_error
    error text names a timeout                timeout
    error text names refused / reset /        connection_error
      disconnected / connection
    any other error (status ERROR)            probe_error: set aside, never judged
    no error                                  ok

The error text is ``error.type``, the exception events' type and message, and the span
status message, in that order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from config.model import SMTP_PORTS, ServiceConfig, TrafficRule
from probe.attempt import TRAFFIC_PREFIX, Attempt, Channel, Outcome, Source
from probe.http import status_outcome
from probe.smtp import reply_outcome

# OTLP's SpanKind value of a client span (opentelemetry.proto.trace.v1.Span.SpanKind).
SPAN_KIND_CLIENT = 3
# A span's own outcome flag (its status code).
SpanStatus = Literal["unset", "ok", "error"]
# The statuses a call's answer is ``ok`` with: those the HTTP probe expects by default.
EXPECTED_STATUS = frozenset(range(200, 400))
# The prober id of spans whose resource names no service.name.
UNKNOWN_SERVICE = "unknown_service"
# Attempt details are short (the error text of a span can be a stack trace).
MAX_DETAIL = 200

# stable name → the old names read when the span lacks it.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "server.address": ("net.peer.name",),
    "server.port": ("net.peer.port",),
    "url.full": ("http.url",),
    "url.path": ("http.target",),
    "url.scheme": ("http.scheme",),
    "http.request.method": ("http.method",),
    "http.response.status_code": ("http.status_code",),
}
_OLD_NAMES = {old: stable for stable, olds in ALIASES.items() for old in olds}

# The error text → outcome table of the module docstring, in order.
ERROR_WORDS: tuple[tuple[re.Pattern[str], Outcome, str], ...] = (
    (
        re.compile(r"dns|gaierror|name ?resolution|unknownhost|resolve|name or service"),
        Outcome.DNS_ERROR,
        "name did not resolve",
    ),
    (re.compile(r"certificate|ssl|tls|handshake"), Outcome.TLS_ERROR, "TLS failed"),
    (re.compile(r"time[ds]? ?out|deadline"), Outcome.TIMEOUT, "timed out"),
    (
        re.compile(r"refused|reset|disconnect|connect|broken ?pipe|eof|closed"),
        Outcome.CONNECTION_ERROR,
        "connection failed",
    ),
)


@dataclass(frozen=True, slots=True)
class Span:
    """One span as the mapping needs it; times are UTC epoch seconds."""

    name: str
    kind: int
    start: float
    end: float
    attributes: Mapping[str, Any] = field(default_factory=dict)
    status: SpanStatus = "unset"
    status_message: str = ""
    # ``type: message`` of each exception event, in order.
    exceptions: tuple[str, ...] = ()
    # The resource's service.name: who made the call.
    service_name: str = ""


def attribute(attributes: Mapping[str, Any], name: str) -> Any:
    """The attribute ``name`` of a span (its old names and the URL understood); None if absent."""
    value = attributes.get(name)
    if value is not None:
        return value
    stable = _OLD_NAMES.get(name)
    if stable is not None:
        # A rule written with an old name matches a span using the stable one too.
        value = attributes.get(stable)
        if value is not None:
            return value
    for old in ALIASES.get(name, ()):
        value = attributes.get(old)
        if value is not None:
            return str(value).partition("?")[0] if old == "http.target" else value
    return _from_url(attributes, stable or name)


def _from_url(attributes: Mapping[str, Any], name: str) -> Any:
    """``server.address``, ``server.port``, ``url.path`` or ``url.scheme`` from the full URL."""
    url = attributes.get("url.full") or attributes.get("http.url")
    if name not in _FROM_URL or not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    found = {
        "server.address": parts.hostname,
        "server.port": port,
        "url.path": parts.path or "/",
        "url.scheme": parts.scheme or None,
    }
    return found[name]


_FROM_URL = frozenset({"server.address", "server.port", "url.path", "url.scheme"})


@dataclass(frozen=True, slots=True)
class _Rule:
    """A traffic rule of one service, its patterns compiled."""

    service: ServiceConfig
    rule: TrafficRule
    # attribute → a compiled regex, or the value to equal (compared as text).
    tests: tuple[tuple[str, re.Pattern[str] | str], ...]

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        """True when every entry of the rule holds for ``attributes``."""
        for name, wanted in self.tests:
            value = attribute(attributes, name)
            if value is None or isinstance(value, bool):
                return False
            if isinstance(wanted, str):
                if str(value) != wanted:
                    return False
            elif wanted.search(str(value)) is None:
                return False
        if self.rule.channel == "smtp" and "server.port" not in self.rule.match:
            return _port(attribute(attributes, "server.port")) in SMTP_PORTS
        return True


def _port(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class TrafficRules:
    """The traffic rules of every service, compiled once per config."""

    def __init__(self, services: Sequence[ServiceConfig]) -> None:
        self.rules = tuple(
            _Rule(
                service,
                rule,
                tuple(
                    (name, re.compile(v) if isinstance(v, str) and v.startswith("^") else str(v))
                    for name, v in rule.match.items()
                ),
            )
            for service in services
            for rule in service.traffic
        )

    def __bool__(self) -> bool:
        return bool(self.rules)

    def attempt(self, span: Span) -> Attempt | None:
        """The attempt a client span stands for, or None when no rule matches it."""
        if span.kind != SPAN_KIND_CLIENT:
            return None
        for rule in self.rules:
            if rule.matches(span.attributes):
                return span_attempt(span, rule.service, rule.rule)
        return None


def span_attempt(span: Span, service: ServiceConfig, rule: TrafficRule) -> Attempt:
    """The attempt of a span that ``rule`` of ``service`` matched."""
    channel = Channel.SMTP if rule.channel == "smtp" else Channel.API
    outcome, detail = _outcome(span, service, rule)
    return Attempt(
        service=service.name,
        channel=channel,
        target=rule.target,
        prober=TRAFFIC_PREFIX + (span.service_name or UNKNOWN_SERVICE),
        started_at=span.start,
        duration_s=max(0.0, span.end - span.start),
        outcome=outcome,
        phase="done" if outcome is Outcome.OK else "",
        detail=detail[:MAX_DETAIL],
        source=Source.TRAFFIC,
    )


def _outcome(span: Span, service: ServiceConfig, rule: TrafficRule) -> tuple[Outcome, str]:
    """The outcome and detail of a matched span (the table of the module docstring)."""
    if rule.reply_code is None:
        status = _port(attribute(span.attributes, "http.response.status_code"))
        if status is not None:
            return status_outcome(status, EXPECTED_STATUS), f"HTTP {status}"
    else:
        code = _port(span.attributes.get(rule.reply_code))
        if code is not None:
            if 200 <= code <= 399:
                return Outcome.OK, f"SMTP {code}"
            return reply_outcome(code, "", "", service.smtp_replies), f"SMTP {code}"
    text = error_text(span)
    if not text and span.status != "error":
        return Outcome.OK, ""
    lowered = text.lower()
    for pattern, outcome, label in ERROR_WORDS:
        if pattern.search(lowered):
            return outcome, f"{label}: {text}"
    return Outcome.PROBE_ERROR, f"unknown error: {text or 'span status error'}"


def error_text(span: Span) -> str:
    """What the span says went wrong: error.type, exception events, the status message."""
    parts: list[str] = []
    error_type = span.attributes.get("error.type")
    if error_type is not None and str(error_type) != "_OTHER":
        parts.append(str(error_type))
    parts.extend(span.exceptions)
    if span.status_message:
        parts.append(span.status_message)
    return "; ".join(p.strip() for p in parts if p.strip())
