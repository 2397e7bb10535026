"""Shared fixtures of the probe tests: a probe context on the system clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from probe.base import ProbeContext
from probe.clock import SystemClock
from tests.probe.probe_tables import SECRET_ENV


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    """A probe context on the real clock, closed after the test."""
    async with ProbeContext(clock=SystemClock(), prober="test-1", secrets={SECRET_ENV}) as ctx:
        yield ctx
