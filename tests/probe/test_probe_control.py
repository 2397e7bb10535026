"""The control probe, the probe registry and secret redaction."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from config.model import Config, ControlTarget, ServiceConfig
from config.secrets import REDACTED, Redactor
from probe.attempt import Channel, Outcome
from probe.base import CONTROL_SERVICE, ProbeContext
from probe.clock import SystemClock
from probe.control import CONTROL_ERRORS, ControlProbe
from probe.registry import PROBES, build_probes, probe_context
from tests.probe.probe_helpers import no_free_descriptors, table_matches_docstring
from tests.support.configs import config_from_yaml
from tests.support.servers import free_port, raw_server


async def _idle(reader: object, writer: object) -> None:
    return None


async def run(context: ProbeContext, **target: object) -> ControlProbe:
    """A control probe of ``target`` keys."""
    return ControlProbe(ControlTarget(name="gw", timeout=0.3, **target), context=context)  # type: ignore[arg-type]


async def _unavailable(request: web.Request) -> web.Response:
    return web.Response(status=503)


@pytest.fixture
async def http_server() -> AsyncIterator[TestServer]:
    """An HTTP server whose only answer is a 503."""
    app = web.Application()
    app.router.add_get("/", _unavailable)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def test_tcp_ok(context: ProbeContext) -> None:
    """A TCP connect to a listening port is ok, as a control attempt of service _control."""
    async with raw_server(_idle) as server:
        probe = await run(context, tcp=f"127.0.0.1:{server.port}")
        attempt = await probe.attempt(deadline=context.clock.monotonic() + 0.3)
    assert (attempt.outcome, attempt.detail) == (Outcome.OK, "connected")
    assert (attempt.service, attempt.channel) == (CONTROL_SERVICE, Channel.CONTROL)


@pytest.mark.parametrize(
    ("address", "outcome", "detail"),
    [
        pytest.param("refused", Outcome.CONNECTION_ERROR, "connect failed", id="refused"),
        pytest.param(
            "no-such-host.invalid:53", Outcome.DNS_ERROR, "name did not resolve", id="dns"
        ),
        pytest.param("deadline", Outcome.TIMEOUT, "no connection in time", id="timeout"),
        pytest.param("a\x00b:53", Outcome.PROBE_ERROR, "bug in the probe", id="bug"),
    ],
)
async def test_tcp_failures(
    context: ProbeContext, address: str, outcome: Outcome, detail: str
) -> None:
    """A failed connect maps to its row of the control table."""
    if address in ("refused", "deadline"):
        port = free_port()
        address = f"127.0.0.1:{port}"
    probe = await run(context, tcp=address)
    budget = 0.0 if detail == "no connection in time" else 0.3
    attempt = await probe.attempt(deadline=context.clock.monotonic() + budget)
    assert attempt.outcome is outcome
    assert attempt.detail.startswith(detail)


async def test_http_control_any_response_is_ok(
    context: ProbeContext, http_server: TestServer
) -> None:
    """An HTTP control check only asks whether the network answers: a 503 is still ok."""
    probe = await run(context, http=str(http_server.make_url("/")))
    attempt = await probe.attempt(deadline=context.clock.monotonic() + 0.3)
    assert (attempt.outcome, attempt.detail) == (Outcome.OK, "HTTP 503 Service Unavailable")
    assert (attempt.service, attempt.channel, attempt.target) == (
        CONTROL_SERVICE,
        Channel.CONTROL,
        "gw",
    )


async def test_local_exhaustion_is_probe_error(context: ProbeContext) -> None:
    """Out of file descriptors, the control check blames the prober, not the network."""
    port = free_port()
    probe = await run(context, tcp=f"127.0.0.1:{port}")
    with no_free_descriptors():
        attempt = await probe.attempt(deadline=context.clock.monotonic() + 0.3)
    assert attempt.outcome is Outcome.PROBE_ERROR
    assert attempt.detail.startswith("local resources exhausted")


def test_control_table_rows() -> None:
    """The exception table is the one drawn in the module docstring, row for row."""
    import probe.control

    assert table_matches_docstring(CONTROL_ERRORS, probe.control.__doc__)


def _target_types() -> set[type]:
    """Every target model the config can hold: list items of ServiceConfig and Config.control."""
    found: set[type] = set()
    for model in (ServiceConfig, Config):
        for name, info in model.model_fields.items():
            if typing.get_origin(info.annotation) is list and (
                model is ServiceConfig or name == "control"
            ):
                (item,) = typing.get_args(info.annotation)
                if isinstance(item, type) and item.__name__.endswith("Target"):
                    found.add(item)
    return found


def test_every_target_type_has_a_probe() -> None:
    """The registry maps every target type of the config model to a probe."""
    types = _target_types()
    assert len(types) == 3
    assert types == set(PROBES)


CONFIG = """
prober: {id: eu-1}
control:
  - {name: gw, tcp: "127.0.0.1:9"}
services:
  - name: mail
    smtp_replies: {"550": server_error}
    api:
      - {name: account, url: "https://api.example.com/v1", headers: {Authorization: "Bearer ${TOKEN}", X-Trace: plain}}
    smtp:
      - {name: inject, host: smtp.example.com, password: "literal-pw"}
  - name: other
    api:
      - {name: account, url: "http://127.0.0.1:1/"}
"""


@pytest.mark.parametrize(
    ("services", "targets", "expected"),
    [
        pytest.param(
            None,
            None,
            [
                ("_control", "control", "gw"),
                ("mail", "api", "account"),
                ("mail", "smtp", "inject"),
                ("other", "api", "account"),
            ],
            id="all",
        ),
        pytest.param(
            {"mail"}, None, [("mail", "api", "account"), ("mail", "smtp", "inject")], id="service"
        ),
        pytest.param(
            None,
            {"account"},
            [("mail", "api", "account"), ("other", "api", "account")],
            id="target",
        ),
        pytest.param({"_control"}, None, [("_control", "control", "gw")], id="control-only"),
    ],
)
async def test_build_probes(
    services: set[str] | None, targets: set[str] | None, expected: list[tuple[str, str, str]]
) -> None:
    """Probes are built for every configured target, filtered by service and target name."""
    loaded = config_from_yaml(CONFIG, environ={"TOKEN": "tok-123"})
    async with probe_context(loaded, SystemClock()) as context:
        probes = build_probes(loaded.config, context, services=services, targets=targets)
        assert [(p.service, str(p.channel), p.target) for p in probes] == expected
        assert context.prober == "eu-1"
        redacted = context.redact("auth with Bearer tok-123 / tok-123 / literal-pw / plain")
        assert redacted == f"auth with {REDACTED} / {REDACTED} / {REDACTED} / plain"


@pytest.mark.parametrize(
    ("secrets", "text", "expected"),
    [
        pytest.param({"abc"}, "key abc!", f"key {REDACTED}!", id="secret"),
        pytest.param({"abc", "abcdef"}, "abcdef", REDACTED, id="longest-first"),
        pytest.param(set(), "https://u:pw@h/x", f"https://u:{REDACTED}@h/x", id="url-password"),
        pytest.param(set(), "a\r\n  b", "a b", id="one-line"),
        pytest.param({""}, "text", "text", id="empty-secret-ignored"),
        pytest.param(set(), "x" * 300, "x" * 239 + "…", id="cut"),
    ],
)
def test_redactor(secrets: set[str], text: str, expected: str) -> None:
    """Secrets and URL passwords are replaced; details stay one short line."""
    assert Redactor(secrets).detail(text) == expected
