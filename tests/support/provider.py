"""The simulated provider on a background loop, and a daemon config that probes it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

from slawatch.simulator import SimulatedProvider
from tests.support.daemon import Daemon, write_config
from tests.support.loop_thread import LoopThread
from tests.support.servers import free_port

# The daemon's API token, given through the environment as the config's ${E2E_TOKEN}.
TOKEN = "e2e-secret-token-4711"
TOKEN_ENV = {"E2E_TOKEN": TOKEN}


@contextlib.asynccontextmanager
async def running(provider: SimulatedProvider) -> AsyncIterator[SimulatedProvider]:
    """Start ``provider`` on free ports; close it on exit."""
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


@contextlib.contextmanager
def provider_thread() -> Iterator[SimulatedProvider]:
    """A SimulatedProvider on its own loop in a thread, switched (``healthy``) from the test."""
    with LoopThread() as thread:
        yield thread.enter(running(SimulatedProvider()))


def daemon_config(
    provider: SimulatedProvider, port: int, *, extra_api: bool = False, **classifier: Any
) -> dict[str, Any]:
    """A config with one production service probing the simulated API and SMTP port."""
    thresholds = {"critical_after": "20s", "recover_after": "5s", **classifier}
    api = [{"name": "account", "url": provider.api_url, "timeout": "1s"}]
    if extra_api:
        api.append({"name": "account-2", "url": provider.api_url, "timeout": "1s"})
    return {
        "prober": {"id": "e2e-1"},
        "server": {"listen": f"127.0.0.1:{port}", "token": "${E2E_TOKEN}"},
        "storage": {"path": "store.db"},
        "services": [
            {
                "name": "mail",
                "sla": {"policy": "megaport", "calendar": "uk"},
                "classifier": thresholds,
                "api": api,
                "smtp": [
                    {
                        "name": "inject",
                        "host": provider.host,
                        "port": provider.smtp_port,
                        "tls": "none",
                        "timeout": "1s",
                    }
                ],
            }
        ],
    }


def provider_daemon(
    folder: Path,
    provider: SimulatedProvider,
    *,
    extra: Mapping[str, Any] | None = None,
    **classifier: Any,
) -> Daemon:
    """`slawatch run` (not started yet) in ``folder`` on a free port, probing ``provider``.

    The config is :func:`daemon_config` with ``classifier`` thresholds; ``extra`` adds or
    replaces its top-level keys (``storage``, ``notify``).
    """
    port = free_port()
    write_config(folder, {**daemon_config(provider, port, **classifier), **(extra or {})})
    return Daemon(folder, port, env=TOKEN_ENV)
