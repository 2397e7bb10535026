"""An event loop in a background thread, for servers that a subprocess under test talks to.

Tests that drive ``slawatch run`` in a subprocess block on it (``wait_for``, ``urlopen``), so
the servers it probes or notifies (the simulated provider, a webhook receiver, a hostile
provider) cannot share the test's own loop: they run on this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A loop running in a daemon thread; async context managers entered on it close with it."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        # Entered on the loop, exited there in reverse order when the thread stops.
        self._stack = contextlib.AsyncExitStack()

    def __enter__(self) -> LoopThread:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.run(self._stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(self.timeout)
            self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(self.timeout)

    def enter(self, manager: AbstractAsyncContextManager[T]) -> T:
        """Enter an async context manager on the loop; it is exited when the thread stops."""
        return self.run(self._stack.enter_async_context(manager))
