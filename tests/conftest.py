"""Project-wide test helpers: real external tools, required under CI."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest


def _require(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required under CI (make test installs it)")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture
def require_tool() -> Callable[[str], str]:
    """Return the path of an external tool; skip without it, except under CI where it fails."""
    return _require
