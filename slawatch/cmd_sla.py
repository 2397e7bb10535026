"""The ``sla`` command: the SLA clock deadlines of a policy and severity for a ticket."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from config import load_catalog, load_config
from config.catalog import ClockName
from config.durations import format_duration
from config.timetext import TimeTextError, format_time, parse_time
from sla.calendar import Calendar, calendars_from
from sla.clocks import ClockState, clocks_for
from sla.events import IncidentEvent
from sla.policy import CalendarRequired, PolicyError, find_policy, resolve_clocks
from slawatch.errors import InputError


def register(subparsers: Any) -> None:
    """Add ``sla deadline``."""
    sla = subparsers.add_parser("sla", help="SLA clocks of the shipped policies")
    sla_sub = sla.add_subparsers(dest="sla_command", metavar="SUBCOMMAND", required=True)
    deadline = sla_sub.add_parser(
        "deadline", help="each clock's deadline for a ticket opened at a given time"
    )
    deadline.add_argument("--policy", required=True, help="policy id (see 'slawatch catalog')")
    deadline.add_argument("--severity", required=True, type=int, choices=(1, 2, 3))
    deadline.add_argument("--opened", required=True, help="ticket-open time, RFC 3339")
    deadline.add_argument("--calendar", help="the service's business-hours calendar (sla.calendar)")
    deadline.add_argument(
        "--responded",
        help="time of the provider's first response, RFC 3339 (starts the update clock)",
    )
    deadline.add_argument("--config", help="config file whose custom calendars to use")
    deadline.add_argument("--format", choices=("json", "text"), default="text")
    deadline.set_defaults(func=sla_deadline)


def sla_deadline(args: argparse.Namespace) -> int:
    """Print the deadline and calendar of each clock the policy defines at the severity."""
    if args.config is not None:
        loaded = load_config(args.config)
        catalog, configs = loaded.catalog, loaded.calendars()
    else:
        catalog = load_catalog()
        configs = catalog.calendars
    opened = _time(args.opened, "--opened")
    events = []
    # Deadlines do not depend on "now"; it only has to be late enough to see the events.
    now = opened
    if args.responded is not None:
        responded = _time(args.responded, "--responded")
        events.append(IncidentEvent("provider_responded", responded))
        now = max(now, responded)
    calendars = calendars_from(configs)
    service_calendar: Calendar | None = None
    if args.calendar is not None:
        service_calendar = calendars.get(args.calendar)
        if service_calendar is None:
            raise _bad(
                f"--calendar: unknown calendar {args.calendar!r} "
                f"(known: {', '.join(sorted(calendars))})"
            )
    try:
        policy = find_policy(catalog.policies, args.policy)
    except PolicyError as exc:
        raise _bad(str(exc)) from None
    try:
        terms = resolve_clocks(policy, args.severity, calendar=args.calendar)
        states = clocks_for(
            policy,
            args.severity,
            service_calendar,
            opened_at=opened,
            events=events,
            now=now,
            calendars=calendars,
        )
    except CalendarRequired as exc:
        choices = f" (one of: {', '.join(exc.choices)})" if exc.choices else ""
        raise _bad(
            f"policy {args.policy!r} severity {args.severity} has business-hours clocks: "
            f"give --calendar{choices}"
        ) from None
    except PolicyError as exc:
        raise _bad(f"policy {args.policy!r}: {exc}") from None
    report = {
        "policy": args.policy,
        "severity": args.severity,
        "provider_severity": terms.provider_severity,
        "opened": format_time(opened),
        "clocks": {name: _clock_json(state) for name, state in states.items()},
    }
    if args.format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(_text(report, states))
    return 0


def _time(text: str, option: str) -> float:
    try:
        return parse_time(text)
    except TimeTextError as exc:
        raise _bad(f"{option}: {exc}") from None


def _bad(message: str) -> InputError:
    return InputError(f"sla deadline: {message}")


def _clock_json(state: ClockState) -> dict[str, Any]:
    return {
        "target": None if state.target is None else format_duration(state.target),
        "calendar": state.calendar,
        "deadline": None if state.deadline is None else format_time(state.deadline),
    }


def _text(report: dict[str, Any], states: Mapping[ClockName, ClockState]) -> str:
    lines = [
        f"policy    {report['policy']}",
        f"severity  {report['severity']} ({report['provider_severity']})",
        f"opened    {report['opened']}",
    ]
    if not states:
        lines.append("no SLA clocks at this severity")
        return "\n".join(lines) + "\n"
    rows = [("CLOCK", "TARGET", "CALENDAR", "DEADLINE")]
    for name, state in states.items():
        shown = report["clocks"][name]
        if shown["deadline"] is not None:
            deadline = shown["deadline"]
        elif state.target is None:
            deadline = "none (tracked, no numeric target)"
        else:
            deadline = "one interval after the first response"
        rows.append((name, shown["target"] or "tracked", shown["calendar"], deadline))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines.append("")
    lines.extend(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
    return "\n".join(lines) + "\n"
