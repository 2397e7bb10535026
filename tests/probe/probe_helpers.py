"""Probe-test pieces: the secret the context redacts, no free descriptors, the docstring tables."""

from __future__ import annotations

import contextlib
import re
import resource
import socket
from collections.abc import Iterator, Sequence

from probe.base import ErrorRow

# A secret the test context redacts, as if it came from the environment.
SECRET_ENV = "s3cr3t-env"


@contextlib.contextmanager
def no_free_descriptors() -> Iterator[None]:
    """Cap the descriptor limit at the lowest free one: the next socket the probe opens fails."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with socket.socket() as spare:
        lowest_free = spare.fileno()
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


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
