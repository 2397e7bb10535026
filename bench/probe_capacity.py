"""Probe capacity: `slawatch run` with N HTTP targets at 1 Hz on one core, everything running.

The daemon runs pinned to one core; the target server (which counts the requests it
receives) and a Prometheus scraping the daemon's ``/metrics`` every 15 s run on the other
core(s). Besides the N targets, a second service probes a simulated provider's API and
SMTP port that goes down and up every 20-40 s, so verdicts, incidents and store writes
happen during the window. ``--contend`` adds a process spinning on the daemon's core.

Prints per target count: probes/s counted by the target server, launches missed
(``slawatch_missed_launches_total``), launch lag p50/p99 (from the lag histogram's
buckets; the p99 goal of 20 ms is a bucket bound, so "p99 <= 20 ms" is exact) and its
largest non-empty bucket, the share of a core used and CPU ms per probe, and peak RSS.

    .venv/bin/python bench/probe_capacity.py --targets 2000 --seconds 60 [--contend]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

# The checkout on the path: `python bench/probe_capacity.py` finds the packages and tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_common import (
    TargetServer,
    api_target,
    bucket_quantile,
    buckets,
    busy_process,
    daemon_metrics,
    load_average,
    metric_sum,
    pinned,
    prober_cores,
    proc_stats,
    slawatch_daemon,
    target_server,
    wait_http,
)
from tests.support.daemon import Daemon, http_get, stop_process
from tests.support.servers import HOST, free_port

LAG = "slawatch_scheduler_lag_seconds"


def _sleep(seconds: float) -> None:
    time.sleep(max(0.0, seconds))


def _config(server: TargetServer, targets: int, connection: str, per_target: bool) -> Any:
    api = [
        api_target(f"t{i}", server.url(i), "1s") | {"connection": connection}
        for i in range(targets)
    ]
    provider = {
        "name": "provider",
        "sla": {"policy": "bird-email-enterprise", "calendar": "uk"},
        "classifier": {"critical_after": "10s", "recover_after": "5s", "degraded_min_seconds": 3},
        "api": [api_target("send", f"{server.api_url}", "1s")],
        "smtp": [
            {
                "name": "inject",
                "host": HOST,
                "port": server.smtp_port,
                "tls": "none",
                "timeout": "1s",
            }
        ],
    }
    return {
        "metrics": {"per_target": per_target},
        "services": [{"name": "bench", "api": api}, provider],
    }


@contextlib.contextmanager
def _scraper(folder: Path, daemon: Daemon, cores: set[int] | None) -> Iterator[str]:
    """A Prometheus scraping the daemon every 15 s (on the server's cores), if installed."""
    binary = shutil.which("prometheus")
    if binary is None:
        yield "no Prometheus installed: nothing scraped"
        return
    port = free_port()
    config = {
        "global": {"scrape_interval": "15s", "scrape_timeout": "10s"},
        "scrape_configs": [
            {"job_name": "slawatch", "static_configs": [{"targets": [f"{HOST}:{daemon.port}"]}]}
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (folder / "prometheus.log").open("ab")
    with pinned(cores):
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address={HOST}:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=log,
        )
    try:
        wait_http(f"http://{HOST}:{port}/-/ready", proc, 60, "prometheus")
        yield f"Prometheus scraping /metrics every 15 s (port {port})"
    finally:
        stop_process(proc)
        log.close()


def _scrapes(prom_line: str) -> int:
    """How many scrapes of slawatch Prometheus made (0 without one)."""
    if "port" not in prom_line:
        return 0
    port = prom_line.rsplit("port ", 1)[1].rstrip(")")
    status, body = http_get(f"http://{HOST}:{port}/metrics")
    if status != 200:
        return 0
    for line in body.decode().splitlines():
        if line.startswith('prometheus_target_interval_length_seconds_count{interval="15s"}'):
            return int(float(line.split()[-1]))
    return 0


def run(folder: Path, targets: int, args: argparse.Namespace) -> dict[str, Any]:
    """One measured window with ``targets`` targets."""
    prober, others = prober_cores()
    with target_server(folder, smtp=True, flap=(20.0, 40.0), cores=others) as server:
        config = _config(server, targets, args.connection, not args.aggregate)
        daemon = slawatch_daemon(folder, config)
        event_loop = ("--event-loop", args.event_loop)
        daemon.args = (*daemon.args, *event_loop)
        with pinned(prober):
            daemon.start(timeout=120)
        try:
            with _scraper(folder, daemon, others) as scraping, contextlib.ExitStack() as stack:
                if args.contend and prober:
                    stack.enter_context(busy_process(min(prober)))
                _sleep(args.warmup)
                load0 = load_average()
                before, scrapes0 = daemon_metrics(daemon), _scrapes(scraping)
                # Each count's moment is the middle of its request (the server answers when
                # it can), so the window is what the two counts span.
                asked = time.perf_counter()
                stats0, served0 = proc_stats(daemon.pid), server.served()
                start = (asked + time.perf_counter()) / 2
                _sleep(asked + args.seconds - time.perf_counter())
                asked = time.perf_counter()
                stats1, served1 = proc_stats(daemon.pid), server.served()
                window = (asked + time.perf_counter()) / 2 - start
                after, scrapes1 = daemon_metrics(daemon), _scrapes(scraping)
                load1 = load_average()
                hwm = _peak_rss_mb(daemon.pid)
        finally:
            status = daemon.stop()
        if status != 0:
            raise RuntimeError(f"slawatch exited with status {status}:\n{daemon.log_tail()}")
    lag0, lag1 = buckets(before, LAG), buckets(after, LAG)
    launched = lag1.get(float("inf"), 0) - lag0.get(float("inf"), 0)
    within_20ms = lag1.get(0.02, 0) - lag0.get(0.02, 0)
    # The smallest bucket bound every launch of the window was within.
    worst = min((b for b in sorted(lag1) if lag1[b] - lag0.get(b, 0) >= launched), default=0.0)
    probes = served1 - served0
    cpu = stats1.cpu_s - stats0.cpu_s
    opened = metric_sum(after, "slawatch_incidents_opened_total") - metric_sum(
        before, "slawatch_incidents_opened_total"
    )
    return {
        "targets": targets,
        "probes_per_s": probes / window,
        "missed": metric_sum(after, "slawatch_missed_launches_total")
        - metric_sum(before, "slawatch_missed_launches_total"),
        "lag_p50_ms": bucket_quantile(lag0, lag1, 0.5) * 1000,
        "lag_p99_ms": bucket_quantile(lag0, lag1, 0.99) * 1000,
        "within_20ms": within_20ms / launched if launched else float("nan"),
        "lag_max": f"<= {worst * 1000:g} ms",
        "core": cpu / window,
        "cpu_ms_per_probe": cpu / probes * 1000 if probes else float("nan"),
        "rss_mb": hwm,
        "incidents": opened,
        "scrapes": scrapes1 - scrapes0,
        "load": f"{load0} → {load1}",
    }


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    """Run each target count and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window (60 s)")
    parser.add_argument("--warmup", type=float, default=20.0, help="before the window (20 s)")
    parser.add_argument("--connection", choices=["fresh", "reuse"], default="fresh")
    parser.add_argument("--contend", action="store_true", help="a busy process on the core")
    parser.add_argument("--aggregate", action="store_true", help="metrics: {per_target: false}")
    parser.add_argument("--event-loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    args = parser.parse_args()
    print(
        "| targets | probes/s (target side) | missed | lag p50 | lag p99 | launches <= 20 ms "
        "| worst lag | core | CPU ms / probe | peak RSS | incidents | scrapes | load avg |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for targets in args.targets:
        with tempfile.TemporaryDirectory(prefix="slawatch-capacity-") as tmp:
            r = run(Path(tmp), targets, args)
        print(
            f"| {r['targets']} | {r['probes_per_s']:.1f} | {r['missed']:.0f} "
            f"| {r['lag_p50_ms']:.1f} ms | {r['lag_p99_ms']:.1f} ms | {r['within_20ms']:.2%} "
            f"| {r['lag_max']} | {r['core']:.0%} | {r['cpu_ms_per_probe']:.3f} "
            f"| {r['rss_mb']:.1f} MB | {r['incidents']:.0f} | {r['scrapes']} | {r['load']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
