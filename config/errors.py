"""The one error type of configuration: a file name, a key path or line, and a message."""

from __future__ import annotations


class ConfigError(Exception):
    """A located config problem: ``file: key.path: message`` or ``file:line:col: message``."""

    def __init__(self, source: str, location: str, message: str) -> None:
        self.source = source
        self.location = location
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        if not self.location:
            return f"{self.source}: {self.message}"
        if self.location[0].isdigit():  # a line:column position
            return f"{self.source}:{self.location}: {self.message}"
        return f"{self.source}: {self.location}: {self.message}"


def format_path(loc: tuple[int | str, ...]) -> str:
    """Render a key path as ``services[0].api[1].timeout``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
