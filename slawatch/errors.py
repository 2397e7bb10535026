"""Errors the CLI turns into exit statuses: bad input (2) and failed checks (1)."""

from __future__ import annotations


class InputError(Exception):
    """Bad input that is not a config file: a replay line, an argument, a store file (exit 2)."""


class CheckFailed(Exception):
    """A check ran and failed, e.g. an evidence chain that does not verify (exit 1)."""
