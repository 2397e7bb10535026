"""`slawatch` with its wall clock set off by some seconds: ``python -m tests.support.skewed_run 2.0 run …``.

The clock-skew tests run one member of a fleet through it. Only the clock module reads
real time (probe/clock.py), so shifting what it reads shifts every stamp, launch and tick
of that process, as a badly synchronized host would; the database keeps the true time.
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import probe.clock


def main() -> None:
    """Shift the clock by the first argument (seconds), then run the CLI on the rest."""
    offset = float(sys.argv.pop(1))
    real = time.time  # noqa: TID251  (the one reading of real time here)
    probe.clock.time = SimpleNamespace(  # type: ignore[assignment]
        time=lambda: real() + offset,
        monotonic=time.monotonic,  # noqa: TID251
    )
    from slawatch.cli import run  # after the clock is shifted

    run()


if __name__ == "__main__":
    main()
