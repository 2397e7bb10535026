"""The simulated provider's faults, as the real HTTP and SMTP probes see them."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from probe.attempt import Attempt, Outcome
from slawatch.simulator import FAULTS, SimulatedProvider
from tests.faults.fault_helpers import observe, of_service
from tests.support.configs import config_from_yaml
from tests.support.provider import running

SECONDS = 2


async def _observe_faults() -> list[Attempt]:
    """One down provider per fault, both channels probed for SECONDS."""
    async with AsyncExitStack() as stack:
        lines = ["prober: {id: loop-1}", "services:"]
        for fault in FAULTS:
            provider = await stack.enter_async_context(running(SimulatedProvider()))
            provider.fault = fault
            provider.healthy = False
            lines += [
                f"  - name: {fault}",
                f"    api: [{{name: call, url: '{provider.api_url}', timeout: 1s}}]",
                f"    smtp: [{{name: inject, host: 127.0.0.1, port: {provider.smtp_port},"
                " tls: none, timeout: 1s}]",
            ]
        return await observe(config_from_yaml("\n".join(lines) + "\n"), SECONDS)


@pytest.fixture(scope="module")
def observed() -> list[Attempt]:
    """Every fault's real attempts, probed concurrently."""
    return asyncio.run(_observe_faults())


@pytest.mark.parametrize(
    ("fault", "api", "smtp"),
    [
        pytest.param("server_error", Outcome.SERVER_ERROR, Outcome.SERVER_ERROR, id="5xx-421"),
        pytest.param("timeout", Outcome.TIMEOUT, Outcome.TIMEOUT, id="silence"),
        pytest.param("rate_limited", Outcome.RATE_LIMITED, Outcome.RATE_LIMITED, id="429-4.7.0"),
    ],
)
def test_each_fault_is_the_outcome_it_names(
    observed: list[Attempt], fault: str, api: Outcome, smtp: Outcome
) -> None:
    """A down provider's fault is what every attempt of each channel observes."""
    attempts = of_service(observed, fault)
    assert len(attempts) == 2 * SECONDS
    assert {(a.channel.value, a.outcome) for a in attempts} == {("api", api), ("smtp", smtp)}
