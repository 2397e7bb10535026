"""The SMTP probe (aiosmtplib): one dialogue per attempt, replies and failures mapped to outcomes.

Modes: ``connect`` (greeting, QUIT), ``ehlo`` (+ EHLO, and STARTTLS when configured),
``envelope`` (+ AUTH when credentials are given, MAIL FROM, RCPT TO, RSET: no mail is
sent; the default) and ``data`` (+ DATA with a small message to the configured sink: a
low-rate canary). QUIT is a courtesy: once every step was accepted, a QUIT the server
fumbles does not fail the attempt. Each command waits at most until the attempt's deadline.

Exception table (first match wins, subclasses first; one test case per row)::

    exception                     condition         outcome           detail
    ----------------------------  ----------------  ----------------  ---------------------------
    StartTlsNotOffered                              tls_error         STARTTLS not offered
    AuthNotOffered                                  client_error      AUTH not offered
    SMTPResponseException                           (reply mapping)   <phase> <code> <text>
    SMTPConnectTimeoutError                         timeout           no reply in time
    SMTPTimeoutError                                timeout           no reply in time
    SMTPConnectError              gaierror cause    dns_error         name did not resolve
    SMTPConnectError              cert error cause  tls_error         certificate rejected
    SMTPConnectError              SSLError cause    tls_error         TLS handshake failed
    SMTPConnectError              EMFILE... cause   probe_error       local resources exhausted
    SMTPConnectError                                connection_error  connect failed
    SMTPServerDisconnected                          connection_error  disconnected mid-dialogue
    ssl.SSLCertVerificationError                    tls_error         certificate rejected
    ssl.SSLError                                    tls_error         TLS handshake failed
    Exception                                       probe_error       bug in the probe

Reply mapping (``DEFAULT_SMTP_REPLIES``, overridden per service by ``smtp_replies``; keys
are a code or ``code@phase``), looked up in this order: the service's ``code@phase``, its
``code``; a 421/450/451/452 with an enhanced status 4.7.x is ``rate_limited``; the
default ``code@phase``, ``code``; then any other 4xx is ``server_error`` (transient) and
any 5xx ``client_error`` (the request was refused). 530 and 535 are flagged as a probe
misconfiguration in the detail.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import socket
import ssl
from collections.abc import Coroutine, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiosmtplib

from config.model import OutcomeName, ServiceConfig, SmtpTarget
from probe.attempt import Attempt, Channel, Outcome
from probe.base import (
    ErrorRow,
    ProbeContext,
    caused_by,
    exception_text,
    local_exhaustion,
    match_error,
)


class StartTlsNotOffered(aiosmtplib.SMTPException):
    """STARTTLS is configured but the server's EHLO does not offer it."""


class AuthNotOffered(aiosmtplib.SMTPException):
    """Credentials are configured but the server's EHLO offers no AUTH."""


# Outcome mapping of exceptions, in order: see the module docstring.
SMTP_ERRORS: tuple[ErrorRow, ...] = (
    ErrorRow(StartTlsNotOffered, Outcome.TLS_ERROR, "STARTTLS not offered"),
    ErrorRow(AuthNotOffered, Outcome.CLIENT_ERROR, "AUTH not offered"),
    ErrorRow(aiosmtplib.SMTPResponseException, None, "reply"),
    ErrorRow(aiosmtplib.SMTPConnectTimeoutError, Outcome.TIMEOUT, "no reply in time"),
    ErrorRow(aiosmtplib.SMTPTimeoutError, Outcome.TIMEOUT, "no reply in time"),
    ErrorRow(
        aiosmtplib.SMTPConnectError,
        Outcome.DNS_ERROR,
        "name did not resolve",
        when=caused_by(socket.gaierror),
    ),
    ErrorRow(
        aiosmtplib.SMTPConnectError,
        Outcome.TLS_ERROR,
        "certificate rejected",
        when=caused_by(ssl.SSLCertVerificationError),
    ),
    ErrorRow(
        aiosmtplib.SMTPConnectError,
        Outcome.TLS_ERROR,
        "TLS handshake failed",
        when=caused_by(ssl.SSLError),
    ),
    ErrorRow(
        aiosmtplib.SMTPConnectError,
        Outcome.PROBE_ERROR,
        "local resources exhausted",
        when=local_exhaustion,
    ),
    ErrorRow(aiosmtplib.SMTPConnectError, Outcome.CONNECTION_ERROR, "connect failed"),
    ErrorRow(
        aiosmtplib.SMTPServerDisconnected, Outcome.CONNECTION_ERROR, "disconnected mid-dialogue"
    ),
    ErrorRow(ssl.SSLCertVerificationError, Outcome.TLS_ERROR, "certificate rejected"),
    ErrorRow(ssl.SSLError, Outcome.TLS_ERROR, "TLS handshake failed"),
    ErrorRow(Exception, Outcome.PROBE_ERROR, "bug in the probe"),
)

# DESIGN.md §3: transient provider trouble counts, refusals of the request do not.
DEFAULT_SMTP_REPLIES: Mapping[str, OutcomeName] = {
    "421": "server_error",
    "451": "server_error",
    "452": "server_error",
    "454": "server_error",
    "554@greeting": "server_error",
    "450": "client_error",
    "530": "client_error",
    "535": "client_error",
}
# Replies that mean the probe's own credentials or setup are wrong, not the provider.
MISCONFIGURED = frozenset({530, 535})
# Appended to the detail of such replies (for people; programs read Attempt.misconfigured).
MISCONFIGURED_MARK = "[probe misconfigured: check credentials]"
# Codes that, with an enhanced status 4.7.x, are the provider throttling us.
_RATE_LIMIT_CODES = frozenset({421, 450, 451, 452})


def reply_outcome(
    code: int,
    message: str,
    phase: str,
    overrides: Mapping[str, OutcomeName] | None = None,
) -> Outcome:
    """The outcome of an unexpected SMTP reply ``code`` received in ``phase``."""
    overrides = overrides or {}
    qualified = f"{code}@{phase}"
    for table, key in ((overrides, qualified), (overrides, str(code))):
        if key in table:
            return Outcome(table[key])
    if code in _RATE_LIMIT_CODES and message.lstrip().startswith("4.7."):
        return Outcome.RATE_LIMITED
    for key in (qualified, str(code)):
        if key in DEFAULT_SMTP_REPLIES:
            return Outcome(DEFAULT_SMTP_REPLIES[key])
    if 400 <= code <= 499:
        return Outcome.SERVER_ERROR
    if 500 <= code <= 599:
        return Outcome.CLIENT_ERROR
    # A 2xx/3xx where another reply was due: the server broke the protocol.
    return Outcome.SERVER_ERROR


_STEPS = {
    "connect": ("greeting",),
    "ehlo": ("greeting", "ehlo"),
    "envelope": ("greeting", "ehlo", "auth", "mail", "rcpt", "rset"),
    "data": ("greeting", "ehlo", "auth", "mail", "rcpt", "data"),
}


@dataclass(slots=True)
class _Dialogue:
    """How far one dialogue got, the last reply, and the seconds each phase took."""

    mono: float
    phase: str = "connect"
    last: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    # The live transport, kept because QUIT makes aiosmtplib forget it mid TLS shutdown.
    transport: asyncio.BaseTransport | None = None


class SmtpProbe:
    """Probes one SMTP injection point with a configurable depth of dialogue."""

    def __init__(
        self,
        target: SmtpTarget,
        *,
        service: str,
        context: ProbeContext,
        replies: Mapping[str, OutcomeName] | None = None,
    ) -> None:
        self.service = service
        self.channel = Channel.SMTP
        self.target = target.name
        self.timeout = target.timeout
        self.rate = target.rate
        self.max_in_flight = target.max_in_flight
        self._config = target
        self._context = context
        self._replies = dict(replies or {})
        self.fingerprint: Hashable = (target, tuple(sorted(self._replies.items())))
        # Explicit, so aiosmtplib never blocks on getfqdn() and the server sees a stable name.
        self._local_hostname = target.local_hostname or socket.gethostname() or "localhost"
        self._tls = context.tls_context(target.tls_options) if target.tls != "none" else None
        self._password = target.password.get_secret_value() if target.password else None

    @classmethod
    def from_config(
        cls, target: SmtpTarget, *, service: ServiceConfig | None, context: ProbeContext
    ) -> SmtpProbe:
        """The probe of an ``smtp`` target of ``service``, with its reply-code overrides."""
        return cls(
            target,
            service=service.name if service else "",
            context=context,
            replies=service.smtp_replies if service else None,
        )

    async def attempt(self, *, deadline: float) -> Attempt:
        """One dialogue, each command bounded by ``deadline``."""
        clock = self._context.clock
        started_at = clock.time()
        dialogue = _Dialogue(mono=clock.monotonic())
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            local_hostname=self._local_hostname,
            use_tls=config.tls == "implicit",
            start_tls=False,  # STARTTLS is a step of ours, timed and mapped on its own
            tls_context=self._tls,
            timeout=None,
        )
        try:
            await self._converse(client, dialogue, deadline, started_at)
            outcome, phase, detail, misconfigured = Outcome.OK, "done", dialogue.last, False
        except Exception as exc:  # noqa: BLE001  (every failure becomes an outcome)
            outcome, phase, detail, misconfigured = self._failure(exc, dialogue)
        finally:
            transports = {client.transport, dialogue.transport}
            client.close()
            for transport in transports:
                if isinstance(transport, asyncio.Transport):
                    # A TLS close() waits for the peer's close_notify; a probe has nothing
                    # left to say, so drop the socket now rather than leave it lingering.
                    transport.abort()
        dialogue.timings["total"] = clock.monotonic() - dialogue.mono
        return self._context.finish(
            service=self.service,
            channel=Channel.SMTP,
            target=self.target,
            started_at=started_at,
            started_mono=dialogue.mono,
            outcome=outcome,
            phase=phase,
            detail=detail,
            timings=dialogue.timings,
            misconfigured=misconfigured,
        )

    def _failure(self, exc: Exception, dialogue: _Dialogue) -> tuple[Outcome, str, str, bool]:
        """Outcome, phase, detail, and whether the probe's own configuration is at fault."""
        row = match_error(SMTP_ERRORS, exc)
        phase = dialogue.phase
        # connect() also reads the greeting: a reply, a timeout or a close after the TCP
        # (and implicit TLS) handshake belongs to the greeting phase. aiosmtplib raises
        # SMTPConnectTimeoutError for both an unanswered SYN and a silent server; only the
        # latter is raised from the reply reader's own error, so look at the cause.
        if phase == "connect" and (
            isinstance(exc, aiosmtplib.SMTPResponseException)
            or (exc.__cause__ is not None and _after_handshake(exc.__cause__))
        ):
            phase = "greeting"
        if isinstance(exc, aiosmtplib.SMTPResponseException) and row.outcome is None:
            outcome = reply_outcome(exc.code, exc.message, phase, self._replies)
            detail = f"{phase} {exc.code} {exc.message}"
            misconfigured = exc.code in MISCONFIGURED
            if misconfigured:
                detail += f" {MISCONFIGURED_MARK}"
            return outcome, phase, detail, misconfigured
        if row.outcome is Outcome.TIMEOUT:
            return row.outcome, phase, f"{row.label} in {phase} ({self.timeout:g}s)", False
        return (
            row.outcome or Outcome.PROBE_ERROR,
            phase,
            f"{row.label} in {phase}: " + (exception_text(exc)),
            False,
        )

    async def _converse(
        self, client: aiosmtplib.SMTP, dialogue: _Dialogue, deadline: float, started_at: float
    ) -> None:
        """Run the configured steps; any refusal or failure raises and ends the dialogue."""
        clock = self._context.clock
        config = self._config

        def left() -> float:
            # Each command may wait until the attempt's deadline, and never a zero timeout.
            return max(0.001, deadline - clock.monotonic())

        async def step(
            phase: str, command: Coroutine[object, object, aiosmtplib.SMTPResponse]
        ) -> None:
            dialogue.phase = phase
            began = clock.monotonic()
            response = await command
            dialogue.transport = client.transport or dialogue.transport
            took = clock.monotonic() - began
            dialogue.timings[phase] = dialogue.timings.get(phase, 0.0) + took
            dialogue.last = f"{phase} {response.code} {response.message}"

        for name in _STEPS[config.mode]:
            if name == "greeting":
                # "connect" until the server greets: connect() covers TCP, TLS and greeting.
                await step("connect", client.connect(timeout=left()))
            elif name == "ehlo":
                await step("ehlo", client.ehlo(timeout=left()))
                if config.tls == "starttls":
                    dialogue.phase = "starttls"
                    if not client.supports_extension("starttls"):
                        raise StartTlsNotOffered("the server's EHLO does not offer STARTTLS")
                    upgrade = client.starttls(
                        tls_context=self._tls,
                        server_hostname=config.tls_options.server_name,
                        timeout=left(),
                    )
                    await step("starttls", upgrade)
                    await step("ehlo", client.ehlo(timeout=left()))
            elif name == "auth":
                if config.username is None or self._password is None:
                    continue
                dialogue.phase = "auth"
                if not client.supports_extension("auth"):
                    raise AuthNotOffered("the server's EHLO offers no AUTH")
                await step("auth", client.login(config.username, self._password, timeout=left()))
            else:
                commands = {
                    "mail": lambda: client.mail(config.mail_from, timeout=left()),
                    "rcpt": lambda: client.rcpt(config.rcpt_to, timeout=left()),
                    "rset": lambda: client.rset(timeout=left()),
                    "data": lambda: client.data(self._message(started_at), timeout=left()),
                }
                await step(name, commands[name]())
        dialogue.phase = "quit"
        # Every configured step was accepted; a fumbled goodbye is not unavailability.
        with contextlib.suppress(aiosmtplib.SMTPException):
            await client.quit(timeout=min(left(), 1.0))

    def _message(self, started_at: float) -> str:
        """A small, clearly labelled canary message for ``mode: data``."""
        config = self._config
        stamp = datetime.fromtimestamp(started_at, UTC)
        return (
            f"From: <{config.mail_from}>\r\n"
            f"To: <{config.rcpt_to}>\r\n"
            f"Subject: slawatch canary {self._context.prober} {stamp:%Y-%m-%dT%H:%M:%SZ}\r\n"
            f"Date: {email.utils.format_datetime(stamp)}\r\n"
            f"Message-ID: {email.utils.make_msgid('slawatch', domain=self._local_hostname)}\r\n"
            "Auto-Submitted: auto-generated\r\n"
            "\r\n"
            "slawatch availability canary: safe to discard.\r\n"
        )


# True when connect() failed reading the greeting, i.e. the TCP handshake completed.
_after_handshake = caused_by(aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected)
