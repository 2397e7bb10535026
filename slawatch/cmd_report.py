"""The ``report`` command: a service's availability over a month or a range, vs its commitment."""

from __future__ import annotations

import argparse
import math
from typing import Any

from config import load_config
from config.timetext import TimeTextError, parse_time
from incidents.report import REPORT_FORMATS, ReportError, month_range, render_report, report_for
from probe.clock import SystemClock
from slawatch.cmd_incidents import add_store_options, open_store, write_output
from slawatch.errors import InputError


def register(subparsers: Any) -> None:
    """Add ``report``."""
    parser = subparsers.add_parser(
        "report",
        help="availability of a service by the contract's definition",
        description=(
            "Observed and unavailable seconds per channel and combined, the availability, "
            "the commitment (sla.commitment) and its budget, and the incidents of the period."
        ),
    )
    parser.add_argument("--service", required=True)
    period = parser.add_mutually_exclusive_group(required=True)
    period.add_argument("--month", help="a calendar month in UTC, YYYY-MM")
    period.add_argument("--from", dest="start", help="start, RFC 3339 (with --to)")
    parser.add_argument("--to", dest="end", help="end (exclusive), RFC 3339")
    parser.add_argument("--format", choices=REPORT_FORMATS, default="text")
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    add_store_options(parser, config_required=True)
    parser.set_defaults(func=report)


def _period(args: argparse.Namespace) -> tuple[int, int]:
    if args.month is not None:
        if args.end is not None:
            raise InputError("report: --to goes with --from, not with --month")
        try:
            return month_range(args.month)
        except ReportError as exc:
            raise InputError(f"--month: {exc}") from None
    if args.end is None:
        raise InputError("report: --from needs --to")
    try:
        start, end = parse_time(args.start), parse_time(args.end)
    except TimeTextError as exc:
        raise InputError(f"report: {exc}") from None
    # Whole seconds: a second belongs to the period if it starts inside it.
    return math.ceil(start), math.ceil(end)


def report(args: argparse.Namespace) -> int:
    """Print the availability report of one service."""
    loaded = load_config(args.config)
    try:
        service = loaded.config.service(args.service)
    except KeyError:
        known = ", ".join(s.name for s in loaded.config.services)
        raise InputError(f"--service: unknown service {args.service!r} (known: {known})") from None
    start, end = _period(args)
    if end <= start:
        raise InputError("report: the period is empty (--to must be after --from)")
    with open_store(args, loaded) as store:
        result = report_for(
            store,
            service.name,
            start=start,
            end=end,
            commitment=service.sla.commitment,
            now=SystemClock().time(),
        )
    text = render_report(result, args.format)
    return write_output(text, args.output)
