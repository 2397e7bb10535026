"""Structured logging: JSON off a terminal, readable lines on one, secrets redacted from both.

The handler sits on the root logger, so every package's lines (ours, and the libraries'
such as aiohttp's or asyncio's "task exception was never retrieved") take the same
redacting, formatted path; none can fall through to Python's last-resort handler.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from config.secrets import Redactor

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class Redacting(logging.Filter):
    """Redacts a record's message, fields and traceback with the running config's redactor."""

    def __init__(self, redactor: Callable[[], Redactor]) -> None:
        super().__init__()
        # A callable: a reloaded config brings new secrets.
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; never drops a record."""
        redact = self._redactor()
        record.msg = redact(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level message key=value ...`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one readable line."""
        fields = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        when = self.formatTime(record, "%H:%M:%S")
        line = f"{when} {record.levelname.lower():7} {record.getMessage()}"
        if fields:
            line += f"  {fields}"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def setup_logging(
    *,
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    redactor: Callable[[], Redactor] = Redactor,
) -> logging.Handler:
    """Configure logging; ``fmt`` is json, text or auto (json unless a terminal).

    slawatch's loggers (``slawatch.*``) log at ``level``; other libraries at warning and above.
    """
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "text" if out.isatty() else "json"
    handler = logging.StreamHandler(out)
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(Redacting(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    ours = logging.getLogger("slawatch")
    for old in list(ours.handlers):
        ours.removeHandler(old)
    ours.setLevel(level.upper())
    ours.propagate = True
    return handler
