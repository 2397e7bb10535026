"""Commands about configuration: ``check-config``, ``config schema`` and ``catalog``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from config import Config, load_catalog, load_config
from config.catalog import BUSINESS, CLOCK_NAMES, ClockSpec
from config.durations import format_duration
from incidents.store import StoreError
from slawatch.errors import CheckFailed
from slawatch.storage import check_store


def register(subparsers: Any) -> None:
    """Add the configuration commands."""
    check = subparsers.add_parser("check-config", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(func=check_config)

    cfg = subparsers.add_parser("config", help="configuration helpers")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    schema = cfg_sub.add_parser("schema", help="print the JSON Schema of the config file")
    schema.set_defaults(func=config_schema)

    catalog = subparsers.add_parser("catalog", help="list the shipped SLA policies and calendars")
    catalog.add_argument("--format", choices=["text", "json"], default="text")
    catalog.set_defaults(func=show_catalog)


def check_config(args: argparse.Namespace) -> int:
    """Validate a config file and summarise it in one line."""
    loaded = load_config(args.file)
    services = loaded.config.services
    api = sum(len(s.api) for s in services)
    smtp = sum(len(s.smtp) for s in services)
    print(
        f"{loaded.source}: OK: {len(services)} service{'s' * (len(services) != 1)}, "
        f"{api} API target{'s' * (api != 1)}, {smtp} SMTP target{'s' * (smtp != 1)}, "
        f"{len(loaded.config.control)} control check{'s' * (len(loaded.config.control) != 1)}, "
        f"{len(loaded.config.notify)} notify channel{'s' * (len(loaded.config.notify) != 1)}"
    )
    try:
        store = check_store(loaded)
    except StoreError as exc:
        raise CheckFailed(f"{loaded.source}: storage.url: {exc}") from None
    if store is not None:
        print(f"storage: {store}")
    return 0


def config_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the config file."""
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "slawatch configuration"
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


def _clock_text(clock: ClockSpec) -> str:
    target = (
        format_duration(clock.target)
        if clock.target is not None
        else ("agreed" if clock.agreed else "tracked")
    )
    calendar = "business hours" if clock.calendar == BUSINESS else clock.calendar
    return f"{target} ({calendar})"


def show_catalog(args: argparse.Namespace) -> int:
    """Print the policies with their severities and clock targets, and the calendars."""
    catalog = load_catalog()
    if args.format == "json":
        print(
            json.dumps(
                {
                    "policies": {k: v.model_dump(mode="json") for k, v in catalog.policies.items()},
                    "calendars": {
                        k: v.model_dump(mode="json") for k, v in catalog.calendars.items()
                    },
                },
                indent=2,
            )
        )
        return 0
    rows = [
        ("POLICY", "PROVIDER", "PRODUCT", "PLAN", "SEV", "NAME", *(c.upper() for c in CLOCK_NAMES))
    ]
    for policy_id, policy in sorted(catalog.policies.items()):
        for level, severity in sorted(policy.severities.items()):
            clocks = [
                _clock_text(severity.clocks[c]) if c in severity.clocks else "-"
                for c in CLOCK_NAMES
            ]
            rows.append(
                (
                    policy_id,
                    policy.provider,
                    policy.product,
                    policy.plan,
                    str(level),
                    severity.name,
                    *clocks,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    print()
    print("CALENDARS")
    for name, calendar in sorted(catalog.calendars.items()):
        print(f"  {name.ljust(12)}{calendar.description}")
    print()
    print("'business hours': the service's sla.calendar (required for such policies).")
    return 0
