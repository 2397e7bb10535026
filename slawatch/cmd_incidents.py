"""The ``incidents`` command: list, show and record events on the incidents of a store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from config import LoadedConfig, load_config
from config.timetext import TimeTextError, format_time, parse_time
from incidents.lifecycle import LifecycleError, fold, user_event
from incidents.model import INCIDENT_STATES, USER_KINDS
from incidents.outbox import OUTBOX_STATES, Notification
from incidents.sqlite_store import SqliteStore, store_path
from incidents.store import Batch, IncidentStore, StoreError
from incidents.view import incident_view
from probe.clock import SystemClock
from sla.events import EventError
from slawatch.errors import InputError
from slawatch.storage import open_store as configured_store


def add_store_options(parser: argparse.ArgumentParser, *, config_required: bool) -> None:
    """``--config`` (whose storage.path names the store) and ``--store`` (overrides it)."""
    parser.add_argument(
        "--config", required=config_required, help="config file (its storage.path is the store)"
    )
    parser.add_argument("--store", help="the store file, instead of the config's storage.path")


def write_output(text: str, output: str | None) -> int:
    """Print ``text``, or write it to the ``-o`` file (a located error if it cannot be)."""
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{output}: cannot write: {exc.strerror or exc}") from None
    return 0


def open_store(args: argparse.Namespace, loaded: LoadedConfig | None = None) -> IncidentStore:
    """The existing store named by ``--store`` (a file) or by the config's ``storage``."""
    if args.store is not None:
        return _existing_file(Path(args.store))
    if args.config is None:
        raise InputError("give --config FILE (or --store DB) to find the incident store")
    loaded = loaded or load_config(args.config)
    if loaded.config.storage.url is None:
        return _existing_file(store_path(loaded.source, loaded.config.storage.path))
    try:
        return configured_store(loaded)
    except StoreError as exc:
        raise InputError(str(exc)) from None


def _existing_file(path: Path) -> IncidentStore:
    if not path.is_file():
        raise InputError(f"{path}: no incident store there (has 'slawatch run' written one?)")
    try:
        return SqliteStore(path)
    except StoreError as exc:
        raise InputError(str(exc)) from None


def register(subparsers: Any) -> None:
    """Add ``incidents list|show|event``."""
    parser = subparsers.add_parser("incidents", help="list, show and update incidents")
    sub = parser.add_subparsers(dest="incidents_command", metavar="SUBCOMMAND", required=True)

    listing = sub.add_parser("list", help="list incidents")
    listing.add_argument("--state", choices=[*INCIDENT_STATES, "all"], default="all")
    listing.add_argument("--service", help="only this service's incidents")
    listing.add_argument("--format", choices=["text", "json"], default="text")
    add_store_options(listing, config_required=False)
    listing.set_defaults(func=list_incidents)

    show = sub.add_parser("show", help="one incident with its events and SLA clocks")
    show.add_argument("id", metavar="ID")
    show.add_argument("--format", choices=["text", "json"], default="text")
    add_store_options(show, config_required=False)
    show.set_defaults(func=show_incident)

    event = sub.add_parser("event", help="record an event on an incident")
    event.add_argument("id", metavar="ID")
    event.add_argument("kind", metavar="KIND", choices=USER_KINDS, help=", ".join(USER_KINDS))
    event.add_argument("--at", help="when it happened, RFC 3339 (default: now)")
    event.add_argument("--note", default="", help="free text (the resolution, for resolved)")
    event.add_argument("--ticket", help="ticket id or URL (ticket_opened)")
    event.add_argument("--severity", type=int, choices=(1, 2, 3), help="new level")
    event.add_argument(
        "--next-update", help="the provider's promised next update, RFC 3339 (provider_*)"
    )
    add_store_options(event, config_required=False)
    event.set_defaults(func=record_event)


def list_incidents(args: argparse.Namespace) -> int:
    """Print the incidents of the store, oldest first."""
    state = None if args.state == "all" else args.state
    with open_store(args) as store:
        found = store.incidents(state=state, service=args.service)
    if args.format == "json":
        sys.stdout.write(json.dumps([i.to_json() for i in found], indent=2) + "\n")
        return 0
    if not found:
        print("no incidents")
        return 0
    rows = [("ID", "SERVICE", "STATE", "SEV", "NAME", "STARTED", "RESTORED", "TICKET")]
    rows += [
        (
            i.id,
            i.service,
            i.state,
            str(i.severity),
            i.provider_severity,
            format_time(i.started_at),
            "-" if i.restored_at is None else format_time(i.restored_at),
            i.ticket or "-",
        )
        for i in found
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def show_incident(args: argparse.Namespace) -> int:
    """Print one incident, its events and its SLA clocks as of now."""
    now = SystemClock().time()
    with open_store(args) as store:
        events = store.events(args.id)
        incident = fold(events)
        if incident is None:
            raise InputError(f"no incident {args.id!r} in {store.where}")
        notes = store.notifications(incident=args.id)
    data = incident_view(incident, events, now, with_events=True)
    if args.format == "json":
        data["notifications"] = [_notification_json(n) for n in notes]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 0
    for key in ("id", "service", "state", "severity", "provider_severity", "channels"):
        value = data[key]
        print(f"{key:<18}{', '.join(value) if isinstance(value, list) else value}")
    for key in ("started_at", "detected_at", "restored_at", "resolved_at", "ticket"):
        print(f"{key:<18}{data[key] or '-'}")
    print("\nevents")
    for event in events:
        extra = [
            f"severity {event.severity}" if event.severity is not None else "",
            f"ticket {event.ticket}" if event.ticket else "",
            f"next update {format_time(event.next_update_at)}" if event.next_update_at else "",
            event.note,
        ]
        detail = "  ".join(x for x in extra if x)
        print(f"  {format_time(event.at)}  {event.kind:<19}by {event.source:<11}{detail}".rstrip())
    print("\nclocks")
    if data.get("clocks_error"):
        print(f"  {data['clocks_error']}")
    for name, clock in data["clocks"].items():
        print(
            f"  {name:<15}{clock['state']:<9}deadline {clock['deadline'] or '-'}"
            f"  target {clock['target'] or 'tracked'} ({clock['calendar']})"
        )
    _print_notifications(notes)
    return 0


def _notification_json(note: Notification) -> dict[str, Any]:
    return {
        "key": note.key,
        "channel": note.channel,
        "event": note.event,
        "state": note.state,
        "tries": note.tries,
        "created_at": format_time(note.created_at),
        "done_at": None if note.done_at is None else format_time(note.done_at),
        "last_error": note.last_error,
    }


def _print_notifications(notes: list[Notification]) -> None:
    """A count per state, then every dead-lettered notification (they need a person)."""
    print("\nnotifications")
    if not notes:
        print("  none")
        return
    counts = {state: sum(n.state == state for n in notes) for state in OUTBOX_STATES}
    print("  " + ", ".join(f"{count} {state}" for state, count in counts.items()))
    for note in notes:
        if note.state == "dead":
            print(
                f"  DEAD  {note.channel:<12}{note.event:<17}{note.tries} tries  "
                f"{note.last_error}  key {note.key}".rstrip()
            )


def _time(text: str | None, option: str, default: float) -> float:
    if text is None:
        return default
    try:
        return parse_time(text)
    except TimeTextError as exc:
        raise InputError(f"{option}: {exc}") from None


def record_event(args: argparse.Namespace) -> int:
    """Append one user event to an incident (safe while the daemon writes to the store)."""
    now = SystemClock().time()
    at = _time(args.at, "--at", now)
    next_update = None if args.next_update is None else _time(args.next_update, "--next-update", 0)
    try:
        event = user_event(
            args.id,
            args.kind,
            at=at,
            source="cli",
            recorded_at=now,
            note=args.note,
            ticket=args.ticket,
            severity=args.severity,
            next_update_at=next_update,
        )
    except (LifecycleError, EventError) as exc:
        raise InputError(f"incidents event: {exc}") from None
    with open_store(args) as store:
        try:
            (incident,) = store.commit(Batch(events=[event]))
        except LifecycleError as exc:
            raise InputError(f"incidents event: {exc}") from None
    print(f"{incident.id}: {args.kind} recorded at {format_time(at)}; now {incident.state}")
    return 0
