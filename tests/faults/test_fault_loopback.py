"""Server faults on loopback: hangs, trickles, resets, 503s, an expiring certificate, SMTP refusals.

One scheduler runs every probe at once for a few real seconds against its faulty server
(and a healthy provider); each fault's real attempts are asserted, then re-stamped onto a
long timeline whose verdicts and incident events are asserted to the second
(docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ssl
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from probe.attempt import Attempt, Outcome
from slawatch.simulator import SimulatedProvider
from tests.faults.fault_helpers import (
    OUTAGE,
    OUTAGE_EVENTS,
    by_second,
    classify,
    observe,
    of_service,
    restamp,
)
from tests.support.configs import config_from_yaml
from tests.support.servers import (
    HANG,
    Handler,
    hang_after_request,
    raw_server,
    read_request,
    reset,
    scripted_smtp,
)
from tests.support.timeline import Event, expand

SECONDS = 4
# Real seconds the 503 server answers 503 before it recovers.
FAILING_REQUESTS = 3
TLS_NAME = "api.fault.test"
OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send the head at once, then the body one byte a second."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n")
    for _ in range(100):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(1)


async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Promise 1000 bytes, send 100, then reset the connection (RST, not FIN)."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
    await writer.drain()
    await asyncio.sleep(0.05)
    reset(writer)


@dataclass
class Flaky:
    """Answers 503 to the first ``failing`` requests, then 200: an outage that recovers."""

    failing: int
    requests: int = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request."""
        await read_request(reader)
        self.requests += 1
        if self.requests <= self.failing:
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n"
            )
        else:
            writer.write(OK_RESPONSE)
        await writer.drain()


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A 200 to any request."""
    await read_request(reader)
    writer.write(OK_RESPONSE)
    await writer.drain()


def expiring_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A server context whose first handshake shows a valid certificate, later ones an expired one.

    The certificate is switched in the SNI callback, as a server that renews nothing would
    see its certificate pass ``not_after``.
    """
    valid = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(TLS_NAME).configure_cert(valid)
    expired = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(
        TLS_NAME,
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
    ).configure_cert(expired)
    handshakes = 0

    def pick(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        nonlocal handshakes
        handshakes += 1
        if handshakes > 1:
            sock.context = expired

    valid.sni_callback = pick
    return valid


GREETING = b"220 smtp.fault.test ESMTP\r\n"
HTTP_FAULTS: dict[str, Handler] = {
    "http-hang": hang_after_request,
    "http-trickle": trickle,
    "http-reset": reset_mid_body,
    "http-503": Flaky(FAILING_REQUESTS),
}
SMTP_FAULTS: dict[str, Handler] = {
    "smtp-421": scripted_smtp(b"421 4.3.2 Service not available, closing channel\r\n"),
    "smtp-stall": scripted_smtp(GREETING, EHLO=HANG),
    "smtp-451": scripted_smtp(GREETING, MAIL=b"451 4.3.0 Temporary local problem\r\n"),
    "smtp-451-throttled": scripted_smtp(
        GREETING, MAIL=b"451 4.7.1 Too many messages, slow down\r\n"
    ),
}


async def _observe_all(ca_file: Path, ca: trustme.CA) -> list[Attempt]:
    """Start every server, probe them all at once for SECONDS, stop everything."""
    provider = SimulatedProvider()
    await provider.start()
    try:
        async with AsyncExitStack() as stack:
            ports: dict[str, int] = {}
            for name, handler in {**HTTP_FAULTS, **SMTP_FAULTS}.items():
                ports[name] = (await stack.enter_async_context(raw_server(handler))).port
            tls = await stack.enter_async_context(raw_server(answer_ok, ssl=expiring_tls(ca)))
            lines = [
                "prober: {id: loop-1}",
                "services:",
                "  - name: http-ok",
                f"    api: [{{name: call, url: '{provider.api_url}', timeout: 1s}}]",
                "  - name: smtp-ok",
                f"    smtp: [{{name: inject, host: 127.0.0.1, port: {provider.smtp_port},"
                " tls: none, timeout: 1s}]",
                "  - name: https-expiring",
                f"    api: [{{name: call, url: 'https://127.0.0.1:{tls.port}/', timeout: 1s,"
                f" tls: {{ca_file: '{ca_file}', server_name: {TLS_NAME}}}}}]",
            ]
            for name in HTTP_FAULTS:
                url = f"http://127.0.0.1:{ports[name]}/"
                lines += [
                    f"  - name: {name}",
                    f"    api: [{{name: call, url: '{url}', timeout: 1s}}]",
                ]
            for name in SMTP_FAULTS:
                lines += [
                    f"  - name: {name}",
                    f"    smtp: [{{name: inject, host: 127.0.0.1, port: {ports[name]},"
                    " tls: none, local_hostname: probe.test, timeout: 1s}]",
                ]
            return await observe(config_from_yaml("\n".join(lines) + "\n"), SECONDS)
    finally:
        await provider.close()


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> list[Attempt]:
    """Every fault's real attempts, probed concurrently."""
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return asyncio.run(_observe_all(ca_file, ca))


# Per-fault expectations of every real attempt: outcome, phase, detail prefix; for a fault
# that changes while observed (503 that recovers, certificate that expires) the first
# attempts differ from the last ones, listed in `later`.
@dataclass(frozen=True)
class Seen:
    """What every real attempt of a fault shows."""

    outcome: Outcome
    phase: str
    detail: str


HTTP_503 = Seen(Outcome.SERVER_ERROR, "done", "HTTP 503 Service Unavailable")
HTTP_OK = Seen(Outcome.OK, "done", "HTTP 200 OK")
SMTP_OK = Seen(Outcome.OK, "done", "rset 250")
CERT_EXPIRED = Seen(Outcome.TLS_ERROR, "connect", "certificate rejected in connect")


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        pytest.param("http-ok", [HTTP_OK] * SECONDS, id="http-healthy"),
        pytest.param("smtp-ok", [SMTP_OK] * SECONDS, id="smtp-healthy"),
        pytest.param(
            "http-hang",
            [Seen(Outcome.TIMEOUT, "response", "deadline passed after 1s in response")] * SECONDS,
            id="hangs-after-accept",
        ),
        pytest.param(
            "http-trickle",
            [Seen(Outcome.TIMEOUT, "body", "deadline passed after 1s in body")] * SECONDS,
            id="trickles-a-byte-a-second",
        ),
        pytest.param(
            "http-reset",
            [Seen(Outcome.CONNECTION_ERROR, "body", "response body cut short in body")] * SECONDS,
            id="resets-mid-body",
        ),
        pytest.param(
            "http-503",
            [HTTP_503] * FAILING_REQUESTS + [HTTP_OK] * (SECONDS - FAILING_REQUESTS),
            id="503-then-recovers",
        ),
        pytest.param(
            "https-expiring",
            [Seen(Outcome.OK, "done", "HTTP 200 OK")] + [CERT_EXPIRED] * (SECONDS - 1),
            id="certificate-expires",
        ),
        pytest.param(
            "smtp-421",
            [Seen(Outcome.SERVER_ERROR, "greeting", "greeting 421 4.3.2")] * SECONDS,
            id="smtp-greets-421",
        ),
        pytest.param(
            "smtp-stall",
            [Seen(Outcome.TIMEOUT, "ehlo", "no reply in time in ehlo (1s)")] * SECONDS,
            id="smtp-stalls-after-ehlo",
        ),
        pytest.param(
            "smtp-451",
            [Seen(Outcome.SERVER_ERROR, "mail", "mail 451 4.3.0")] * SECONDS,
            id="smtp-451-to-mail",
        ),
        pytest.param(
            "smtp-451-throttled",
            [Seen(Outcome.RATE_LIMITED, "mail", "mail 451 4.7.1")] * SECONDS,
            id="smtp-451-4.7.1-is-throttling",
        ),
    ],
)
def test_observed_attempts(observed: list[Attempt], service: str, expected: list[Seen]) -> None:
    """Every real attempt of a fault has the outcome, phase and detail the fault implies."""
    seen = of_service(observed, service)
    assert [
        Seen(a.outcome, a.phase, a.detail[: len(e.detail)])
        for a, e in zip(seen, expected, strict=True)
    ] == expected
    for attempt, want in zip(seen, expected, strict=True):
        if want.outcome is Outcome.TIMEOUT:
            assert 0.95 < attempt.duration_s < 1.5


def test_expired_certificate_detail(observed: list[Attempt]) -> None:
    """The expired certificate is named as such in the attempt detail."""
    failed = [a for a in of_service(observed, "https-expiring") if a.outcome is Outcome.TLS_ERROR]
    assert failed
    assert all("certificate has expired" in a.detail for a in failed)


@pytest.mark.parametrize(
    ("service", "line"),
    [
        pytest.param("http-hang", "xxxx", id="hangs-after-accept"),
        pytest.param("http-trickle", "xxxx", id="trickles-a-byte-a-second"),
        pytest.param("http-reset", "xxxx", id="resets-mid-body"),
        pytest.param("http-503", "xxx.", id="503-then-recovers"),
        pytest.param("https-expiring", "....", id="certificate-expires-not-counted"),
        pytest.param("https-expiring-counted", ".xxx", id="certificate-expires-counted"),
        pytest.param("smtp-421", "xxxx", id="smtp-greets-421"),
        pytest.param("smtp-stall", "xxxx", id="smtp-stalls-after-ehlo"),
        pytest.param("smtp-451", "xxxx", id="smtp-451-to-mail"),
        pytest.param("smtp-451-throttled", "....", id="smtp-451-4.7.1-is-throttling"),
    ],
)
def test_observed_seconds(observed: list[Attempt], service: str, line: str) -> None:
    """Each real second of a fault gets the verdict the contract gives it."""
    source = service.removesuffix("-counted")
    attempts = [dataclasses.replace(a, service=service) for a in of_service(observed, source)]
    assert classify(config_from_yaml(JUDGE), attempts, service).line() == line


JUDGE = """
services:
  - {name: http-hang, api: [{name: call, url: "http://127.0.0.1:1/"}]}
  - {name: http-trickle, api: [{name: call, url: "http://127.0.0.1:1/"}]}
  - {name: http-reset, api: [{name: call, url: "http://127.0.0.1:1/"}]}
  - {name: http-503, api: [{name: call, url: "http://127.0.0.1:1/"}]}
  - {name: https-expiring, api: [{name: call, url: "https://127.0.0.1:1/"}]}
  - name: https-expiring-counted
    counts_as_unavailable: [timeout, server_error, connection_error, tls_error]
    api: [{name: call, url: "https://127.0.0.1:1/"}]
  - {name: smtp-421, smtp: [{name: inject, host: 127.0.0.1}]}
  - {name: smtp-stall, smtp: [{name: inject, host: 127.0.0.1}]}
  - {name: smtp-451, smtp: [{name: inject, host: 127.0.0.1}]}
  - {name: smtp-451-throttled, smtp: [{name: inject, host: 127.0.0.1}]}
  - name: mixed
    api: [{name: call, url: "http://127.0.0.1:1/"}]
    smtp: [{name: inject, host: 127.0.0.1}]
"""


@pytest.mark.parametrize(
    ("service", "healthy", "timeline", "line", "events"),
    [
        pytest.param(
            "http-503", "http-503", OUTAGE, OUTAGE, OUTAGE_EVENTS, id="503-for-70s-then-recovers"
        ),
        pytest.param(
            "http-hang", "http-ok", OUTAGE, OUTAGE, OUTAGE_EVENTS, id="hangs-after-accept"
        ),
        pytest.param(
            "http-trickle",
            "http-ok",
            "30. 45x 150.",
            "30. 45x 150.",
            [("opened", 2, 30, 40), ("restored", 2, 75, 195)],
            id="trickles-for-45s",
        ),
        pytest.param(
            "http-reset",
            "http-ok",
            "30. 9x 191.",
            "30. 9x 191.",
            [],
            id="resets-for-9s-below-the-threshold",
        ),
        pytest.param(
            "https-expiring",
            "http-ok",
            OUTAGE,
            "230.",
            [],
            id="certificate-expired-not-counted",
        ),
        pytest.param(
            "https-expiring-counted",
            "http-ok",
            OUTAGE,
            OUTAGE,
            OUTAGE_EVENTS,
            id="certificate-expired-counted",
        ),
        pytest.param("smtp-421", "smtp-ok", OUTAGE, OUTAGE, OUTAGE_EVENTS, id="smtp-greets-421"),
        pytest.param(
            "smtp-stall",
            "smtp-ok",
            "30. 60x 140.",
            "30. 60x 140.",
            [("opened", 2, 30, 40), ("upgraded", 1, 30, 90), ("restored", 1, 90, 210)],
            id="smtp-stalls-for-60s",
        ),
        pytest.param(
            "smtp-451",
            "smtp-ok",
            "30. 20x 30. 20x 150.",
            "30. 20x 30. 20x 150.",
            [("opened", 2, 30, 40), ("restored", 2, 100, 220)],
            id="smtp-451-twice-one-incident",
        ),
        pytest.param(
            "smtp-451-throttled", "smtp-ok", OUTAGE, "230.", [], id="smtp-throttled-not-counted"
        ),
    ],
)
def test_incident_timeline(
    *,
    observed: list[Attempt],
    service: str,
    healthy: str,
    timeline: str,
    line: str,
    events: list[Event],
) -> None:
    """The observed fault re-stamped onto a long timeline: exact verdicts and incident events."""
    source = service.removesuffix("-counted")
    seconds = by_second(of_service(observed, source))
    samples = _samples(seconds, by_second(of_service(observed, healthy)), source)
    attempts = restamp(timeline, samples, service=service)
    judged = classify(config_from_yaml(JUDGE), attempts, service)
    assert judged.line() == expand(line)
    assert judged.events() == events


def _samples(
    fault: list[list[Attempt]], healthy: list[list[Attempt]], source: str
) -> Mapping[str, list[list[Attempt]]]:
    """The observed seconds that stand for ``x`` (faulty) and ``.`` (healthy) seconds."""
    if source == "http-503":
        # The same server, before and after it recovered.
        return {"x": fault[:FAILING_REQUESTS], ".": fault[FAILING_REQUESTS:]}
    if source == "https-expiring":
        return {"x": fault[1:], ".": healthy}
    return {"x": fault, ".": healthy}


def test_one_channel_down_makes_the_service_unavailable(observed: list[Attempt]) -> None:
    """API healthy while SMTP greets with 421: "and/or", so the service is unavailable."""
    api = by_second(of_service(observed, "http-ok"))
    smtp = by_second(of_service(observed, "smtp-421"))
    both = [[*a, *s] for a, s in zip(api, smtp, strict=True)]
    attempts = restamp(
        OUTAGE, {".": by_second(of_service(observed, "smtp-ok")), "x": both}, service="mixed"
    )
    judged = classify(config_from_yaml(JUDGE), attempts, "mixed")
    assert judged.line("api") == expand("30? 70. 130?")
    assert judged.line("smtp") == expand(OUTAGE)
    assert judged.line() == expand(OUTAGE)
    assert judged.events() == OUTAGE_EVENTS
    assert judged.signals[0].channels == ("smtp",)
