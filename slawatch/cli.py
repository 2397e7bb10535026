"""The ``slawatch`` command line: parsing and exit statuses; each command has its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from config import ConfigError
from slawatch import (
    __version__,
    cmd_config,
    cmd_demo,
    cmd_evidence,
    cmd_incidents,
    cmd_probe,
    cmd_replay,
    cmd_report,
    cmd_run,
    cmd_sla,
)
from slawatch.errors import CheckFailed, InputError

# Each command module exposes ``register(subparsers)`` and sets ``func`` on its parser.
COMMANDS = [
    cmd_run,
    cmd_demo,
    cmd_config,
    cmd_probe,
    cmd_replay,
    cmd_incidents,
    cmd_evidence,
    cmd_report,
    cmd_sla,
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="slawatch",
        description="Availability monitor that speaks the language of support contracts.",
    )
    parser.add_argument("--version", action="version", version=f"slawatch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 1 on a failed check, 2 on bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        result: int = args.func(args)
    except (ConfigError, InputError) as exc:
        # One line that names the file and the key path or line number.
        print(str(exc).replace("\n", " "), file=sys.stderr)
        return 2
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return result


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
