"""The command line loads only the module of the command it runs, and knows every command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slawatch.cli import COMMANDS, MODULES, build_parser
from tests.support.paths import ROOT


def _commands(parser: object) -> set[str]:
    actions = getattr(parser, "_subparsers")._group_actions  # noqa: B009
    return {name for action in actions for name in action.choices}


def test_every_command_is_mapped_to_its_module() -> None:
    """The name → module map holds every command the modules register, and only those."""
    assert _commands(build_parser()) == set(COMMANDS)
    assert set(COMMANDS.values()) == set(MODULES)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_parses_alone(command: str) -> None:
    """A command's own module registers it (what main builds when that command is asked for)."""
    assert command in _commands(build_parser(command))


def test_replay_does_not_load_the_daemon() -> None:
    """`slawatch replay` loads neither the daemon nor aiohttp (a second of start-up)."""
    code = (
        "import sys\n"
        "from slawatch.cli import build_parser\n"
        "build_parser('replay')\n"
        "print(sorted(m for m in ('aiohttp', 'slawatch.daemon', 'slawatch.web') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
