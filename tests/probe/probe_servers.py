"""Small loopback servers for the probe tests: raw TCP handlers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from probe.base import ErrorRow

# A secret the test context redacts, as if it came from the environment.
SECRET_ENV = "s3cr3t-env"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    """A raw TCP server on 127.0.0.1 that counts the connections it accepted."""

    port: int
    connections: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    """Serve ``handler`` on a free loopback port; close every connection on exit."""
    info = RawServer(port=0)
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info.connections += 1
        writers.append(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    info.port = server.sockets[0].getsockname()[1]
    try:
        yield info
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def free_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


def docstring_table(doc: str | None) -> list[tuple[str, ...]]:
    """The exception table drawn in a probe module's docstring: one tuple of cells a row."""
    lines = (doc or "").splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith("---"))
    starts = [m.start() for m in re.finditer(r"-+", lines[rule])]
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        ends = [*starts[1:], len(line)]
        rows.append(tuple(line[a:b].strip() for a, b in zip(starts, ends, strict=True)))
    return rows


def table_matches_docstring(table: Sequence[ErrorRow], doc: str | None) -> bool:
    """Each row's exception class and outcome are the docstring's, in the same order.

    Rows whose condition is a phase are decided after the table lookup and are skipped.
    """
    drawn = [row for row in docstring_table(doc) if not row[1].startswith("phase")]
    actual = [
        (row.kind.__name__, row.outcome.value if row.outcome else "(reply mapping)")
        for row in table
    ]
    return actual == [(row[0].split()[0].split(".")[-1], row[2]) for row in drawn]
