"""Read a config file: YAML (safe, duplicate keys refused), ``${VAR}``, validation, cross-checks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from config.catalog import BUSINESS, Catalog, CatalogFile, catalog_files
from config.env import expand
from config.errors import ConfigError, format_path
from config.model import NAME_RE, CalendarConfig, Config
from config.secrets import Redactor, config_secrets

# Refuse config files larger than this before parsing them (a config is a few KiB).
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with what was learnt while loading it."""

    config: Config
    source: str
    # Every secret value: those substituted from the environment and the config's own
    # credentials (config.secrets.config_secrets). Redact these wherever text leaves us.
    secrets: frozenset[str]
    # SHA-256 of the file as read (before expansion, so no secret feeds the digest).
    digest: str
    catalog: Catalog

    @cached_property
    def redact(self) -> Redactor:
        """The redactor of this config's secrets."""
        return Redactor(self.secrets)

    def path(self, value: str) -> Path:
        """A path named in this config: relative paths start at the config file's folder."""
        return config_path(self.source, value)

    def calendars(self) -> dict[str, CalendarConfig]:
        """Catalog calendars overlaid with the config's own."""
        return {**self.catalog.calendars, **self.config.calendars}


def config_path(source: str, value: str) -> Path:
    """Where a path written in the config file ``source`` points (relative: its folder)."""
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        return candidate
    return Path(source).resolve().parent / candidate


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            mark = key_node.start_mark
            raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=mark)
        out[key] = loader.construct_object(value_node, deep=True)
    return out


def _construct_timestamp(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> str:
    """A YAML timestamp stays the text it was written as.

    PyYAML would build a date (and raise a bare ValueError for ``2026-02-30``) wherever one
    is written, even where a name is expected; as text, the model parses it where a date
    belongs and refuses it, located, where it does not.
    """
    return str(loader.construct_scalar(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; syntax errors become ``file:line:col: ...``."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(source, where, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"YAML syntax error: {exc}") from None


def validate(model: type[BaseModel], data: Any, source: str) -> Any:
    """Validate ``data`` against ``model``; the first error becomes a located ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _located(exc.errors(include_url=False)[0], source) from None


def _located(error: ErrorDetails, source: str) -> ConfigError:
    loc = _strip_tags(tuple(error["loc"]))
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "union_tag_invalid":
        message = f"unknown type {ctx.get('tag')!r} (expected one of {ctx.get('expected_tags')})"
    elif kind == "union_tag_not_found":
        message = "required key 'type' is missing"
    elif kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_RE:
        message = (
            "must be a name of letters, digits, '.', '_' and '-' (at most 63, "
            f"starting with a letter or digit), got {error['input']!r}"
        )
    else:
        message = error["msg"].removeprefix("Value error, ")
        if message.startswith("Input should be "):
            message = "must be " + message.removeprefix("Input should be ")
            if not isinstance(error["input"], dict | list):
                message += f", got {error['input']!r}"
    return ConfigError(source, format_path(tuple(_visible(part) for part in loc)), message)


def _visible(part: object) -> int | str:
    """A user's key as it reads in a key path: quoted when blank, odd or unprintable."""
    if isinstance(part, int) and not isinstance(part, bool):
        return part
    if isinstance(part, str) and part.isprintable() and part.strip() == part and part:
        return part
    # YAML makes keys of numbers, booleans and nulls too (``1.5:``, ``yes:``, ``~:``).
    return repr(part)


_TAGS = frozenset({"webhook", "slack", "pagerduty", "alertmanager", "email"})
_INTERNAL = frozenset({"function-after[_url(), str]", "function-after[_host_port(), str]"})


def _strip_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the union tag pydantic inserts after ``notify[i]`` and internal validator names."""
    out: list[int | str] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and (
            part in _INTERNAL
            or (part in _TAGS and i >= 2 and loc[i - 2] == "notify" and isinstance(loc[i - 1], int))
        ):
            continue
        out.append(part)
    return tuple(out)


@cache
def load_catalog() -> Catalog:
    """Load and validate the shipped catalog (immutable data, so it is loaded once)."""
    policies = {}
    calendars = {}
    for name, text in catalog_files():
        source = f"catalog/{name}"
        part: CatalogFile = validate(CatalogFile, parse_yaml(text, source), source)
        policies.update(part.policies)
        calendars.update(part.calendars)
    for policy_id, policy in policies.items():
        for level, severity in policy.severities.items():
            for clock_name, clock in severity.clocks.items():
                if clock.calendar != BUSINESS and clock.calendar not in calendars:
                    raise ConfigError(
                        "catalog",
                        f"policies.{policy_id}.severities[{level}].clocks.{clock_name}.calendar",
                        f"unknown calendar {clock.calendar!r}",
                    )
    return Catalog(policies=policies, calendars=calendars)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, expand, validate and cross-check a config file; every problem is a ConfigError."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(source, "", f"file is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "", f"not UTF-8 text (byte {exc.start})") from None
    return load_config_text(text, source, os.environ if environ is None else environ)


def load_config_text(text: str, source: str, environ: Mapping[str, str]) -> LoadedConfig:
    """Like :func:`load_config`, for text already read."""
    data = parse_yaml(text, source)
    if data is None:
        raise ConfigError(source, "", "empty file (expected a mapping with 'services')")
    if not isinstance(data, dict):
        raise ConfigError(
            source, "", f"expected a mapping at the top level, got {type(data).__name__}"
        )
    secrets: set[str] = set()
    catalog = load_catalog()
    try:
        expanded = expand(data, environ, source, secrets)
        config: Config = validate(Config, expanded, source)
        cross_check(config, catalog, source)
    except ConfigError as exc:
        # Messages quote the offending value, which may have come from the environment.
        raise _cleaned(exc, secrets) from None
    return LoadedConfig(
        config=config,
        source=source,
        secrets=frozenset(secrets | config_secrets(config)),
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        catalog=catalog,
    )


def _cleaned(error: ConfigError, secrets: set[str]) -> ConfigError:
    """``error`` on one readable line, with every expanded environment value replaced."""
    message = Redactor(secrets)(error.message)
    # A key with a control character (a line break) must not split the one-line error.
    location, message = (
        "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
        for text in (error.location, message)
    )
    return ConfigError(error.source, location, message)


def cross_check(config: Config, catalog: Catalog, source: str) -> None:
    """Checks that span keys: unique names, known policies and calendars."""
    calendars = {**catalog.calendars, **config.calendars}
    _unique(source, "services", [s.name for s in config.services], "service")
    _unique(source, "control", [c.name for c in config.control], "control check")
    _unique(source, "notify", [n.name for n in config.notify], "notify channel")
    names = {s.name for s in config.services}
    for i, service in enumerate(config.services):
        where = f"services[{i}]"
        seen: set[str] = set()
        targets = [("api", j, t.name) for j, t in enumerate(service.api)]
        targets += [("smtp", j, t.name) for j, t in enumerate(service.smtp)]
        for kind, j, name in targets:
            if name in seen:
                raise ConfigError(
                    source,
                    f"{where}.{kind}[{j}].name",
                    f"duplicate target name {name!r} in service {service.name!r}",
                )
            seen.add(name)
        _check_sla(service.sla, where, catalog, calendars, source)
    for i, notify in enumerate(config.notify):
        for name in notify.services or []:
            if name not in names:
                raise ConfigError(source, f"notify[{i}].services", f"unknown service {name!r}")


def _check_sla(
    sla: Any, where: str, catalog: Catalog, calendars: Mapping[str, CalendarConfig], source: str
) -> None:
    if sla.calendar is not None and sla.calendar not in calendars:
        raise ConfigError(
            source,
            f"{where}.sla.calendar",
            f"unknown calendar {sla.calendar!r} (known: {', '.join(sorted(calendars))})",
        )
    if sla.policy is None:
        return
    policy = catalog.policies.get(sla.policy)
    if policy is None:
        raise ConfigError(
            source,
            f"{where}.sla.policy",
            f"unknown policy {sla.policy!r} (see 'slawatch catalog')",
        )
    if not policy.needs_calendar():
        return
    choices = policy.business_hours or sorted(c for c in calendars if c != "24x7")
    if sla.calendar is None:
        raise ConfigError(
            source,
            f"{where}.sla.calendar",
            f"policy {sla.policy!r} has business-hours clocks: choose a calendar "
            f"(one of: {', '.join(choices)})",
        )
    if policy.business_hours is not None and sla.calendar not in policy.business_hours:
        raise ConfigError(
            source,
            f"{where}.sla.calendar",
            f"{policy.provider}'s business hours are one of {', '.join(policy.business_hours)}, "
            f"not {sla.calendar!r}",
        )


def _unique(source: str, key: str, names: list[str], what: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(source, f"{key}[{i}].name", f"duplicate {what} name {name!r}")
        seen.add(name)
