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
from tests.support.postgres import PgCluster, pg_cluster


@pytest.fixture
def require_tool() -> Callable[[str], str]:
    """Return the path of an external tool; skip without it, except under CI where it fails."""
    return _require


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgCluster]:
    """A private PostgreSQL cluster for the session (each test takes a fresh database)."""
    with pg_cluster() as cluster:
        yield cluster


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres"),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IncidentStore]:
    """Each store implementation, fresh: the same scenarios run against all three."""
    made: IncidentStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SqliteStore(tmp_path / "s.db")
    else:
        from incidents.pg_store import PgStore

        made = PgStore(request.getfixturevalue("postgres").new_database())
    yield made
    made.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A private certificate authority for the TLS cases (servers' certificates, trust)."""
    return trustme.CA()
