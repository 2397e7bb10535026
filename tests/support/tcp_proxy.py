"""A loopback TCP proxy that can partition its clients: sockets stay open, bytes are dropped.

Between a fleet member and PostgreSQL. While partitioned, every byte either way is read
and thrown away, so the member's link looks alive (the proxy's kernel acknowledges it)
yet nothing arrives: a half-open partition, the worst kind. Healing closes the
connections that lost bytes (their protocol state is gone) and lets new ones through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tests.support.servers import HOST


@dataclass
class _Link:
    writers: tuple[asyncio.StreamWriter, asyncio.StreamWriter]
    # Bytes were dropped on this link: it cannot carry the protocol any more.
    broken: bool = False


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; :meth:`partition` and :meth:`heal` it."""

    upstream: int
    port: int = 0
    partitioned: bool = False
    dropped: int = 0
    _links: list[_Link] = field(default_factory=list)

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, out: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if self.partitioned or link.broken:
                    link.broken = True
                    self.dropped += len(data)
                    continue
                out.write(data)
                await out.drain()
        out.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client: connect upstream and pump both ways."""
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream)
        except OSError:
            writer.close()
            return
        link = _Link((writer, up_writer), broken=self.partitioned)
        self._links.append(link)
        await asyncio.gather(
            self._pump(link, reader, up_writer),
            self._pump(link, up_reader, writer),
            return_exceptions=True,
        )
        self._links.remove(link)

    async def set_partitioned(self, partitioned: bool) -> None:
        """Start dropping every byte (True), or heal: close the broken links, pass again."""
        self.partitioned = partitioned
        if not partitioned:
            for link in list(self._links):
                if link.broken:
                    for writer in link.writers:
                        writer.close()


@contextlib.asynccontextmanager
async def tcp_proxy(upstream: int) -> AsyncIterator[TcpProxy]:
    """A proxy to ``upstream`` on a free loopback port, for the duration of the block."""
    proxy = TcpProxy(upstream)
    server = await asyncio.start_server(proxy.handle, HOST, 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        for link in list(proxy._links):
            for writer in link.writers:
                writer.close()
        await server.wait_closed()
