"""``slawatch demo``: the real daemon against a simulated provider that goes down and comes back."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml
from prometheus_client import CollectorRegistry

from classifier.signals import IncidentSignal, Opened, Reopened, Restored, Upgraded
from config import load_config
from config.timetext import format_time
from probe.clock import Clock, SystemClock
from slawatch.daemon import build
from slawatch.logs import setup_logging
from slawatch.simulator import SimulatedProvider
from slawatch.web import make_app

# The story, in seconds at speed 1: healthy, a hard outage, then healthy until restored.
HEALTHY_S = 15
OUTAGE_S = 45
# Demo thresholds (the production defaults are 60 s critical, 120 s to recover): short
# enough to tell the whole story in about two minutes, long enough to show each rule.
CRITICAL_AFTER_S = 30
RECOVER_AFTER_S = 30
AFTER_RESTORE_S = 3


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    demo = subparsers.add_parser(
        "demo", help="watch an incident open, upgrade and recover against a simulated provider"
    )
    demo.add_argument(
        "--speed", type=float, default=1.0, help="shorten the story and thresholds by this factor"
    )
    demo.add_argument("--listen", default="127.0.0.1:9797", help="where the web server listens")
    demo.add_argument(
        "--dir", default="slawatch-demo", help="where the demo writes its config and store"
    )
    demo.set_defaults(func=run_demo)


def demo_config(provider: SimulatedProvider, listen: str, speed: float) -> dict[str, Any]:
    """The config the demo daemon runs: one service with an API and an SMTP probe."""

    def seconds(value: float) -> str:
        return f"{max(1, round(value / speed))}s"

    return {
        "prober": {"id": "demo"},
        "server": {"listen": listen},
        "storage": {"path": "slawatch.db"},
        "services": [
            {
                "name": "demo-provider",
                "environment": "production",
                "sla": {
                    "policy": "bird-email-enterprise",
                    "calendar": "us-eastern",
                    "update_every": "30m",
                },
                "classifier": {
                    "critical_after": seconds(CRITICAL_AFTER_S),
                    "recover_after": seconds(RECOVER_AFTER_S),
                    "degraded_min_seconds": max(2, round(10 / speed)),
                },
                "api": [{"name": "account", "url": provider.api_url, "timeout": "2s"}],
                "smtp": [
                    {
                        "name": "inject",
                        "host": provider.host,
                        "port": provider.smtp_port,
                        "tls": "none",
                        "mode": "envelope",
                        "mail_from": "probe@demo.invalid",
                        "rcpt_to": "sink@demo.invalid",
                        "timeout": "2s",
                    }
                ],
            }
        ],
    }


class Story:
    """Prints what happens, as it happens, relative to the start of the demo."""

    def __init__(self, clock: Clock, out: TextIO) -> None:
        self.clock = clock
        self.out = out
        self.start = clock.time()
        self.incidents: list[str] = []
        self.restored = asyncio.Event()

    def say(self, text: str) -> None:
        """Print one line with the elapsed time."""
        elapsed = int(self.clock.time() - self.start)
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}", file=self.out, flush=True)

    def signal(self, sig: IncidentSignal) -> None:
        """Narrate a classifier signal."""
        if isinstance(sig, Opened):
            self.incidents.append(sig.incident)
            self.say(
                f"INCIDENT OPENED {sig.incident}: severity {sig.severity} "
                f"({sig.provider_severity}), unavailable since {format_time(sig.started_at)}"
            )
        elif isinstance(sig, Upgraded):
            self.say(
                f"INCIDENT UPGRADED {sig.incident}: severity {sig.from_severity} -> "
                f"{sig.to_severity} ({sig.provider_severity}): persistent Unavailability"
            )
        elif isinstance(sig, Restored):
            self.say(
                f"INCIDENT RESTORED {sig.incident}: available again since "
                f"{format_time(sig.restored_at)}"
            )
            self.restored.set()
        elif isinstance(sig, Reopened):
            self.say(f"INCIDENT REOPENED {sig.incident}: severity {sig.severity}")


async def demo(args: argparse.Namespace, out: TextIO, clock: Clock) -> int:
    """Run the story; returns 0 once the incident has opened, upgraded and been restored."""
    speed = max(1.0, float(args.speed))
    folder = Path(args.dir)
    await asyncio.to_thread(_fresh_folder, folder)
    provider = SimulatedProvider()
    await provider.start()
    config_path = folder / "slawatch.yaml"
    config_path.write_text(
        yaml.safe_dump(demo_config(provider, args.listen, speed), sort_keys=False)
    )
    loaded = load_config(config_path)
    story = Story(clock, out)
    daemon = build(loaded, clock=clock, registry=CollectorRegistry(), on_signal=story.signal)
    base = daemon.loaded.config.server.base_url
    story.say(
        f"simulated provider: API {provider.api_url}, SMTP {provider.host}:{provider.smtp_port}"
    )
    story.say(f"status page {base}/  metrics {base}/metrics  API {base}/api/v1/incidents")
    runner = asyncio.create_task(daemon.run(web_app=make_app(daemon)))
    try:
        story.say(f"provider healthy; probing API and SMTP every second ({HEALTHY_S / speed:.0f}s)")
        await asyncio.sleep(HEALTHY_S / speed)
        provider.healthy = False
        story.say(
            f"provider DOWN: API answers 503, SMTP greets with 421 ({OUTAGE_S / speed:.0f}s); "
            f"critical after {CRITICAL_AFTER_S / speed:.0f}s unavailable"
        )
        await asyncio.sleep(OUTAGE_S / speed)
        provider.healthy = True
        story.say(f"provider back; restore after {RECOVER_AFTER_S / speed:.0f}s available")
        await asyncio.wait_for(story.restored.wait(), timeout=(RECOVER_AFTER_S + 30) / speed + 15)
        await asyncio.sleep(AFTER_RESTORE_S)
    finally:
        daemon.stop()
        await runner
        await provider.close()
    story.say("demo finished")
    # The command as the user typed it (e.g. .venv/bin/slawatch from `make run`).
    command = sys.argv[0] if Path(sys.argv[0]).name == "slawatch" else "slawatch"
    for incident in story.incidents:
        print(
            f"\nEvidence for the ticket:\n"
            f"  {command} evidence {incident} --config {config_path} --format md\n"
            f"  {command} incidents show {incident} --config {config_path}",
            file=out,
        )
    return 0


def _fresh_folder(folder: Path) -> None:
    """An empty demo folder: each run starts with a new store."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def run_demo(args: argparse.Namespace) -> int:
    """Entry point of ``slawatch demo``."""
    setup_logging(level="error", fmt="text")
    try:
        return asyncio.run(demo(args, sys.stdout, SystemClock()))
    except TimeoutError:
        print("demo: the incident was not restored in time", file=sys.stderr)
        return 1
