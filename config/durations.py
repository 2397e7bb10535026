"""Durations as written in the config (``250ms``, ``10s``, ``15m``, ``6h``), as float seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
DURATION_REGEX = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$"


def parse_duration(value: Any) -> float:
    """Parse ``10s``-style text (or a bare number of seconds) into seconds."""
    if isinstance(value, bool):
        raise _invalid(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
            if math.isfinite(seconds):
                return seconds
    raise _invalid(value)


def format_duration(seconds: float) -> str:
    """The shortest config spelling of a duration: 90 → ``90s``, 3600 → ``1h``, 86400 → ``24h``.

    Whole days past a week are written in days (``400d``), as the config allows.
    """
    if seconds > 7 * 86400 and (seconds / 86400).is_integer():
        return f"{int(seconds / 86400)}d"
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    if (seconds * 1000).is_integer():
        return f"{int(seconds * 1000)}ms"
    return f"{seconds}s"


def _invalid(value: object) -> PydanticCustomError:
    return PydanticCustomError(
        "duration",
        "invalid duration {value} (expected e.g. 250ms, 10s, 15m)",
        {"value": repr(value)},
    )


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_REGEX},
                {"type": "number", "minimum": 0},
            ],
            "description": "a duration: 250ms, 10s, 15m, 6h, 400d (a bare number is seconds)",
        }
    ),
]
