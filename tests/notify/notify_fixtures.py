"""Shared pieces of the notification tests: a config, an incident's story, a writer process.

Run as ``python -m tests.notify.notify_fixtures STORE COUNT`` it is the writer that the
restart tests kill.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from classifier.signals import Opened, Reopened, Restored, Upgraded
from config import LoadedConfig
from incidents.lifecycle import signal_event, user_event
from incidents.store import Batch, IncidentStore
from notify.rules import NotifyRules
from probe.clock import ManualClock
from sla.terms import freeze_terms
from slawatch.follower import EventFollower
from tests.support.configs import config_from_yaml
from tests.support.timeline import BUSINESS_T0 as T0

INCIDENT = "bird-1"
SECRET = "hook-secret-0123456789"
ROUTING_KEY = "pd-routing-key-abcdef"
BASE_URL = "https://slawatch.example.com"
EVENTS = (
    "opened",
    "upgraded",
    "restored",
    "reopened",
    "resolved",
    "clock_due",
    "clock_breached",
    "prober_unhealthy",
)

# The notifications of :func:`story`, in the order it commits them.
STORY = [
    "opened",
    "upgraded",
    "clock_due",
    "prober_unhealthy",
    "clock_breached",
    "restored",
    "reopened",
    "resolved",
]

CONFIG = """\
prober: {{id: eu-1}}
services:
  - name: bird
    sla: {{policy: bird-email-enterprise, calendar: us-eastern, update_every: 1h}}
  - name: other
notify:
{channels}
"""


def config(channels: str, environ: dict[str, str] | None = None) -> LoadedConfig:
    """A loaded config with the ``bird`` service and the given ``notify:`` lines."""
    return config_from_yaml(CONFIG.format(channels=channels), environ=environ)


def http_channels(base: str) -> str:
    """One channel of each HTTP type, all pointing at one receiver's paths."""
    return (
        f'  - {{name: hook, type: webhook, url: "{base}/hook", secret: "{SECRET}"}}\n'
        f'  - {{name: chat, type: slack, url: "{base}/slack"}}\n'
        f'  - {{name: pager, type: pagerduty, url: "{base}/pd", routing_key: "{ROUTING_KEY}"}}\n'
        f'  - {{name: am, type: alertmanager, url: "{base}"}}\n'
    )


def story(loaded: LoadedConfig, rules: NotifyRules, store: IncidentStore) -> None:
    """Commit an incident's life, each step with its notifications, as the daemon would.

    Opened at severity 2, upgraded to 1 (15 min first-response clock), due soon, breached,
    restored, reopened, resolved; and a misconfigured probe in between.
    """
    terms = freeze_terms(loaded.config.service("bird"), loaded.catalog, loaded.calendars(), at=T0)
    name = terms.name_of
    # The daemon's path: events committed, then followed from the log into the outbox.
    follower = EventFollower(rules)
    follower.start(store)

    def commit(*events: Any) -> None:
        store.commit(Batch(events=list(events)))
        follower.sync(store)

    def clocks(now: float) -> None:
        follower.refresh(now, ["bird"])
        follower.flush(store)

    signal = Opened("bird", INCIDENT, 2, name(2), T0, T0 + 10, ("api",))
    commit(signal_event(signal, terms, source="classifier"))
    upgraded = Upgraded("bird", INCIDENT, 2, 1, name(1), T0, T0 + 60, ("api",))
    commit(signal_event(upgraded, terms, source="classifier"))
    # First response is due 15 min after detection (T0+910): due soon from T0+310.
    clocks(T0 + 360)
    clocks(T0 + 361)  # nothing new
    follower.queue(
        rules.prober_health(
            "misconfigured:bird/send",
            healthy=False,
            now=T0 + 400,
            detail="misconfigured: bad URL",
            service="bird",
            target="send",
        )
    )
    follower.queue(rules.prober_health("misconfigured:bird/send", healthy=False, now=T0 + 401))
    commit()
    clocks(T0 + 961)  # breached
    restored = Restored("bird", INCIDENT, 1, T0 + 1000, T0 + 1120, ("api",))
    commit(signal_event(restored, terms, source="classifier"))
    reopened = Reopened("bird", INCIDENT, 1, 1, name(1), T0 + 1200, T0 + 1210, T0 + 1000, ("api",))
    commit(signal_event(reopened, terms, source="classifier"))
    resolved = user_event(
        INCIDENT, "resolved", at=T0 + 2000, source="cli", recorded_at=T0 + 2000, note="fixed"
    )
    commit(resolved)


def zero_sleep(clock: ManualClock) -> Callable[[float], Awaitable[None]]:
    """Tenacity's sleep for tests: no real wait, the manual clock moves instead."""

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    return sleep


def writer_command(store: Path, count: int) -> list[str]:
    """The writer process: commits ``count`` notifications one batch at a time, then hangs."""
    return [sys.executable, "-m", __name__, str(store), str(count)]


def _write(store_path: str, count: int) -> None:
    """Writer-process body: commit ``count`` notifications one batch at a time, then hang."""
    from incidents.outbox import Notification
    from incidents.sqlite_store import SqliteStore

    with SqliteStore(store_path) as store:
        for n in range(count):
            note = Notification(
                key=f"k{n}:hook",
                channel="hook",
                event="prober_unhealthy",
                created_at=T0 + n,
                document={"event": "prober_unhealthy", "n": n, "idempotency_key": f"k{n}:hook"},
                next_at=T0 + n,
            )
            store.enqueue([note])
            print(f"committed {n}", flush=True)
        sys.stdin.read()  # wait to be killed


if __name__ == "__main__":
    _write(sys.argv[1], int(sys.argv[2]))
