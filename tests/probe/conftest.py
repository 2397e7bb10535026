"""Shared fixtures of the probe tests: a probe context on the system clock, a CA file, two loops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest
import trustme

from probe.base import ProbeContext
from probe.clock import SystemClock
from tests.probe.probe_helpers import SECRET_ENV


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    """A probe context on the real clock, closed after the test."""
    async with ProbeContext(clock=SystemClock(), prober="test-1", secrets={SECRET_ENV}) as ctx:
        yield ctx


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    """The CA certificate as a PEM file, as a user would configure it."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]] | None:
    """asyncio's loop; the fresh HTTP client's tests on uvloop (`slawatch run`'s) as well."""
    if item.path.name != "test_fresh.py":
        return {"asyncio": asyncio.new_event_loop}
    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
