"""Project-wide test helpers: real external tools, required under CI."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ci_tools import require_tool as _require


@pytest.fixture
def require_tool() -> Callable[[str], str]:
    """Return the path of an external tool; skip without it, except under CI where it fails."""
    return _require
