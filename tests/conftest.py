"""Project-wide fixtures: real external tools (required under CI), each incident store, a CA."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from incidents.memory_store import MemoryStore
from incidents.sqlite_store import SqliteStore
from incidents.store import IncidentStore
from tests.support.ci_tools import require_tool as _require


@pytest.fixture
def require_tool() -> Callable[[str], str]:
    """Return the path of an external tool; skip without it, except under CI where it fails."""
    return _require


@pytest.fixture(params=[pytest.param("memory", id="memory"), pytest.param("sqlite", id="sqlite")])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IncidentStore]:
    """Each store implementation, fresh: the same scenarios run against both."""
    made: IncidentStore = (
        MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
    )
    yield made
    made.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A private certificate authority for the TLS cases (servers' certificates, trust)."""
    return trustme.CA()
