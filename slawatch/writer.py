"""The store writer: batches committed in order on one thread, kept in memory while refused."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from config.model import StorageConfig
from incidents.store import Batch, IncidentStore
from slawatch.status import Health

log = logging.getLogger("slawatch.store")
T = TypeVar("T")

# Store problems are logged at most this often (a full disk would otherwise log every second).
STORE_ERROR_LOG_INTERVAL = 60.0
# Batches kept in memory while the store refuses writes; past this, the oldest samples go.
MAX_PENDING_BATCHES = 3600


class StoreWriter:
    """Every write of the daemon goes through here: one thread, so commits keep their order."""

    def __init__(self, health: Health, *, max_pending: int = MAX_PENDING_BATCHES) -> None:
        self.health = health
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slawatch-store")
        self._pending: list[Batch] = []

    @property
    def pending(self) -> int:
        """Batches waiting for the store."""
        return len(self._pending)

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` on the writer thread (never on the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def commit(self, store: IncidentStore, batch: Batch, now: float) -> None:
        """Commit ``batch`` after every batch still pending; on refusal keep them all."""
        if batch:
            self._pending.append(batch)
        if len(self._pending) > self.max_pending:
            self._merge_oldest()
        while self._pending:
            try:
                await self.run(store.commit, self._pending[0])
            except Exception as exc:  # noqa: BLE001  (any refusal: keep the batch, retry)
                self.failed(exc, now)
                break
            self._pending.pop(0)
            self.succeeded()
        self.health.pending_batches = len(self._pending)

    def _merge_oldest(self) -> None:
        """Fold the oldest batch into the next: every run and event kept, its samples dropped."""
        merged = self._pending.pop(0)
        nxt = self._pending[0]
        nxt.events[:0] = merged.events
        # Runs are upserts by (service, channel, first): keep only the newer version, or a
        # long outage would grow the head batch by every second's rewrite.
        newer = {(run.service, run.channel, run.first) for run in nxt.runs}
        nxt.runs[:0] = [
            run for run in merged.runs if (run.service, run.channel, run.first) not in newer
        ]
        nxt.high_water = {**merged.high_water, **nxt.high_water}

    async def prune(self, store: IncidentStore, now: float, storage: StorageConfig) -> None:
        """Drop what retention no longer keeps (verdict runs, incidents, evidence samples)."""
        try:
            pruned = await self.run(
                lambda: store.prune(
                    now, keep_runs=storage.retention_runs, keep_samples=storage.retention_attempts
                )
            )
        except Exception as exc:  # noqa: BLE001  (retention must never stop the daemon)
            self.failed(exc, now)
            return
        if pruned.runs or pruned.samples or pruned.incidents:
            log.info(
                "retention applied",
                extra={
                    "runs": pruned.runs,
                    "samples": pruned.samples,
                    "incidents": pruned.incidents,
                },
            )

    def failed(self, exc: BaseException, now: float) -> None:
        """Note a refused write (logged at most once a minute)."""
        health = self.health
        health.store_writable = False
        health.store_error = str(exc)
        if now - health.last_store_log >= STORE_ERROR_LOG_INTERVAL:
            health.last_store_log = now
            log.error(
                "store refuses writes; keeping batches in memory",
                extra={"error": str(exc), "pending_batches": len(self._pending)},
            )

    def succeeded(self) -> None:
        """Note an accepted write."""
        if not self.health.store_writable:
            log.info("store writable again; caught up")
        self.health.store_writable = True
        self.health.store_error = ""

    def close(self) -> None:
        """Wait for the writes in progress and stop the thread."""
        self._executor.shutdown(wait=True)
