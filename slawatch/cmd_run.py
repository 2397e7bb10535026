"""``slawatch run``: the daemon in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from config import load_config
from incidents.signing import load_signer
from incidents.store import StoreError
from probe.clock import SystemClock
from slawatch.daemon import build
from slawatch.errors import InputError
from slawatch.logs import setup_logging
from slawatch.runtime import EVENT_LOOPS, freeze_gc, loop_factory, tune_gc
from slawatch.web import make_app


def register(subparsers: Any) -> None:
    """Add ``run``."""
    run = subparsers.add_parser("run", help="run the monitor (probes, classifier, store, web)")
    run.add_argument("--config", required=True, help="the config file")
    run.add_argument("--log-format", choices=["auto", "json", "text"], default="auto")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    run.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default="auto",
        help="auto: uvloop where installed (the default), else asyncio's own loop",
    )
    run.add_argument(
        "--attempt-log",
        metavar="PATH",
        type=Path,
        help="append every attempt the daemon judges (probes and ingested traffic) to PATH "
        "as JSON Lines, the input of 'replay'; written once a second, reopened on SIGHUP",
    )
    run.set_defaults(func=run_daemon)


def run_daemon(args: argparse.Namespace) -> int:
    """Load the config, then run the daemon until it is told to stop."""
    loaded = load_config(args.config)
    # A signing key that cannot be read fails at start-up, not at the first bundle.
    load_signer(loaded)
    try:
        daemon = build(
            loaded, clock=SystemClock(), registry=CollectorRegistry(), attempt_log=args.attempt_log
        )
    except OSError as exc:
        raise InputError(
            f"--attempt-log: cannot open {args.attempt_log}: {exc.strerror or exc}"
        ) from None
    setup_logging(level=args.log_level, fmt=args.log_format, redactor=lambda: daemon.loaded.redact)

    try:
        factory = loop_factory(args.event_loop)
    except ImportError:
        raise InputError("--event-loop uvloop: uvloop is not installed") from None
    tune_gc()

    async def main() -> None:
        # SIGHUP reloads the config; SIGTERM and SIGINT stop gracefully; SIGUSR1 hands a
        # fleet's finalizer lease over (a planned failover).
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
        loop.add_signal_handler(signal.SIGUSR1, daemon.request_hand_over)
        loop.add_signal_handler(signal.SIGTERM, daemon.stop)
        loop.add_signal_handler(signal.SIGINT, daemon.stop)
        await daemon.run(web_app=make_app(daemon), on_started=freeze_gc)

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    except StoreError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"{loaded.source}: server.listen: {exc.strerror or exc}") from None
    return 0
