"""RFC 3339 text ↔ UTC epoch seconds: the one place times are written and read as text."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

# RFC 3339 §5.6 date-time: ``T`` (or ``t``, or a space, which §5.6 allows by agreement)
# between date and time, an optional fraction, and a required offset (``Z``, ``z`` or ±hh:mm).
_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)",
    re.ASCII,
)


class TimeTextError(ValueError):
    """Text that is not an RFC 3339 date-time with an offset."""


def parse_time(text: object) -> float:
    """RFC 3339 text (``Z`` or any offset; a zone is required) to UTC epoch seconds."""
    if not isinstance(text, str):
        raise TimeTextError(f"expected an RFC 3339 time, got {text!r}")
    found = _RFC3339.fullmatch(text)
    if found is None:
        if _RFC3339.fullmatch(text + "Z") is not None:
            raise TimeTextError(f"time {text!r} has no UTC offset")
        raise TimeTextError(f"invalid RFC 3339 time {text!r}")
    date, clock, fraction, offset = found.groups()
    # datetime keeps microseconds: longer fractions are truncated, never rounded up.
    fraction = (fraction or "")[:7]
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        parsed = datetime.fromisoformat(f"{date}T{clock}{fraction}{offset}")
    except ValueError:
        raise TimeTextError(f"invalid RFC 3339 time {text!r}") from None
    return parsed.timestamp()


@lru_cache(maxsize=64)
def _second_text(whole: int) -> str:
    # Remembered (a few): evidence writes the attempts of one second one after another.
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def format_time(epoch: float, precision: int | None = None) -> str:
    """UTC epoch seconds as RFC 3339 with ``Z``.

    ``precision`` is the number of fractional digits; None (the default) writes
    milliseconds only when the time has a fraction. Digits are truncated, never rounded
    up: a deadline shown is never later than the real one.
    """
    whole = math.floor(epoch)
    text = _second_text(whole)
    digits = precision
    if digits is None:
        digits = 3 if math.floor((epoch - whole) * 1000 + 1e-6) else 0
    if digits:
        scale = 10**digits
        frac = min(math.floor((epoch - whole) * scale + 1e-6), scale - 1)
        text += f".{frac:0{digits}d}"
    return text + "Z"


def format_local(epoch: float, time_zone: str) -> str:
    """UTC epoch seconds as RFC 3339 in a time zone's local time, with its offset.

    Whole seconds, truncated like :func:`format_time`: ``2026-11-21T05:15:00-05:00``.
    """
    local = datetime.fromtimestamp(math.floor(epoch), ZoneInfo(time_zone))
    return local.isoformat(timespec="seconds")
