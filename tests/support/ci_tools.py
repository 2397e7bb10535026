"""External tools and capabilities the tests need: skipped on a laptop without them, failed under CI."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing(what: str) -> NoReturn:
    """Skip for a missing tool or capability; under CI (``CI=true``) fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI (make test installs it)")
    pytest.skip(f"{what} is not available here")


def require_tool(name: str) -> str:
    """The path of an external command, or :func:`missing`."""
    path = shutil.which(name)
    if path is None:
        missing(name)
    return path
