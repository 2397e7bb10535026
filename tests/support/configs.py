"""Configs for tests: validated from YAML text (or a mapping) with a fake environment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from config import LoadedConfig, load_catalog, load_config_text
from sla.calendar import Calendar


def config_from_yaml(
    source: str | Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    path: str | Path = "slawatch.yaml",
) -> LoadedConfig:
    """A validated config from YAML text, or from a mapping written out as YAML.

    ``environ`` stands in for the process environment (``${VAR}`` expansion); ``path`` is
    the file the text is said to come from: error messages name it and relative paths in
    the config are read from its folder. Nothing is written to disk.
    """
    text = source if isinstance(source, str) else yaml.safe_dump(dict(source), sort_keys=False)
    return load_config_text(text, str(path), environ or {})


def shipped_calendar(name: str) -> Calendar:
    """A fresh business calendar from the shipped catalog."""
    return Calendar.from_config(name, load_catalog().calendars[name])
