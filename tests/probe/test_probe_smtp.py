"""The SMTP probe against real loopback servers: every mode, every reply row and exception row."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult

from config.model import OutcomeName, SmtpTarget, TlsOptions
from probe.attempt import Attempt, Channel, Outcome
from probe.base import ProbeContext
from probe.smtp import SMTP_ERRORS, SmtpProbe, reply_outcome
from tests.probe.probe_helpers import SECRET_ENV, no_free_descriptors, table_matches_docstring
from tests.support.servers import (
    CLOSE,
    HANG,
    STARTTLS_NOT_TLS,
    free_port,
    raw_server,
    scripted_smtp,
    smtp_server,
)

TIMEOUT = 0.4


async def run(
    context: ProbeContext, replies: dict[str, OutcomeName] | None = None, **target: Any
) -> Attempt:
    """One attempt of an SMTP probe built from ``target`` keys."""
    target.setdefault("name", "inject")
    target.setdefault("host", "127.0.0.1")
    target.setdefault("timeout", TIMEOUT)
    target.setdefault("tls", "none")
    target.setdefault("local_hostname", "probe.test")
    probe = SmtpProbe(SmtpTarget(**target), service="svc", context=context, replies=replies)
    return await probe.attempt(deadline=context.clock.monotonic() + probe.timeout)


@dataclass
class Sink:
    """An aiosmtpd handler: refuses by address, keeps what DATA delivered."""

    messages: list[bytes] = field(default_factory=list)

    async def handle_RCPT(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        self.messages.append(envelope.content)
        return "250 2.0.0 Queued"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    if auth_data.password == b"good":
        return AuthResult(success=True)
    if auth_data.password == b"temp":
        return AuthResult(
            success=False, handled=False, message="454 4.7.0 Temporary authentication failure"
        )
    return AuthResult(success=False, handled=False)


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """The servers' TLS context, with a certificate for 127.0.0.1 from the private CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def sink() -> Sink:
    """The handler shared by the aiosmtpd servers of this module."""
    return Sink()


@pytest.fixture(scope="module")
def smtpd(sink: Sink, server_tls: ssl.SSLContext) -> Iterator[int]:
    """An aiosmtpd server on 127.0.0.1 offering STARTTLS and AUTH; yields its port."""
    with smtp_server(
        sink,
        server_hostname="smtp.test",
        tls_context=server_tls,
        authenticator=_authenticator,
        auth_require_tls=False,
    ) as port:
        yield port


@pytest.fixture(scope="module")
def smtpd_implicit(sink: Sink, server_tls: ssl.SSLContext) -> Iterator[int]:
    """An aiosmtpd server on 127.0.0.1 speaking TLS from the first byte; yields its port."""
    with smtp_server(sink, server_hostname="smtp.test", ssl_context=server_tls) as port:
        yield port


@pytest.mark.parametrize(
    ("mode", "tls", "credentials", "detail"),
    [
        pytest.param("connect", "none", None, "connect 220 smtp.test", id="connect"),
        pytest.param("ehlo", "none", None, "ehlo 250 smtp.test", id="ehlo"),
        pytest.param("ehlo", "starttls", None, "ehlo 250 smtp.test", id="ehlo-starttls"),
        pytest.param("envelope", "none", None, "rset 250 OK", id="envelope"),
        pytest.param(
            "envelope", "starttls", ("probe", "good"), "rset 250 OK", id="envelope-starttls-auth"
        ),
        pytest.param("data", "starttls", ("probe", "good"), "data 250 2.0.0 Queued", id="data"),
    ],
)
async def test_good_dialogue(
    *,
    context: ProbeContext,
    smtpd: int,
    sink: Sink,
    ca_file: str,
    mode: str,
    tls: str,
    credentials: tuple[str, str] | None,
    detail: str,
) -> None:
    """Every mode's dialogue is accepted by a healthy server; only ``data`` sends mail."""
    username, password = credentials or (None, None)
    before = len(sink.messages)
    attempt = await run(
        context,
        port=smtpd,
        mode=mode,
        tls=tls,
        tls_options=TlsOptions(ca_file=ca_file),
        username=username,
        password=password,
        mail_from="probe@example.com",
        rcpt_to="sink@example.com",
    )
    assert (attempt.outcome, attempt.phase) == (Outcome.OK, "done")
    assert attempt.detail.startswith(detail)
    assert attempt.channel is Channel.SMTP
    assert "total" in attempt.timings
    if tls == "starttls":
        assert "starttls" in attempt.timings
    if credentials:
        assert "auth" in attempt.timings
    sent = len(sink.messages) - before
    assert sent == (1 if mode == "data" else 0)
    if sent:
        assert b"Subject: slawatch canary test-1" in sink.messages[-1]


async def test_implicit_tls(context: ProbeContext, smtpd_implicit: int, ca_file: str) -> None:
    """Implicit TLS (port 465 style) with a trusted certificate runs the envelope dialogue."""
    attempt = await run(
        context, port=smtpd_implicit, tls="implicit", tls_options=TlsOptions(ca_file=ca_file)
    )
    assert (attempt.outcome, attempt.detail) == (Outcome.OK, "rset 250 OK")


@pytest.mark.parametrize(
    ("password", "outcome", "detail"),
    [
        pytest.param(
            "wrong",
            Outcome.CLIENT_ERROR,
            "auth 535 5.7.8 Authentication credentials invalid "
            "[probe misconfigured: check credentials]",
            id="auth-535",
        ),
        pytest.param(
            "temp",
            Outcome.SERVER_ERROR,
            "auth 454 4.7.0 Temporary authentication failure",
            id="auth-454",
        ),
    ],
)
async def test_auth_refused(
    context: ProbeContext, smtpd: int, password: str, outcome: Outcome, detail: str
) -> None:
    """A refused login is the probe's fault (535) or the provider's transient trouble (454)."""
    attempt = await run(context, port=smtpd, username="probe", password=password)
    assert (attempt.outcome, attempt.phase, attempt.detail) == (outcome, "auth", detail)


async def test_rcpt_refused(context: ProbeContext, smtpd: int) -> None:
    """A 550 to RCPT TO is a client error: the request was refused, the service works."""
    attempt = await run(context, port=smtpd, rcpt_to="nobody@example.com")
    assert (attempt.outcome, attempt.phase) == (Outcome.CLIENT_ERROR, "rcpt")
    assert attempt.detail == "rcpt 550 5.1.1 No such user"


# Raw scripted servers for the faults aiosmtpd will not commit -----------------------------

EHLO_AUTH = b"250-raw.test\r\n250 AUTH PLAIN\r\n"
EHLO_TLS = b"250-raw.test\r\n250 STARTTLS\r\n"


@pytest.mark.parametrize(
    ("handler", "target", "outcome", "phase", "detail"),
    [
        pytest.param(
            scripted_smtp(b"421 4.3.2 Service shutting down\r\n"),
            {},
            Outcome.SERVER_ERROR,
            "greeting",
            "greeting 421 4.3.2 Service shutting down",
            id="greeting-421",
        ),
        pytest.param(
            scripted_smtp(b"554 5.3.2 No SMTP service here\r\n"),
            {},
            Outcome.SERVER_ERROR,
            "greeting",
            "greeting 554 5.3.2 No SMTP service here",
            id="greeting-554",
        ),
        pytest.param(
            scripted_smtp(HANG),
            {},
            Outcome.TIMEOUT,
            "greeting",
            f"no reply in time in greeting ({TIMEOUT}s)",
            id="never-greets",
        ),
        pytest.param(
            scripted_smtp(CLOSE),
            {},
            Outcome.CONNECTION_ERROR,
            "greeting",
            "connect failed in greeting: SMTPConnectError",
            id="closed-before-greeting",
        ),
        pytest.param(
            scripted_smtp(MAIL=b"451 4.3.0 Try again later\r\n"),
            {},
            Outcome.SERVER_ERROR,
            "mail",
            "mail 451 4.3.0 Try again later",
            id="mail-451",
        ),
        pytest.param(
            scripted_smtp(MAIL=b"452 4.3.1 Insufficient system storage\r\n"),
            {},
            Outcome.SERVER_ERROR,
            "mail",
            "mail 452 4.3.1 Insufficient system storage",
            id="mail-452",
        ),
        pytest.param(
            scripted_smtp(MAIL=b"451 4.7.1 Rate limit exceeded\r\n"),
            {},
            Outcome.RATE_LIMITED,
            "mail",
            "mail 451 4.7.1 Rate limit exceeded",
            id="mail-451-rate-limited",
        ),
        pytest.param(
            scripted_smtp(MAIL=b"554 5.7.1 Sender blocked\r\n"),
            {},
            Outcome.CLIENT_ERROR,
            "mail",
            "mail 554 5.7.1 Sender blocked",
            id="mail-554",
        ),
        pytest.param(
            scripted_smtp(RCPT=b"550 5.1.1 No such user\r\n"),
            {},
            Outcome.CLIENT_ERROR,
            "rcpt",
            "rcpt 550 5.1.1 No such user",
            id="rcpt-550",
        ),
        pytest.param(
            scripted_smtp(RCPT=HANG),
            {},
            Outcome.TIMEOUT,
            "rcpt",
            f"no reply in time in rcpt ({TIMEOUT}s)",
            id="reply-slower-than-timeout",
        ),
        pytest.param(
            scripted_smtp(MAIL=CLOSE),
            {},
            Outcome.CONNECTION_ERROR,
            "mail",
            "disconnected mid-dialogue in mail: SMTPServerDisconnected",
            id="disconnect-mid-dialogue",
        ),
        pytest.param(
            scripted_smtp(),
            {"tls": "starttls"},
            Outcome.TLS_ERROR,
            "starttls",
            "STARTTLS not offered in starttls: StartTlsNotOffered",
            id="starttls-not-offered",
        ),
        pytest.param(
            scripted_smtp(EHLO=EHLO_TLS, STARTTLS=b"454 4.7.0 TLS not available\r\n"),
            {"tls": "starttls"},
            Outcome.SERVER_ERROR,
            "starttls",
            "starttls 454 4.7.0 TLS not available",
            id="starttls-454",
        ),
        pytest.param(
            scripted_smtp(EHLO=EHLO_TLS, STARTTLS=STARTTLS_NOT_TLS),
            {"tls": "starttls"},
            Outcome.TLS_ERROR,
            "starttls",
            "TLS handshake failed in starttls: SSLError",
            id="starttls-handshake-fails",
        ),
        pytest.param(
            scripted_smtp(),
            {"tls": "implicit"},
            Outcome.TLS_ERROR,
            "connect",
            "TLS handshake failed in connect: SMTPConnectError",
            id="implicit-tls-not-tls",
        ),
        pytest.param(
            scripted_smtp(),
            {"username": "u", "password": "p"},
            Outcome.CLIENT_ERROR,
            "auth",
            "AUTH not offered in auth: AuthNotOffered",
            id="auth-not-offered",
        ),
        pytest.param(
            scripted_smtp(EHLO=EHLO_AUTH, AUTH=f"535 5.7.8 {SECRET_ENV} refused\r\n".encode()),
            {"username": "u", "password": SECRET_ENV},
            Outcome.CLIENT_ERROR,
            "auth",
            "auth 535 5.7.8 [redacted] refused [probe misconfigured: check credentials]",
            id="password-echo-redacted",
        ),
        pytest.param(
            scripted_smtp(),
            {"mail_from": "prøbe@example.com"},
            Outcome.PROBE_ERROR,
            "mail",
            "bug in the probe in mail: UnicodeEncodeError",
            id="bug-is-probe-error",
        ),
        pytest.param(
            scripted_smtp(QUIT=CLOSE),
            {},
            Outcome.OK,
            "done",
            "rset 250 OK",
            id="fumbled-quit-is-ok",
        ),
    ],
)
async def test_raw_server_faults(
    *,
    context: ProbeContext,
    handler: Any,
    target: dict[str, Any],
    outcome: Outcome,
    phase: str,
    detail: str,
) -> None:
    """Each reply code and fault of the table maps to its outcome, phase and detail."""
    async with raw_server(handler) as server:
        attempt = await run(context, port=server.port, **target)
    assert (attempt.outcome, attempt.phase) == (outcome, phase)
    assert attempt.detail.startswith(detail)


async def test_greeting_override(context: ProbeContext) -> None:
    """A service's ``smtp_replies`` override the default mapping, phase-qualified first."""
    async with raw_server(scripted_smtp(b"554 5.3.2 Go away\r\n")) as server:
        attempt = await run(context, {"554@greeting": "client_error"}, port=server.port)
    assert attempt.outcome is Outcome.CLIENT_ERROR


@pytest.mark.parametrize(
    ("tls", "outcome", "phase", "detail"),
    [
        pytest.param(
            "starttls",
            Outcome.TLS_ERROR,
            "starttls",
            "certificate rejected in starttls: SSLCertVerificationError",
            id="starttls-untrusted",
        ),
        pytest.param(
            "implicit",
            Outcome.TLS_ERROR,
            "connect",
            "certificate rejected in connect: SMTPConnectError",
            id="implicit-untrusted",
        ),
    ],
)
async def test_untrusted_certificate(
    *,
    context: ProbeContext,
    smtpd: int,
    smtpd_implicit: int,
    tls: str,
    outcome: Outcome,
    phase: str,
    detail: str,
) -> None:
    """Certificates are verified by default: one from an unknown CA is a TLS error."""
    port = smtpd if tls == "starttls" else smtpd_implicit
    attempt = await run(context, port=port, tls=tls)
    assert (attempt.outcome, attempt.phase) == (outcome, phase)
    assert attempt.detail.startswith(detail)


async def test_refused(context: ProbeContext) -> None:
    """A closed port is a connection error in the connect phase."""
    attempt = await run(context, port=free_port())
    assert (attempt.outcome, attempt.phase) == (Outcome.CONNECTION_ERROR, "connect")
    assert attempt.detail.startswith("connect failed in connect: SMTPConnectError")


async def test_unresolvable_name(context: ProbeContext) -> None:
    """A name under the reserved .invalid TLD is a DNS error."""
    attempt = await run(context, host="no-such-host.invalid", port=25)
    assert (attempt.outcome, attempt.phase) == (Outcome.DNS_ERROR, "connect")
    assert attempt.detail.startswith("name did not resolve in connect: SMTPConnectError")


async def test_local_exhaustion_is_probe_error(context: ProbeContext) -> None:
    """Out of file descriptors, the prober reports its own fault, never the target's."""
    port = free_port()
    with no_free_descriptors():
        attempt = await run(context, port=port)
    assert (attempt.outcome, attempt.phase) == (Outcome.PROBE_ERROR, "connect")
    assert attempt.detail.startswith("local resources exhausted in connect")


@pytest.mark.parametrize(
    ("code", "message", "phase", "outcome"),
    [
        # The design's table, written out: the test must not read the table it checks.
        pytest.param(421, "x", "mail", Outcome.SERVER_ERROR, id="default-421"),
        pytest.param(451, "x", "mail", Outcome.SERVER_ERROR, id="default-451"),
        pytest.param(452, "x", "mail", Outcome.SERVER_ERROR, id="default-452"),
        pytest.param(454, "x", "mail", Outcome.SERVER_ERROR, id="default-454"),
        pytest.param(554, "x", "greeting", Outcome.SERVER_ERROR, id="default-554@greeting"),
        pytest.param(450, "x", "mail", Outcome.CLIENT_ERROR, id="default-450"),
        pytest.param(530, "x", "mail", Outcome.CLIENT_ERROR, id="default-530"),
        pytest.param(535, "x", "mail", Outcome.CLIENT_ERROR, id="default-535"),
        pytest.param(554, "5.7.1 blocked", "rcpt", Outcome.CLIENT_ERROR, id="554-after-rcpt"),
        pytest.param(421, "4.7.0 slow down", "mail", Outcome.RATE_LIMITED, id="421-4.7-rate"),
        pytest.param(450, "4.7.1 greylisted", "rcpt", Outcome.RATE_LIMITED, id="450-4.7-rate"),
        pytest.param(471, "4.1.0 other", "mail", Outcome.SERVER_ERROR, id="other-4xx"),
        pytest.param(553, "5.1.3 bad address", "rcpt", Outcome.CLIENT_ERROR, id="other-5xx"),
        pytest.param(354, "go on", "mail", Outcome.SERVER_ERROR, id="unexpected-3xx"),
    ],
)
def test_reply_mapping(code: int, message: str, phase: str, outcome: Outcome) -> None:
    """Each row of the default reply mapping and each fallback gives its outcome."""
    assert reply_outcome(code, message, phase) is outcome


@pytest.mark.parametrize(
    ("overrides", "code", "phase", "outcome"),
    [
        pytest.param({"550": "server_error"}, 550, "rcpt", Outcome.SERVER_ERROR, id="code"),
        pytest.param(
            {"451": "client_error", "451@mail": "timeout"},
            451,
            "mail",
            Outcome.TIMEOUT,
            id="phase-first",
        ),
        pytest.param({"451@rcpt": "ok"}, 451, "mail", Outcome.SERVER_ERROR, id="other-phase"),
    ],
)
def test_reply_overrides(
    overrides: dict[str, OutcomeName], code: int, phase: str, outcome: Outcome
) -> None:
    """Service overrides win over the defaults, the phase-qualified key first."""
    assert reply_outcome(code, "4.3.0 x", phase, overrides) is outcome


def test_every_table_row_has_a_case() -> None:
    """The exception table is the one drawn in the module docstring, row for row."""
    import probe.smtp

    assert table_matches_docstring(SMTP_ERRORS, probe.smtp.__doc__)
