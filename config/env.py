"""``${VAR}`` expansion over the raw YAML tree; every expanded value is remembered as a secret."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from config.errors import ConfigError, format_path

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(tree: Any, environ: Mapping[str, str], source: str, secrets: set[str]) -> Any:
    """Return ``tree`` with ``${VAR}`` replaced from ``environ`` (``$$`` is a literal ``$``)."""
    return _walk(tree, (), environ, source, secrets)


def _walk(
    node: Any,
    loc: tuple[int | str, ...],
    environ: Mapping[str, str],
    source: str,
    secrets: set[str],
) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, (*loc, str(k)), environ, source, secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, (*loc, i), environ, source, secrets) for i, v in enumerate(node)]
    if isinstance(node, str) and "$" in node:
        return _expand_str(node, loc, environ, source, secrets)
    return node


def _expand_str(
    text: str,
    loc: tuple[int | str, ...],
    environ: Mapping[str, str],
    source: str,
    secrets: set[str],
) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in environ:
            raise ConfigError(source, format_path(loc), f"environment variable {name} is not set")
        value = environ[name]
        if value:
            secrets.add(value)
        return value

    return _VAR.sub(replace, text)
