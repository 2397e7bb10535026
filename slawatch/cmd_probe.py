"""The ``probe`` command: run the configured probes for N seconds, print attempts as JSON Lines."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from config import load_config
from config.loader import LoadedConfig
from probe.attempt import Attempt
from probe.base import CONTROL_SERVICE
from probe.clock import SystemClock
from probe.registry import build_probes, probe_context
from probe.scheduler import Scheduler
from slawatch.errors import InputError


def register(subparsers: Any) -> None:
    """Add the ``probe`` command."""
    parser = subparsers.add_parser(
        "probe",
        help="run the configured probes for N seconds, printing attempts as JSON Lines",
        description="Run the probes of a config (all, or one service/target) for --count "
        "seconds and print every attempt as one JSON line: the input format of 'replay'.",
    )
    parser.add_argument("--config", required=True, help="the config file")
    parser.add_argument(
        "--service", help=f"probe only this service ({CONTROL_SERVICE} for the control checks)"
    )
    parser.add_argument("--target", help="probe only the targets of this name")
    parser.add_argument("--count", type=int, default=5, help="seconds to probe (default 5)")
    parser.set_defaults(func=run_probe)


def run_probe(args: argparse.Namespace) -> int:
    """Load the config, probe for ``--count`` seconds, print each attempt as it finishes."""
    if args.count < 1:
        raise InputError(f"--count: expected a whole number of seconds >= 1, got {args.count}")
    loaded = load_config(args.config)
    config = loaded.config
    known = {s.name for s in config.services} | ({CONTROL_SERVICE} if config.control else set())
    if args.service is not None and args.service not in known:
        raise InputError(
            f"--service: no service {args.service!r} in {loaded.source} "
            f"(known: {', '.join(sorted(known)) or 'none'})"
        )
    asyncio.run(_probe(args, loaded))
    return 0


async def _probe(args: argparse.Namespace, loaded: LoadedConfig) -> None:
    clock = SystemClock()
    services = None if args.service is None else {args.service}
    targets = None if args.target is None else {args.target}
    async with probe_context(loaded, clock) as context:
        probes = build_probes(loaded.config, context, services=services, targets=targets)
        if not probes:
            raise InputError(f"nothing to probe in {loaded.source} with the given filters")
        scheduler = Scheduler(clock=clock, on_attempt=_print, prober=context.prober)
        start = clock.time()
        scheduler.replace(probes, since=start)
        try:
            # Launch slots lie on a lattice: any --count seconds hold exactly count*rate.
            await clock.sleep_until(start + args.count)
        finally:
            await scheduler.stop()


def _print(attempt: Attempt) -> None:
    sys.stdout.write(json.dumps(attempt.to_json(), ensure_ascii=False) + "\n")
    sys.stdout.flush()
