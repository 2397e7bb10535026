"""Side by side: slawatch, blackbox_exporter+Prometheus and plain probe loops, N targets at 1 Hz.

Every pipeline probes the same loopback HTTP server (another process on the other core,
always 200) once a second per target with a fresh connection per probe, pinned to one
core, one pipeline at a time; the pipelines take turns within each round (``--rounds``)
and each target count, so a noisy machine affects all alike, and each waits for the last
one's TIME_WAIT sockets to clear (``--drain``). Probes are counted where they
arrive: the server's own request counter over the window. CPU is utime+stime from /proc
over the window; memory is RSS at the end of it.

- slawatch: `slawatch run` with N API targets (judging, metrics and the store included);
  jitter is the launch lag, p50/p99 from ``slawatch_scheduler_lag_seconds`` bucket deltas.
- blackbox: ``prometheus-blackbox-exporter`` with an ``http_2xx`` module, scraped through
  ``/probe`` by a real Prometheus at ``scrape_interval: 1s`` (both on the prober's core;
  CPU is both); jitter is ``prometheus_target_interval_length_seconds`` p1/p99 minus 1 s.
  ``--blackbox-cores all`` lets the two run on every core instead: at 1,000 targets one
  core cannot hold them (their scrapes time out and the pipeline collapses), and CPU per
  probe is only comparable when a pipeline keeps up.
- aiohttp / uvloop: the Python floor, a plain loop (this file, ``--floor``) that GETs each
  target once a second at a fixed offset with aiohttp and reads the body, nothing else, on
  asyncio's loop or on uvloop; a slot more than a second late is skipped.
- fresh: the same loop on uvloop with slawatch's own fresh-connection client
  (``probe/fresh.py``) in place of aiohttp: what slawatch's network work costs alone, so
  slawatch ÷ fresh is what judging, metrics and the store add.

Ratios are CPU per probe against blackbox and against each floor, from the medians of
the rounds.

    .venv/bin/python bench/vs_blackbox.py --targets 500 1000 2000 --seconds 45 --warmup 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

# The checkout on the path: `python bench/vs_blackbox.py` finds the packages and tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_common import (
    TargetServer,
    api_target,
    bucket_quantile,
    buckets,
    daemon_metrics,
    drain_time_wait,
    load_average,
    parse_metrics,
    pinned,
    prober_cores,
    proc_stats,
    slawatch_daemon,
    target_server,
    wait_http,
)
from tests.support.daemon import http_get, stop_process
from tests.support.servers import HOST, free_port

INTERVAL = "prometheus_target_interval_length_seconds"
BLACKBOX_MODULES = {
    "modules": {
        "http_2xx": {
            "prober": "http",
            "timeout": "1s",
            "http": {"preferred_ip_protocol": "ip4", "ip_protocol_fallback": False},
        }
    }
}


PIPELINES = ("slawatch", "blackbox", "aiohttp", "uvloop", "fresh")
NAMES = {
    "slawatch": "slawatch",
    "blackbox": "blackbox_exporter + Prometheus",
    "aiohttp": "plain aiohttp loop",
    "uvloop": "plain aiohttp loop on uvloop",
    "fresh": "plain fresh-client loop on uvloop",
}


@dataclass(frozen=True, slots=True)
class Result:
    """One pipeline's figures over the measuring window."""

    pipeline: str
    targets: int
    probes_per_s: float
    cpu_s: float
    cpu_per_1000: float
    jitter: str
    rss_mb: float
    load: str


@dataclass(frozen=True, slots=True)
class Window:
    """What a measured window saw: probes counted by the server, CPU, RSS and load."""

    probes: int
    seconds: float
    cpu_s: float
    rss_mb: float
    load: str


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.perf_counter()))


def _measure(server: TargetServer, pids: list[int], args: argparse.Namespace) -> Window:
    """Warm up, then count the server's requests and the processes' CPU over the window."""
    _sleep_until(time.perf_counter() + args.warmup)
    load0 = load_average()
    # The server answers its count when it can (later on a busy machine): each count's
    # moment is taken as the middle of its request, so the window is what the counts span.
    asked = time.perf_counter()
    served0, cpu0 = server.served(), [proc_stats(pid) for pid in pids]
    start = (asked + time.perf_counter()) / 2
    _sleep_until(asked + args.seconds)
    asked = time.perf_counter()
    cpu1, served1 = [proc_stats(pid) for pid in pids], server.served()
    window = (asked + time.perf_counter()) / 2 - start
    return Window(
        probes=served1 - served0,
        seconds=window,
        cpu_s=sum(b.cpu_s - a.cpu_s for a, b in zip(cpu0, cpu1, strict=True)),
        rss_mb=sum(s.rss_mb for s in cpu1),
        load=f"{load0} → {load_average()}",
    )


def _result(pipeline: str, targets: int, w: Window, jitter: str) -> Result:
    return Result(
        pipeline=pipeline,
        targets=targets,
        probes_per_s=w.probes / w.seconds,
        cpu_s=w.cpu_s,
        cpu_per_1000=w.cpu_s / w.probes * 1000 if w.probes else math.nan,
        jitter=jitter,
        rss_mb=w.rss_mb,
        load=w.load,
    )


def run_slawatch(
    folder: Path, server: TargetServer, targets: int, args: argparse.Namespace
) -> Result:
    """Measure `slawatch run` with ``targets`` API targets."""
    api = [api_target(f"t{i}", server.url(i), "1s") for i in range(targets)]
    daemon = slawatch_daemon(folder, {"services": [{"name": "bench", "api": api}]})
    try:
        with pinned(args.prober):
            daemon.start(timeout=120)
        before = daemon_metrics(daemon)
        window = _measure(server, [daemon.pid], args)
        after = daemon_metrics(daemon)
    finally:
        status = daemon.stop()
    if status != 0:
        raise RuntimeError(f"slawatch exited with status {status}:\n{daemon.log_tail()}")
    lag0, lag1 = (
        buckets(before, "slawatch_scheduler_lag_seconds"),
        buckets(after, "slawatch_scheduler_lag_seconds"),
    )
    p50, p99 = (bucket_quantile(lag0, lag1, q) * 1000 for q in (0.5, 0.99))
    return _result("slawatch", targets, window, f"launch lag p50 {p50:.1f} ms, p99 {p99:.1f} ms")


def prometheus_config(server: TargetServer, targets: int, exporter_port: int) -> dict[str, object]:
    """Prometheus scraping every target through the exporter's /probe each second."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1m"},
        "scrape_configs": [
            {
                "job_name": "blackbox",
                "metrics_path": "/probe",
                "params": {"module": ["http_2xx"]},
                "static_configs": [{"targets": [server.url(i) for i in range(targets)]}],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": f"{HOST}:{exporter_port}"},
                ],
            }
        ],
    }


def run_blackbox(
    folder: Path, server: TargetServer, targets: int, args: argparse.Namespace
) -> Result:
    """Measure blackbox_exporter driven by Prometheus over ``targets`` targets."""
    exporter_port, prom_port = free_port(), free_port()
    (folder / "blackbox.yml").write_text(yaml.safe_dump(BLACKBOX_MODULES))
    (folder / "prometheus.yml").write_text(
        yaml.safe_dump(prometheus_config(server, targets, exporter_port))
    )
    log = (folder / "blackbox.log").open("ab")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with pinned(args.prober if args.blackbox_cores == "prober" else None):
            exporter = subprocess.Popen(
                [
                    args.blackbox,
                    f"--config.file={folder / 'blackbox.yml'}",
                    f"--web.listen-address={HOST}:{exporter_port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=log,
            )
            procs.append(exporter)
            wait_http(f"http://{HOST}:{exporter_port}/metrics", exporter, 30, "blackbox_exporter")
            prometheus = subprocess.Popen(
                [
                    args.prometheus,
                    f"--config.file={folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={folder / 'tsdb'}",
                    f"--web.listen-address={HOST}:{prom_port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=log,
            )
            procs.append(prometheus)
            wait_http(f"http://{HOST}:{prom_port}/-/ready", prometheus, 60, "prometheus")
        window = _measure(server, [p.pid for p in procs], args)
        after = parse_metrics(http_get(f"http://{HOST}:{prom_port}/metrics")[1].decode())
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        log.close()
    quantiles = {
        labels["quantile"]: value
        for labels, value in after.get(INTERVAL, [])
        if labels.get("interval") == "1s"
    }
    low, high = ((quantiles.get(q, math.nan) - 1) * 1000 for q in ("0.01", "0.99"))
    jitter = f"scrape interval p1 {low:+.1f} ms, p99 {high:+.1f} ms"
    return _result("blackbox", targets, window, jitter)


def run_floor(
    folder: Path, server: TargetServer, targets: int, args: argparse.Namespace, loop: str
) -> Result:
    """Measure a plain probe loop (``--floor``): aiohttp on either loop, or the fresh client."""
    command = [sys.executable, str(Path(__file__).resolve()), "--floor", loop]
    ports = ",".join(str(p) for p in server.http_ports)
    command += ["--ports", ports, "--targets", str(targets)]
    log = (folder / "floor.log").open("ab")
    with pinned(args.prober):
        proc = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        window = _measure(server, [proc.pid], args)
    finally:
        stop_process(proc)
        log.close()
    return _result(loop, targets, window, "-")


def fresh_get(url: str) -> Callable[[], Awaitable[None]]:
    """One GET of ``url`` with slawatch's fresh-connection client, body read, no judging."""
    from yarl import URL

    from probe.fresh import NeedleScan, Request, Trace, exchange

    request = Request(URL(url), method="GET", headers={}, body=None, tls=None, server_name=None)

    async def get() -> None:
        async with asyncio.timeout(1.0):
            await exchange(request, NeedleScan(b""), Trace(0.0, time.perf_counter))

    return get


async def floor_loop(ports: list[int], targets: int, client: str) -> None:
    """N targets, each GET once a second at a fixed offset, fresh connection, body read."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, force_close=True, use_dns_cache=False)
    timeout = aiohttp.ClientTimeout(total=1.0)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        def aiohttp_get(url: str) -> Callable[[], Awaitable[None]]:
            async def get() -> None:
                async with session.get(url) as response:
                    await response.read()

            return get

        async def one(get: Callable[[], Awaitable[None]]) -> None:
            with contextlib.suppress(Exception):
                await get()

        async def lane(i: int) -> None:
            url = f"http://{HOST}:{ports[i % len(ports)]}/t{i}"  # as TargetServer.url
            get = fresh_get(url) if client == "fresh" else aiohttp_get(url)
            digest = hashlib.sha256(url.encode()).digest()
            offset = int.from_bytes(digest[:8], "big") / 2.0**64
            wall = loop.time()  # the floor keeps its own schedule, monotonic
            k = math.ceil(wall - offset)
            tasks: set[asyncio.Task[None]] = set()
            while True:
                # Behind schedule: skip to the current slot rather than launch every missed
                # one at once (a burst an overloaded loop never recovers from).
                k = max(k, math.ceil(loop.time() - offset - 1.0))
                await asyncio.sleep(max(0.0, k + offset - loop.time()))
                task = loop.create_task(one(get))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                k += 1

        await asyncio.gather(*(lane(i) for i in range(targets)))


def main() -> None:
    """Run every pipeline for each target count, in turns, and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--seconds", type=float, default=45.0, help="measuring window (45 s)")
    parser.add_argument("--warmup", type=float, default=15.0, help="before the window (15 s)")
    parser.add_argument("--rounds", type=int, default=1, help="turns of every pipeline (1)")
    parser.add_argument(
        "--drain",
        type=float,
        default=75.0,
        help="before each pipeline, wait up to this long for TIME_WAIT sockets to clear (75 s)",
    )
    parser.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    parser.add_argument(
        "--blackbox",
        default=shutil.which("prometheus-blackbox-exporter") or "prometheus-blackbox-exporter",
    )
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument(
        "--blackbox-cores",
        choices=["prober", "all"],
        default="prober",
        help="where blackbox_exporter and Prometheus run: the prober's core (default) or all",
    )
    parser.add_argument("--floor", choices=["aiohttp", "uvloop", "fresh"], help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        if args.floor in ("uvloop", "fresh"):
            import uvloop

            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        else:
            runner = asyncio.Runner()
        ports = [int(p) for p in args.ports.split(",")]
        with runner:
            runner.run(floor_loop(ports, args.targets[0], args.floor))
        return
    args.prober, servers = prober_cores()
    print(
        "| targets | round | pipeline | probes/s | CPU s | CPU s / 1000 probes | jitter "
        "| RSS MB | load avg |"
    )
    print("|---:|---:|---|---:|---:|---:|---|---:|---|")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="slawatch-vs-blackbox-") as tmp:
        root = Path(tmp)
        with target_server(root, cores=servers) as server:
            for targets in args.targets:
                for turn in range(args.rounds):
                    # Each round starts with another pipeline, so none always goes first.
                    order = args.pipelines[turn % len(args.pipelines) :]
                    order += args.pipelines[: turn % len(args.pipelines)]
                    for pipeline in order:
                        drain_time_wait(args.drain)
                        folder = root / f"{pipeline}-{targets}-{turn}"
                        folder.mkdir()
                        if pipeline == "slawatch":
                            r = run_slawatch(folder, server, targets, args)
                        elif pipeline == "blackbox":
                            r = run_blackbox(folder, server, targets, args)
                        else:
                            r = run_floor(folder, server, targets, args, pipeline)
                        results.append(r)
                        print(
                            f"| {r.targets} | {turn + 1} | {NAMES[r.pipeline]} "
                            f"| {r.probes_per_s:.1f} | {r.cpu_s:.2f} | {r.cpu_per_1000:.3f} "
                            f"| {r.jitter} | {r.rss_mb:.1f} | {r.load} |",
                            flush=True,
                        )
    _print_ratios(results, args.targets)


def _print_ratios(results: list[Result], counts: list[int]) -> None:
    """Medians of CPU per probe, and slawatch's against each other pipeline's."""
    print()
    print("| targets | pipeline | median CPU s / 1000 probes | median probes/s | slawatch ÷ this |")
    print("|---:|---|---:|---:|---:|")
    for targets in counts:
        medians = {}
        for pipeline in PIPELINES:
            mine = [r for r in results if r.targets == targets and r.pipeline == pipeline]
            if mine:
                medians[pipeline] = (
                    statistics.median(r.cpu_per_1000 for r in mine),
                    statistics.median(r.probes_per_s for r in mine),
                )
        ours = medians.get("slawatch", (math.nan, math.nan))[0]
        for pipeline, (cpu, rate) in medians.items():
            print(
                f"| {targets} | {NAMES[pipeline]} | {cpu:.3f} | {rate:.1f} | {ours / cpu:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
