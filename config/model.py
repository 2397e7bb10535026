"""The validated configuration model (pydantic v2, unknown keys rejected), DESIGN.md §10."""

from __future__ import annotations

import re
import socket
from datetime import date
from itertools import pairwise
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from config.durations import Duration, format_duration, parse_duration

# The outcome taxonomy of DESIGN.md §3, as names: config may not import probe/, so the
# probe package's Outcome enum is checked against this list by a test.
OutcomeName = Literal[
    "ok",
    "timeout",
    "server_error",
    "connection_error",
    "tls_error",
    "dns_error",
    "client_error",
    "rate_limited",
    "probe_error",
]
DEFAULT_COUNTS_AS_UNAVAILABLE: tuple[OutcomeName, ...] = (
    "timeout",
    "server_error",
    "connection_error",
)
NotifyEvent = Literal[
    "opened",
    "upgraded",
    "restored",
    "reopened",
    "resolved",
    "clock_due",
    "clock_breached",
    "prober_unhealthy",
]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$"


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError(
            "url",
            "invalid URL {value} (expected http:// or https://host/...)",
            {"value": repr(value)},
        )
    try:
        _ = parts.port
    except ValueError:
        raise PydanticCustomError(
            "url", "invalid port in URL {value}", {"value": repr(value)}
        ) from None
    return value


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PydanticCustomError(
            "host_port",
            "invalid address {value} (expected host:port, e.g. 127.0.0.1:9797)",
            {"value": repr(value)},
        )
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "time_zone", "unknown time zone {value}", {"value": repr(value)}
        ) from None
    return value


Url = Annotated[str, AfterValidator(_url)]
HostPort = Annotated[str, AfterValidator(_host_port)]
Name = Annotated[str, Field(pattern=NAME_RE)]
PositiveDuration = Annotated[Duration, Field(gt=0)]
NonNegativeDuration = Annotated[Duration, Field(ge=0)]


def _at_most(limit: str) -> AfterValidator:
    """Refuse a duration above ``limit`` (written like the config), naming the cap."""
    cap = parse_duration(limit)

    def check(value: float) -> float:
        if value > cap:
            raise PydanticCustomError(
                "duration_cap",
                "must be at most {cap}, got {value}",
                {"cap": limit, "value": format_duration(value)},
            )
        return value

    return AfterValidator(check)


def _at_least(limit: str) -> AfterValidator:
    """Refuse a duration below ``limit`` (written like the config), naming the floor."""
    floor = parse_duration(limit)

    def check(value: float) -> float:
        if value < floor:
            raise PydanticCustomError(
                "duration_floor",
                "must be at least {floor}, got {value}",
                {"floor": limit, "value": format_duration(value)},
            )
        return value

    return AfterValidator(check)


# Every duration key has a cap that makes sense for it: a value past it is a typo (400d
# for 400s), and windows and horizons sized by it would cost time and memory for nothing.
ProbeTimeout = Annotated[PositiveDuration, _at_most("5m")]
ControlTimeout = Annotated[PositiveDuration, _at_most("1m")]
Retention = Annotated[PositiveDuration, _at_most("3650d")]
Port = Annotated[int, Field(gt=0, lt=65536)]
Rate = Annotated[float, Field(gt=0, le=1000)]


class ProberConfig(Strict):
    """Who this prober is; its id is stamped on every attempt, its group is its location."""

    id: Name = Field(default_factory=lambda: socket.gethostname().split(".")[0][:63] or "prober")
    # The location (a region, a data centre): every group probes every target; inside a
    # group a fleet shares the targets out (cluster.replicas).
    group: Name = "default"


class ClusterConfig(Strict):
    """How the instances of a fleet (``storage.url``) pool, elect a finalizer and judge lateness.

    Ignored by a single instance on SQLite. Leases and lateness are measured in database time.
    """

    # How long a finalizer's lease lasts unrenewed: the failover time is about this plus 2 s.
    # At least 2 s: the lease is renewed once a second and must outlive one late renewal.
    lease_ttl: Annotated[PositiveDuration, _at_least("2s"), _at_most("5m")] = 5.0
    # A prober whose heartbeat is older than this leaves the live set.
    prober_timeout: Annotated[PositiveDuration, _at_most("5m")] = 5.0
    # A second is final once every live prober published it, or horizon + grace after its end.
    grace: Annotated[NonNegativeDuration, _at_most("5m")] = 3.0
    # A prober whose clock is further than this from the database's has its attempts set aside.
    max_clock_offset: Annotated[PositiveDuration, _at_most("1m")] = 0.25
    # Seconds with fewer reporting probers than this are inconclusive.
    min_probers: Annotated[int, Field(ge=1, le=1000)] = 1
    # How many members of a group probe each target (1: pure sharding; 2: no gap on a kill).
    replicas: Literal[1, 2] = 1


class ServerConfig(Strict):
    """The HTTP server (metrics, API, status page)."""

    listen: HostPort = "127.0.0.1:9797"
    # Bearer token for write endpoints; writes are refused on non-loopback without one.
    token: SecretStr | None = None
    # Base URL used in links (notifications, evidence); defaults to http://<listen>.
    public_url: Url | None = None

    @property
    def base_url(self) -> str:
        """The base URL for links: ``public_url``, else the listen address (or loopback)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host, _, port = self.listen.rpartition(":")
        if host in ("0.0.0.0", "::", "[::]"):  # noqa: S104  (a wildcard bind, not a bind here)
            host = "127.0.0.1"
        return f"http://{host}:{port}"


class MetricsConfig(Strict):
    """What ``/metrics`` exports per target."""

    # False: the attempt counters and duration histograms are summed per service and
    # channel (no ``target`` label), which keeps the page small at thousands of targets.
    per_target: bool = True


class StorageConfig(Strict):
    """Where incidents, verdict runs and evidence are kept.

    ``path`` is the embedded SQLite file (the single-instance default); ``url``
    (``postgresql://…``) selects a PostgreSQL database shared by a fleet instead.
    """

    path: str = "slawatch.db"
    # A libpq URL; secret, since it may carry the password (use ${VAR} for it).
    url: SecretStr | None = None
    attempts_per_second: Annotated[int, Field(ge=0)] = 20
    retention_runs: Retention = 400 * 86400.0
    retention_attempts: Retention = 90 * 86400.0

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in ("postgresql", "postgres"):
                raise PydanticCustomError(
                    "storage_url", "must be a postgresql:// URL (or omit it for SQLite)"
                )
        return value


class EvidenceConfig(Strict):
    """How evidence bundles are sealed: optionally signed with an Ed25519 key."""

    # A PEM Ed25519 private key file (relative paths start at the config's folder). Read
    # only when a bundle is made; its contents never appear in output, logs or errors.
    signing_key: str | None = None


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAYS_RE = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)(?:-(mon|tue|wed|thu|fri|sat|sun))?$")
_SPAN_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def parse_hours(hours: dict[str, str]) -> dict[int, list[tuple[int, int]]]:
    """Turn ``{"mon-fri": "09:00-17:00"}`` into weekday → [(start_minute, end_minute)]."""
    out: dict[int, list[tuple[int, int]]] = {}
    for days, spans in hours.items():
        match = _DAYS_RE.match(days.strip().lower())
        if not match:
            raise PydanticCustomError(
                "hours_days",
                "invalid day range {value} (expected e.g. mon-fri, sat, mon-sun)",
                {"value": repr(days)},
            )
        first = _WEEKDAYS.index(match.group(1))
        last = _WEEKDAYS.index(match.group(2) or match.group(1))
        if last < first:
            raise PydanticCustomError(
                "hours_days", "day range {value} runs backwards", {"value": repr(days)}
            )
        for span in str(spans).split(","):
            m = _SPAN_RE.match(span.strip())
            start = int(m.group(1)) * 60 + int(m.group(2)) if m else 0
            end = int(m.group(3)) * 60 + int(m.group(4)) if m else 0
            if not m or end <= start or end > 24 * 60:
                raise PydanticCustomError(
                    "hours_span",
                    "invalid hours {value} (expected e.g. 09:00-17:00)",
                    {"value": repr(spans)},
                )
            for day in range(first, last + 1):
                out.setdefault(day, []).append((start, end))
    for day, windows in out.items():
        windows.sort()
        for (_, end_a), (start_b, _) in pairwise(windows):
            if start_b < end_a:
                raise PydanticCustomError(
                    "hours_overlap",
                    "overlapping hours on {day}",
                    {"day": _WEEKDAYS[day]},
                )
    return out


class HolidaySource(Strict):
    """Which public holidays the ``holidays`` package generates for a calendar."""

    country: str
    subdiv: str | None = None
    # Some calendars (banks) do not observe holidays moved off a weekend.
    observed: bool = True

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        import holidays  # noqa: PLC0415  (heavy import, only when a calendar names one)

        if value not in holidays.list_supported_countries():
            raise PydanticCustomError(
                "country", "unknown holiday country {value}", {"value": repr(value)}
            )
        return value


class CalendarConfig(Strict):
    """A business calendar: time zone, weekly working windows, holidays."""

    time_zone: Annotated[str, AfterValidator(_time_zone)]
    hours: dict[str, str] = Field(default_factory=lambda: {"mon-fri": "09:00-17:00"})
    holidays: HolidaySource | None = None
    add: list[date] = Field(default_factory=list)
    remove: list[date] = Field(default_factory=list)
    description: str = ""

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, str]) -> dict[str, str]:
        parse_hours(value)
        return value

    def weekly(self) -> dict[int, list[tuple[int, int]]]:
        """The working windows per weekday (0 = Monday), in minutes of local time."""
        return parse_hours(self.hours)


class ControlTarget(Strict):
    """A check of the prober's own network: a TCP connect or an HTTP GET."""

    name: Name
    tcp: HostPort | None = None
    http: Url | None = None
    timeout: ControlTimeout = 1.0

    @model_validator(mode="after")
    def _one_kind(self) -> ControlTarget:
        if (self.tcp is None) == (self.http is None):
            raise PydanticCustomError("control_kind", "give exactly one of tcp or http", {})
        return self


class ClassifierConfig(Strict):
    """Thresholds of the classification state machine (DESIGN.md §5)."""

    critical_after: Annotated[PositiveDuration, _at_most("1h")] = 60.0
    recover_after: Annotated[PositiveDuration, _at_most("1d")] = 120.0
    degraded_window: Annotated[PositiveDuration, _at_most("1d")] = 300.0
    degraded_ratio: Annotated[float, Field(gt=0, le=1)] = 0.05
    degraded_min_seconds: Annotated[int, Field(ge=1, le=86_400)] = 10
    max_gap: Annotated[NonNegativeDuration, _at_most("1h")] = 5.0
    reopen_within: Annotated[NonNegativeDuration, _at_most("7d")] = 900.0


class SlaConfig(Strict):
    """Which SLA policy applies, on which business calendar, with which uptime commitment."""

    policy: str | None = None
    calendar: str | None = None
    commitment: Annotated[float, Field(gt=0, le=100)] | None = None
    # The update cadence where the policy leaves it to mutual agreement (Bird).
    update_every: Annotated[PositiveDuration, _at_most("30d")] | None = None


class TlsOptions(Strict):
    """TLS settings of a probe; verification is on unless switched off."""

    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None


class HttpTarget(Strict):
    """One HTTP API call probed ``rate`` times a second."""

    name: Name
    url: Url
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: list(range(200, 400))
    )
    expect_body: str | None = None
    timeout: ProbeTimeout = 10.0
    rate: Rate = 1.0
    connection: Literal["fresh", "reuse"] = "fresh"
    tls: TlsOptions = Field(default_factory=TlsOptions)
    max_in_flight: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> HttpTarget:
        # aiohttp refuses a request carrying both; every attempt would be a probe_error.
        if urlsplit(self.url).username is not None and any(
            name.lower() == "authorization" for name in self.headers
        ):
            raise PydanticCustomError(
                "credentials",
                "give credentials either in the URL or in an Authorization header, not both",
                {},
            )
        return self


class SmtpTarget(Strict):
    """One SMTP injection dialogue probed ``rate`` times a second."""

    name: Name
    host: Annotated[str, Field(min_length=1)]
    port: Port = 587
    tls: Literal["none", "starttls", "implicit"] = "starttls"
    tls_options: TlsOptions = Field(default_factory=TlsOptions)
    username: str | None = None
    password: SecretStr | None = None
    mail_from: str = "probe@localhost"
    rcpt_to: str = "probe@localhost"
    mode: Literal["connect", "ehlo", "envelope", "data"] = "envelope"
    local_hostname: str | None = None
    timeout: ProbeTimeout = 10.0
    rate: Rate = 1.0
    max_in_flight: Annotated[int, Field(ge=1)] | None = None


# Which attempts a service judges: its own probes', the customer's ingested traffic, or both.
SourceName = Literal["probes", "traffic"]
SOURCE_NAMES: tuple[SourceName, ...] = get_args(SourceName)
# The ports of SMTP submission and relay: an SMTP rule matches only spans to one of them.
SMTP_PORTS = (25, 465, 587)


class TrafficRule(Strict):
    """Which of the customer's client spans are calls of this service (DESIGN.md §13).

    Every ``match`` entry must hold: an attribute equal to the value, or, for a value
    starting with ``^``, matching that regular expression. Attribute names are the stable
    HTTP semantic conventions (``server.address``, ``url.path``, ...); spans with the old
    names (``net.peer.name``, ``http.target``, ...) match the same rules.
    """

    # attribute name → text (a regex when it starts with ``^``) or a number (``server.port: 587``).
    match: dict[str, str | int]
    channel: Literal["api", "smtp"] = "api"
    # The target name ingested attempts carry (evidence groups samples by it).
    target: Name = "traffic"
    # smtp: the span attribute holding the SMTP reply code (required for an smtp rule).
    reply_code: Annotated[str, Field(min_length=1)] | None = None

    @field_validator("match", mode="before")
    @classmethod
    def _patterns(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value  # the type check words it
        if not value:
            raise PydanticCustomError("traffic_match", "give at least one attribute to match", {})
        for key, wanted in value.items():
            if not isinstance(key, str) or not key:
                raise PydanticCustomError(
                    "traffic_match", "attribute names are text, got {key}", {"key": repr(key)}
                )
            if isinstance(wanted, bool) or not isinstance(wanted, str | int) or wanted == "":
                raise PydanticCustomError(
                    "traffic_match",
                    "{key}: expected text, a ^regex or a number, got {value}",
                    {"key": key, "value": repr(wanted)},
                )
            if isinstance(wanted, str) and wanted.startswith("^"):
                try:
                    re.compile(wanted)
                except re.error as exc:
                    raise PydanticCustomError(
                        "traffic_regex",
                        "{key}: invalid regular expression {value}: {error}",
                        {"key": key, "value": repr(wanted), "error": str(exc)},
                    ) from None
        return value

    @model_validator(mode="after")
    def _smtp_reply(self) -> TrafficRule:
        if self.channel == "smtp" and self.reply_code is None:
            raise PydanticCustomError(
                "traffic_reply_code",
                "an smtp rule names the span attribute holding the SMTP reply code "
                "(reply_code: ...)",
                {},
            )
        if self.channel == "api" and self.reply_code is not None:
            raise PydanticCustomError("traffic_reply_code", "reply_code is for smtp rules only", {})
        return self


class StatusPageConfig(Strict):
    """The provider's own status page (Atlassian Statuspage format), polled beside the probes."""

    # The page's base URL; ``/api/v2/summary.json`` and ``/api/v2/incidents.json`` are read.
    url: Url
    # Component names to follow, as the page names them; empty: every component.
    components: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    interval: Annotated[PositiveDuration, Field(ge=5), _at_most("1h")] = 60.0
    timeout: ProbeTimeout = 10.0


class ServiceConfig(Strict):
    """A provider's service: its probes, its contract and its classifier thresholds."""

    name: Name
    environment: Literal["production", "staging", "development"] = "production"
    sla: SlaConfig = Field(default_factory=SlaConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    counts_as_unavailable: list[OutcomeName] = Field(
        default_factory=lambda: list(DEFAULT_COUNTS_AS_UNAVAILABLE)
    )
    # Overrides of the SMTP reply-code → outcome mapping, e.g. {"550": server_error}.
    smtp_replies: dict[str, OutcomeName] = Field(default_factory=dict)
    api: list[HttpTarget] = Field(default_factory=list)
    smtp: list[SmtpTarget] = Field(default_factory=list)
    # The customer's client spans that are this service's calls (OTLP ingestion).
    traffic: list[TrafficRule] = Field(default_factory=list)
    # Which attempts are judged: both are the customer's calls, so both by default.
    sources: Annotated[list[SourceName], Field(min_length=1)] = Field(
        default_factory=lambda: list(SOURCE_NAMES)
    )
    status_page: StatusPageConfig | None = None

    @field_validator("sources")
    @classmethod
    def _distinct_sources(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("sources", "names a source twice", {})
        return value

    @field_validator("smtp_replies")
    @classmethod
    def _reply_codes(cls, value: dict[str, str]) -> dict[str, str]:
        for code in value:
            if not re.fullmatch(
                r"[2-5]\d\d(@(greeting|ehlo|starttls|auth|mail|rcpt|data|rset|quit))?", code
            ):
                raise PydanticCustomError(
                    "reply_code",
                    "invalid SMTP reply code {value} (expected e.g. 451 or 554@greeting)",
                    {"value": repr(code)},
                )
        return value


class NotifyBase(Strict):
    """Filters common to every notification channel (each defaults to everything)."""

    name: Name
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS))
    services: list[str] | None = None
    severities: list[Annotated[int, Field(ge=1, le=3)]] = Field(default_factory=lambda: [1, 2, 3])
    max_tries: Annotated[int, Field(ge=1)] = 10
    timeout: ProbeTimeout = 10.0


class WebhookNotify(NotifyBase):
    """A generic JSON webhook, optionally HMAC-signed."""

    type: Literal["webhook"]
    url: Url
    secret: SecretStr | None = None


class SlackNotify(NotifyBase):
    """A Slack-compatible incoming webhook."""

    type: Literal["slack"]
    url: Url


class PagerDutyNotify(NotifyBase):
    """A PagerDuty Events API v2-compatible endpoint."""

    type: Literal["pagerduty"]
    url: Url = "https://events.pagerduty.com/v2/enqueue"
    routing_key: SecretStr


class AlertmanagerNotify(NotifyBase):
    """An Alertmanager (``POST /api/v2/alerts``)."""

    type: Literal["alertmanager"]
    url: Url


class EmailNotify(NotifyBase):
    """E-mail through an SMTP relay, optionally as a ticket draft."""

    type: Literal["email"]
    host: Annotated[str, Field(min_length=1)]
    port: Port = 587
    tls: Literal["none", "starttls", "implicit"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    ticket_draft: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


NotifyChannel = Annotated[
    WebhookNotify | SlackNotify | PagerDutyNotify | AlertmanagerNotify | EmailNotify,
    Field(discriminator="type"),
]


class IngestConfig(Strict):
    """Bounds on ingested attempts (``POST /v1/traces``, ``POST /api/v1/attempts``)."""

    # Attempts stamped further ahead of our clock than this are refused (clock skew).
    max_ahead: Annotated[NonNegativeDuration, _at_most("1h")] = 5.0
    # Attempts whose second was judged more than this ago are refused; those judged less
    # long ago are counted as late. None: the classifier's horizon.
    max_behind: Annotated[NonNegativeDuration, _at_most("1d")] | None = None
    # The largest request body accepted (after decompression too).
    max_body: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 8 * 1024 * 1024


class Config(Strict):
    """The whole configuration file."""

    prober: ProberConfig = Field(default_factory=ProberConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    calendars: dict[Name, CalendarConfig] = Field(default_factory=dict)
    control: list[ControlTarget] = Field(default_factory=list)
    services: list[ServiceConfig] = Field(default_factory=list)
    notify: list[NotifyChannel] = Field(default_factory=list)

    def service(self, name: str) -> ServiceConfig:
        """The service called ``name`` (KeyError if none)."""
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)
