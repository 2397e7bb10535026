"""Process-wide tuning of ``slawatch run``: the event loop (uvloop where present) and the GC.

Both are measured in docs/performance.md: uvloop cuts the loop's own share of a
fresh-connection probe by about a quarter; a larger first GC generation and freezing the
objects made at start-up cut the collector's pauses, which otherwise land on launches.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
from collections.abc import Callable

log = logging.getLogger("slawatch.runtime")

# auto: uvloop when installed (it is a dependency on Linux), else asyncio's own loop.
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
# The first generation is collected after this many net allocations (CPython's default
# is 700): an attempt allocates hundreds of objects, and most die young anyway.
GC_THRESHOLDS = (20_000, 20, 20)


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory for ``choice`` (None: asyncio's default loop)."""
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def tune_gc() -> None:
    """Collect the young generation less often (set before start-up)."""
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_gc() -> None:
    """Move everything made at start-up (config, probes, catalog) out of the collector's way."""
    gc.collect()
    gc.freeze()
    log.debug("start-up objects frozen", extra={"frozen": gc.get_freeze_count()})
