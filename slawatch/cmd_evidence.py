"""The ``evidence`` command: an incident's evidence bundle, and ``evidence verify`` of one."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from config import load_config
from config.durations import parse_duration
from incidents.evidence import DEFAULT_MARGIN_S, FORMATS, EvidenceError, bundle_for, render, verify
from probe.clock import SystemClock
from slawatch import __version__
from slawatch.cmd_incidents import add_store_options, open_store, write_output
from slawatch.errors import CheckFailed, InputError

VERIFY = "verify"


def register(subparsers: Any) -> None:
    """Add ``evidence ID`` and ``evidence verify FILE``."""
    parser = subparsers.add_parser(
        "evidence",
        help="an incident's evidence bundle (or 'evidence verify FILE')",
        description=(
            "'evidence ID --config F' renders an incident's evidence bundle; "
            "'evidence verify FILE' recomputes the hash chain of a JSON or CSV bundle."
        ),
    )
    parser.add_argument("target", nargs="+", metavar="ID | verify FILE")
    parser.add_argument("--format", choices=FORMATS, default="json")
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    parser.add_argument(
        "--margin",
        default=f"{DEFAULT_MARGIN_S}s",
        help=f"seconds shown before the first bad second (default {DEFAULT_MARGIN_S}s)",
    )
    add_store_options(parser, config_required=False)
    parser.set_defaults(func=evidence)


def evidence(args: argparse.Namespace) -> int:
    """Dispatch between rendering a bundle and verifying one."""
    if args.target[0] == VERIFY and len(args.target) == 2:
        return verify_file(args.target[1])
    if len(args.target) != 1:
        raise InputError("evidence: give one incident ID, or 'verify FILE'")
    return render_bundle(args)


def render_bundle(args: argparse.Namespace) -> int:
    """Render the bundle of one incident in the chosen format."""
    if args.config is None:
        raise InputError("evidence: --config FILE is required (secrets, digest, definitions)")
    try:
        margin = math.floor(parse_duration(args.margin))
    except ValueError as exc:
        raise InputError(f"--margin: {exc}") from None
    loaded = load_config(args.config)
    now = SystemClock().time()
    with open_store(args, loaded) as store:
        bundle = bundle_for(
            store, args.target[0], loaded, now=now, version=__version__, margin=margin
        )
        if bundle is None:
            raise InputError(f"no incident {args.target[0]!r} in {store.where}")
    text = render(bundle, args.format)
    return write_output(text, args.output)


def verify_file(path: str) -> int:
    """Recompute a bundle's chain; exit 1 naming the first altered record."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    try:
        result = verify(text)
    except EvidenceError as exc:
        raise InputError(f"{path}: {exc}") from None
    if result.bad_index is not None:
        raise CheckFailed(
            f"{path}: FAILED: record {result.bad_index + 1} of {result.records} "
            f"(second {result.bad_second}) was altered: {result.reason}"
        )
    if not result.ok:
        raise CheckFailed(f"{path}: FAILED: {result.reason}")
    print(f"{path}: OK: {result.records} records, head {result.head}")
    return 0
