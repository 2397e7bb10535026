"""The control probe: a TCP connect (or HTTP GET) of the prober's own network, once a second.

Its attempts carry channel ``control`` and service ``_control``; in a second where none
of them is ``ok``, the classifier sets this prober's attempts aside (DESIGN.md §4).
An HTTP control target is an HTTP probe that takes any complete response as ``ok``.

Exception table of the TCP connect (first match wins, subclasses first)::

    exception        condition   outcome           detail
    ---------------  ----------  ----------------  -------------------------
    TimeoutError                 timeout           no connection in time
    socket.gaierror              dns_error         name did not resolve
    OSError          EMFILE...   probe_error       local resources exhausted
    OSError                      connection_error  connect failed
    Exception                    probe_error       bug in the probe
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Hashable

from config.model import ControlTarget, HttpTarget, ServiceConfig
from probe.attempt import Attempt, Channel, Outcome
from probe.base import (
    CONTROL_SERVICE,
    ErrorRow,
    ProbeContext,
    exception_text,
    local_exhaustion,
    match_error,
)
from probe.http import HttpProbe

CONTROL_ERRORS: tuple[ErrorRow, ...] = (
    ErrorRow(TimeoutError, Outcome.TIMEOUT, "no connection in time"),
    ErrorRow(socket.gaierror, Outcome.DNS_ERROR, "name did not resolve"),
    ErrorRow(OSError, Outcome.PROBE_ERROR, "local resources exhausted", when=local_exhaustion),
    ErrorRow(OSError, Outcome.CONNECTION_ERROR, "connect failed"),
    ErrorRow(Exception, Outcome.PROBE_ERROR, "bug in the probe"),
)


def split_host_port(value: str) -> tuple[str, int]:
    """``host:port`` (IPv6 in brackets) as a pair; the config has validated the form."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class ControlProbe:
    """Checks that this prober can reach a well-known address at all."""

    channel = Channel.CONTROL
    service = CONTROL_SERVICE
    rate = 1.0
    max_in_flight: int | None = None

    def __init__(self, target: ControlTarget, *, context: ProbeContext) -> None:
        self.target = target.name
        self.timeout = target.timeout
        self.fingerprint: Hashable = target
        self._context = context
        self._address = split_host_port(target.tcp) if target.tcp is not None else None
        self._http = (
            HttpProbe(
                HttpTarget(
                    name=target.name,
                    url=target.http,
                    expect_status=list(range(100, 600)),
                    timeout=target.timeout,
                ),
                service=CONTROL_SERVICE,
                context=context,
                channel=Channel.CONTROL,
            )
            if target.http is not None
            else None
        )

    @classmethod
    def from_config(
        cls, target: ControlTarget, *, service: ServiceConfig | None, context: ProbeContext
    ) -> ControlProbe:
        """The control probe of a ``control`` entry (it belongs to no service)."""
        return cls(target, context=context)

    async def attempt(self, *, deadline: float) -> Attempt:
        """One TCP connect (or HTTP GET) finished by ``deadline``."""
        if self._http is not None:
            return await self._http.attempt(deadline=deadline)
        clock = self._context.clock
        started_at = clock.time()
        started = clock.monotonic()
        phase = "connect"
        try:
            host, port = self._address or ("", 0)
            async with asyncio.timeout(max(0.0, deadline - started)):
                transport, _ = await asyncio.get_running_loop().create_connection(
                    asyncio.Protocol, host, port
                )
            transport.close()
            outcome, phase, detail = Outcome.OK, "done", "connected"
        except Exception as exc:  # noqa: BLE001  (every failure becomes an outcome)
            row = match_error(CONTROL_ERRORS, exc)
            outcome = row.outcome or Outcome.PROBE_ERROR
            detail = f"{row.label}: {exception_text(exc)}"
            if row.kind is TimeoutError:
                detail = f"{row.label} ({self.timeout:g}s)"
        return self._context.finish(
            service=CONTROL_SERVICE,
            channel=Channel.CONTROL,
            target=self.target,
            started_at=started_at,
            started_mono=started,
            outcome=outcome,
            phase=phase,
            detail=detail,
        )
