"""The ``slawatch`` command line: parsing and exit statuses; each command has its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from config import ConfigError
from slawatch import __version__
from slawatch.errors import CheckFailed, InputError

# Each command module exposes ``register(subparsers)`` and sets ``func`` on its parser;
# in this order in the help. A command imports only its own module: `slawatch replay`
# need not load the daemon, aiohttp and the web pages (a second of start-up).
MODULES = (
    "cmd_run",
    "cmd_demo",
    "cmd_config",
    "cmd_probe",
    "cmd_replay",
    "cmd_incidents",
    "cmd_evidence",
    "cmd_report",
    "cmd_sla",
)
# Command name → the module that registers it (a test holds this to the modules).
COMMANDS = {
    "run": "cmd_run",
    "demo": "cmd_demo",
    "check-config": "cmd_config",
    "config": "cmd_config",
    "catalog": "cmd_config",
    "probe": "cmd_probe",
    "replay": "cmd_replay",
    "incidents": "cmd_incidents",
    "evidence": "cmd_evidence",
    "report": "cmd_report",
    "sla": "cmd_sla",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: of every command, or of ``command``'s module alone."""
    parser = argparse.ArgumentParser(
        prog="slawatch",
        description="Availability monitor that speaks the language of support contracts.",
    )
    parser.add_argument("--version", action="version", version=f"slawatch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = (COMMANDS[command],) if command in COMMANDS else MODULES
    for name in modules:
        importlib.import_module(f"slawatch.{name}").register(subparsers)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (its first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 1 on a failed check, 2 on bad input."""
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(words))
    args = parser.parse_args(words)
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
