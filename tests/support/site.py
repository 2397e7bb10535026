"""An in-process daemon on a manual clock with a test client of its web app (one SQLite store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from incidents.sqlite_store import SqliteStore
from probe.clock import ManualClock
from slawatch.daemon import Daemon
from slawatch.web import make_app
from tests.support.configs import config_from_yaml


@dataclass
class Site:
    """The daemon, its clock and store, and a client of its web app."""

    daemon: Daemon
    clock: ManualClock
    client: TestClient
    store: SqliteStore

    async def close(self) -> None:
        """Stop the client's server, close the attempt log (if any) and the store."""
        await self.client.close()
        if self.daemon.attempt_log is not None:
            await self.daemon.attempt_log.close()
        self.store.close()


async def open_site(
    tmp_path: Path,
    config: dict[str, Any],
    now: float,
    *,
    environ: Mapping[str, str] | None = None,
    attempt_log: Path | None = None,
) -> Site:
    """A daemon for ``config`` (written under ``tmp_path``), its store open, serving its app.

    ``environ`` stands in for the environment of the config's ``${VAR}``s; ``attempt_log``
    is the daemon's ``--attempt-log``.
    """
    loaded = config_from_yaml(config, path=tmp_path / "slawatch.yaml", environ=environ)
    store = SqliteStore(tmp_path / "store.db")
    clock = ManualClock(now)
    daemon = Daemon(
        loaded, clock=clock, registry=CollectorRegistry(), store=store, attempt_log=attempt_log
    )
    await daemon.open_store()
    client = TestClient(TestServer(make_app(daemon)))
    await client.start_server()
    return Site(daemon, clock, client, store)
