"""The attempt log of `slawatch run --attempt-log`: each pooled attempt as a replay line.

Each attempt the daemon pools (its probes' and the traffic it ingests, missed launches
included) is appended as one JSON line in the canonical form ``slawatch probe`` prints
(``Attempt.to_json`` + ``json.dumps``), so ``slawatch replay`` reads the file back. On the
event loop an attempt costs one list append: encoding and writing happen on a thread of
their own, once a second, one ``write`` for the whole second. A write that fails is
logged once (until a write succeeds again), counted, and its attempts are dropped: the
log never stops probing, and never grows the daemon's memory past ``MAX_PENDING``.
Attempt records carry no credentials; their details are redacted where they are made.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from probe.attempt import Attempt
from probe.clock import Clock

log = logging.getLogger("slawatch.attempt_log")

# Seconds between two writes: one write a second, whatever the number of attempts.
FLUSH_INTERVAL = 1.0
# Attempts held while a write is slow: five minutes at 2,000 attempts a second. Past
# this, new attempts are dropped (and counted) rather than growing memory.
MAX_PENDING = 600_000


class AttemptLog:
    """An append-only JSON Lines file of attempts, written in batches on its own thread."""

    def __init__(self, path: Path, registry: CollectorRegistry) -> None:
        """Open ``path`` for appending (OSError when it cannot be opened)."""
        self.path = path
        self._file: io.FileIO | None = _open(path)
        # Attempts added since the last batch was handed to the thread (event loop only).
        self._pending: list[Attempt] = []
        # One thread: batches are written in the order they were taken.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slawatch-attempts")
        # Set by SIGHUP: the next write reopens the path (after logrotate moved the file).
        self._reopen = False
        # True from a failed write until the next good one: the failure is logged once.
        self._failing = False
        self._closed = False
        self.written = Counter(
            "slawatch_attempt_log_written",
            "Attempts appended to the attempt log (--attempt-log).",
            registry=registry,
        )
        self.errors = Counter(
            "slawatch_attempt_log_errors",
            "Writes to the attempt log that failed (each drops that second's attempts).",
            registry=registry,
        )
        self.dropped = Counter(
            "slawatch_attempt_log_dropped",
            "Attempts not written to the attempt log: their write failed, or too many waited.",
            registry=registry,
        )

    @property
    def pending(self) -> int:
        """Attempts waiting for the next write."""
        return len(self._pending)

    def add(self, attempt: Attempt) -> None:
        """Keep ``attempt`` for the next write (on the event loop: no I/O here)."""
        if self._closed or len(self._pending) >= MAX_PENDING:
            self.dropped.inc()
            return
        self._pending.append(attempt)

    def reopen(self) -> None:
        """Reopen the path before the next write (SIGHUP, after the file was rotated)."""
        self._reopen = True

    async def flush(self) -> None:
        """Write every attempt added so far, on the writer thread."""
        if not self._pending and not self._reopen:
            return
        batch, self._pending = self._pending, []
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch)

    async def run(self, clock: Clock, stop: asyncio.Event) -> None:
        """Flush once a second until ``stop`` is set (the last flush is :meth:`close`'s)."""
        next_flush = clock.time() + FLUSH_INTERVAL
        while not stop.is_set():
            sleeper = asyncio.ensure_future(clock.sleep_until(next_flush))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            stopper.cancel()
            if stop.is_set():
                break
            await self.flush()
            next_flush = max(next_flush + FLUSH_INTERVAL, clock.time())

    async def close(self) -> None:
        """Write what is pending, close the file and stop the thread."""
        if self._closed:
            return
        await self.flush()
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_file)
        self._executor.shutdown(wait=True)

    # -- the writer thread -----------------------------------------------------------

    def _write(self, batch: list[Attempt]) -> None:
        data = "".join(
            json.dumps(attempt.to_json(), ensure_ascii=False) + "\n" for attempt in batch
        ).encode()
        handle = None
        start = 0
        try:
            if self._reopen or self._file is None:
                self._reopen = False
                self._close_file()
                self._file = _open(self.path)
            handle = self._file
            start = os.fstat(handle.fileno()).st_size
            view = memoryview(data)
            while view:
                done = handle.write(view)
                view = view[done or 0 :]
        except OSError as exc:
            self._failed(exc, len(batch))
            # No half line is left behind for the next batch to run into.
            if handle is not None:
                _truncate(handle, start)
            return
        self.written.inc(len(batch))
        if self._failing:
            self._failing = False
            log.info("attempt log writable again", extra={"path": str(self.path)})

    def _failed(self, exc: OSError, attempts: int) -> None:
        self.errors.inc()
        self.dropped.inc(attempts)
        if not self._failing:
            self._failing = True
            log.error(
                "cannot write the attempt log; dropping its attempts until it can",
                extra={"path": str(self.path), "error": exc.strerror or str(exc)},
            )

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._failed(exc, 0)
            self._file = None


def _open(path: Path) -> io.FileIO:
    """``path`` for appending, unbuffered: each batch is written with one call."""
    return io.FileIO(path, "ab")


def _truncate(handle: io.FileIO, size: int) -> None:
    """Cut what a failed write left past ``size`` (best effort: the error is logged already)."""
    try:
        os.ftruncate(handle.fileno(), size)
    except OSError:
        return
