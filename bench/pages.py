"""How long the pages and their JSON endpoints take with 50 services and 1,000 incidents.

A daemon on a manual clock serves a real SQLite store (in a temporary folder) holding,
per service, 90 days of runs for api, smtp and combined with a flapping hour (a run
every ten seconds) and 20 incidents; the web app runs on a loopback test server. Each
endpoint is fetched ``--rounds`` times; the figures are the median and the worst, with
the size of the answer as sent (compressed where the server compresses) and unpacked.

    .venv/bin/python bench/pages.py [--rounds 5] [--browser /usr/bin/chromium]

With ``--browser``, Chromium (driven by Playwright) also loads the status page and the
figure is the time until the page's load event, and until its first poll is applied.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from classifier.signals import Opened, Restored  # noqa: E402
from classifier.verdict import OUTCOMES  # noqa: E402
from config import LoadedConfig, load_config_text  # noqa: E402
from incidents.lifecycle import signal_event  # noqa: E402
from incidents.model import Run  # noqa: E402
from incidents.sqlite_store import SqliteStore  # noqa: E402
from incidents.store import Batch  # noqa: E402
from probe.clock import ManualClock  # noqa: E402
from sla.terms import freeze_terms  # noqa: E402
from slawatch.daemon import Daemon  # noqa: E402
from slawatch.web import make_app  # noqa: E402

NOW = 1_795_176_000  # 2026-11-20T12:00:00Z
SERVICES = 50
PER_SERVICE = 20
DAY = 86_400
OK = (1,) + (0,) * (len(OUTCOMES) - 1)
DOWN = (0, 0, 1) + (0,) * (len(OUTCOMES) - 3)


def _config() -> LoadedConfig:
    target = {"url": "http://127.0.0.1:9/", "timeout": "1s"}
    smtp = {"host": "127.0.0.1", "port": 9, "tls": "none", "timeout": "1s"}
    services = [
        {
            "name": f"svc{index:02d}",
            "sla": {"policy": "megaport", "calendar": "uk", "commitment": 99.95},
            "api": [{"name": "send", **target}],
            "smtp": [{"name": "inject", **smtp}],
        }
        for index in range(SERVICES)
    ]
    text = yaml.safe_dump({"prober": {"id": "bench-1"}, "services": services})
    return load_config_text(text, "bench.yaml", {})


def _runs(name: str) -> list[Run]:
    """90 days available, with a flapping hour 30 minutes ago (a run every 10 s)."""
    out = []
    flap = NOW - 5400
    for channel in ("api", "smtp", "combined"):
        out.append(Run(name, channel, "available", NOW - 90 * DAY, flap - 1, OK))
        for step in range(360):
            first = flap + step * 10
            verdict, counts = ("unavailable", DOWN) if step % 2 else ("available", OK)
            out.append(Run(name, channel, verdict, first, first + 9, counts))
        out.append(Run(name, channel, "available", flap + 3600, NOW - 1, OK))
    return out


def _fill(store: SqliteStore, loaded: LoadedConfig) -> None:
    for index in range(SERVICES):
        name = f"svc{index:02d}"
        service = loaded.config.service(name)
        events = []
        for number in range(PER_SERVICE):
            started = NOW - (number + 1) * 12 * 3600 - index
            terms = freeze_terms(service, loaded.catalog, loaded.calendars(), at=started)
            ident = f"{name}-{number:02d}"
            events.append(
                signal_event(
                    Opened(name, ident, 1, "Severity 1", started, started + 60, ("api",)),
                    terms,
                    source="replay",
                )
            )
            if number:
                events.append(
                    signal_event(
                        Restored(name, ident, 1, started + 600, started + 720, ("api",)),
                        terms,
                        source="replay",
                    )
                )
        store.commit(Batch(events=events, runs=_runs(name)))


async def _measure(client: TestClient, path: str, rounds: int) -> str:
    times, sent, size = [], 0, 0
    for _ in range(rounds):
        start = time.perf_counter()
        response = await client.get(path, headers={"Accept-Encoding": "gzip"})
        body = await response.read()
        times.append(time.perf_counter() - start)
        if response.status != 200:
            raise SystemExit(f"{path}: HTTP {response.status}")
        sent = len(body)
        # wbits 47: gzip or zlib, whichever the server chose.
        size = (
            len(zlib.decompressobj(47).decompress(body))
            if "Content-Encoding" in response.headers
            else sent
        )
    return (
        f"| `{path}` | {statistics.median(times) * 1000:.0f} | {max(times) * 1000:.0f} "
        f"| {sent / 1024:.0f} | {size / 1024:.0f} |"
    )


async def _browser(executable: str, url: str, rounds: int) -> str:
    """Chromium loading the status page: to its load event, and to its first poll's update."""
    from playwright.async_api import async_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    args += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    loads, polls = [], []
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=executable, args=args)
        try:
            for _ in range(rounds):
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                start = time.perf_counter()
                await page.goto(url, wait_until="load", timeout=120_000)
                loads.append(time.perf_counter() - start)
                await page.wait_for_event(
                    "response", lambda r: "/api/v1/status" in r.url, timeout=60_000
                )
                # The update is applied by the script when the answer is in: wait two frames.
                await page.evaluate(
                    "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
                )
                polls.append(time.perf_counter() - start)
                await page.close()
        finally:
            await browser.close()
    return (
        f"Chromium, status page: load event {statistics.median(loads) * 1000:.0f} ms "
        f"(worst {max(loads) * 1000:.0f}), first poll applied "
        f"{statistics.median(polls) * 1000:.0f} ms (the poll runs 3 s after load)"
    )


async def main(rounds: int, browser: str | None) -> None:
    """Fill a store, serve it, fetch every page and endpoint, print a Markdown table."""
    loaded = _config()
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "bench.db")
        started = time.perf_counter()
        _fill(store, loaded)
        filled = time.perf_counter() - started
        daemon = Daemon(loaded, clock=ManualClock(NOW), registry=CollectorRegistry(), store=store)
        await daemon.open_store()
        client = TestClient(TestServer(make_app(daemon)), auto_decompress=False)
        await client.start_server()
        try:
            print(f"store filled in {filled:.1f} s; load average {os.getloadavg()}")
            print("| endpoint | median ms | worst ms | sent KiB | body KiB |")
            print("|---|---|---|---|---|")
            for path in (
                "/",
                "/?page=5",
                "/api/v1/status",
                f"/api/v1/status?since={NOW - 4}",
                "/api/v1/services/svc00/timeline",
                "/incidents/svc00-00",
                "/incidents/svc07-03",
                "/reports",
                "/reports?month=2026-11&page=20",
                "/api/v1/reports?format=csv",
                "/api/v1/incidents?page=1",
                "/api/v1/incidents",
            ):
                print(await _measure(client, path, rounds))
            if browser:
                print(await _browser(browser, str(client.make_url("/")), rounds))
            print(f"load average {os.getloadavg()}")
        finally:
            await client.close()
            store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--browser", help="a Chromium executable, e.g. /usr/bin/chromium")
    options = parser.parse_args()
    asyncio.run(main(options.rounds, options.browser))
