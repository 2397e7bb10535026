"""The probe interface, the resources probes share, and the ordered exception-table helper."""

from __future__ import annotations

import errno
import ssl
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

import aiohttp

from config.model import TlsOptions
from config.secrets import Redactor
from probe.attempt import Attempt, Channel, Outcome
from probe.clock import Clock

# The service name stamped on control attempts (the prober's own network check).
CONTROL_SERVICE = "_control"


class Probe(Protocol):
    """One configured target: each call makes one attempt and never raises for target failures."""

    service: str
    channel: Channel
    target: str
    # Equal for two probes that would make the same attempts (config reload keeps those).
    fingerprint: Hashable
    # Seconds an attempt may take; the scheduler turns it into each attempt's deadline.
    timeout: float
    # Attempts a second, and the cap on overlapping attempts (None: derived from timeout*rate).
    rate: float
    max_in_flight: int | None

    async def attempt(self, *, deadline: float) -> Attempt:
        """Make one attempt that finishes by ``deadline`` (on the clock's monotonic scale)."""


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """One row of a protocol's exception table: the first row whose type matches wins."""

    kind: type[BaseException]
    # None: the outcome is the protocol's reply-code mapping (SMTP replies are configuration).
    outcome: Outcome | None
    # A few words for the attempt detail, e.g. "connection refused".
    label: str
    # A further condition on the exception (its cause, its errno), when the type is not enough.
    when: Callable[[BaseException], bool] | None = None


_UNMATCHED = ErrorRow(Exception, Outcome.PROBE_ERROR, "bug in the probe")


def match_error(table: Sequence[ErrorRow], exc: BaseException) -> ErrorRow:
    """The first row of ``table`` that ``exc`` is an instance of (and whose condition holds)."""
    for row in table:
        if isinstance(exc, row.kind) and (row.when is None or row.when(exc)):
            return row
    # Tables end with an Exception row; this only guards a table that forgot it.
    return _UNMATCHED


def caused_by(*kinds: type[BaseException]) -> Callable[[BaseException], bool]:
    """A row condition: the exception, or one it was raised from, is one of ``kinds``."""

    def check(exc: BaseException) -> bool:
        seen: BaseException | None = exc
        for _ in range(8):  # cause chains are short; the bound guards against cycles
            if seen is None:
                return False
            if isinstance(seen, kinds):
                return True
            seen = seen.__cause__ or seen.__context__
        return False

    return check


# errno values that mean this machine ran out of something (sockets, ports, buffers).
_LOCAL_EXHAUSTION = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL}
)


def local_exhaustion(exc: BaseException) -> bool:
    """A row condition: an OSError in the cause chain says the prober ran out of resources."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in _LOCAL_EXHAUSTION:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def exception_text(exc: BaseException) -> str:
    """``ClassName: message`` (or the class name alone) for an attempt detail."""
    message = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


class ProbeContext:
    """What every probe of one prober shares: clock, prober id, redaction, TLS contexts, HTTP pools.

    Open it with ``async with`` (HTTP sessions need a running loop) and close it once, after
    the scheduler has stopped.
    """

    def __init__(self, *, clock: Clock, prober: str, secrets: Iterable[str] = ()) -> None:
        self.clock = clock
        self.prober = prober
        self.redact = Redactor(secrets)
        # Building an SSLContext loads the CA bundle (milliseconds): build one per option set.
        self._tls: dict[TlsOptions, ssl.SSLContext] = {}
        # The aiohttp session of ``reuse`` targets, created on first use by probe/http.py,
        # so their keep-alive pool is shared (``fresh`` targets need none).
        self.http_session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def tls_context(self, options: TlsOptions) -> ssl.SSLContext:
        """The shared client TLS context for ``options`` (verification on unless switched off)."""
        context = self._tls.get(options)
        if context is None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=options.ca_file)
            if not options.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if options.cert_file is not None:
                context.load_cert_chain(options.cert_file, keyfile=options.key_file)
            self._tls[options] = context
        return context

    async def close(self) -> None:
        """Close the shared HTTP session (and its pooled connections)."""
        session, self.http_session = self.http_session, None
        if session is not None:
            await session.close()

    def finish(
        self,
        *,
        service: str,
        channel: Channel,
        target: str,
        started_at: float,
        started_mono: float,
        outcome: Outcome,
        phase: str,
        detail: str,
        timings: dict[str, float] | None = None,
        misconfigured: bool = False,
    ) -> Attempt:
        """Build the Attempt of a finished try: duration from the clock, detail redacted."""
        return Attempt(
            service=service,
            channel=channel,
            target=target,
            prober=self.prober,
            started_at=started_at,
            duration_s=max(0.0, self.clock.monotonic() - started_mono),
            outcome=outcome,
            phase=phase,
            detail=self.redact.detail(detail),
            misconfigured=misconfigured,
            timings=timings or {},
        )
