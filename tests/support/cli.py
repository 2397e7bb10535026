"""The real command line, run as a user would: ``python -m slawatch.cli`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run_slawatch(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``slawatch ARGS`` in ``cwd`` with ``env`` added to the environment; never raises."""
    return subprocess.run(
        [sys.executable, "-m", "slawatch.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def unmeasured_env() -> dict[str, str]:
    """This process's environment without coverage's subprocess measurement.

    For children that run none of our code (pip building the wheel) and for those that
    must not load coverage.py at all (it imports sqlite3 to keep its data).
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS_")}
