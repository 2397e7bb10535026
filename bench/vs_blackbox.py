"""Side by side: slawatch and blackbox_exporter+Prometheus probing the same N targets at 1 Hz.

Both pipelines probe the same loopback HTTP server (another process, always 200), one
pipeline at a time. slawatch: `slawatch run` with N API targets (fresh connection per
attempt, like blackbox_exporter); probes are the delta of ``slawatch_attempts_total``,
jitter is the launch lag (p50/p99 from ``slawatch_scheduler_lag_seconds`` bucket deltas).
blackbox: ``prometheus-blackbox-exporter`` with an ``http_2xx`` module, scraped through
``/probe`` by a real Prometheus at ``scrape_interval: 1s``; probes are the delta of
``prometheus_target_interval_length_seconds_count``, jitter is that summary's p1/p99 minus
1 s. CPU is utime+stime from /proc over the window (exporter plus Prometheus for
blackbox); memory is RSS at the end of the window.

    .venv/bin/python bench/vs_blackbox.py --targets 100 500 --seconds 45 --warmup 15
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
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
    load_average,
    metric_sum,
    parse_metrics,
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


@dataclass(frozen=True, slots=True)
class Result:
    """One pipeline's figures over the measuring window."""

    pipeline: str
    targets: int
    probes_per_s: float
    ok_share: float
    cpu_s: float
    cpu_per_1000: float
    jitter: str
    rss_mb: float
    load: str


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.perf_counter()))


def run_slawatch(
    folder: Path, server: TargetServer, targets: int, args: argparse.Namespace
) -> Result:
    """Measure `slawatch run` with ``targets`` API targets."""
    api = [api_target(f"t{i}", server.url(i), "1s") for i in range(targets)]
    daemon = slawatch_daemon(folder, {"services": [{"name": "bench", "api": api}]})
    try:
        daemon.start(timeout=60)
        _sleep_until(time.perf_counter() + args.warmup)
        before, stats0 = daemon_metrics(daemon), proc_stats(daemon.pid)
        start = time.perf_counter()
        _sleep_until(start + args.seconds)
        stats1, after = proc_stats(daemon.pid), daemon_metrics(daemon)
        window = time.perf_counter() - start
        load = load_average()
    finally:
        status = daemon.stop()
    if status != 0:
        raise RuntimeError(f"slawatch exited with status {status}:\n{daemon.log_tail()}")
    probes = metric_sum(after, "slawatch_attempts_total") - metric_sum(
        before, "slawatch_attempts_total"
    )
    ok = metric_sum(after, "slawatch_attempts_total", outcome="ok") - metric_sum(
        before, "slawatch_attempts_total", outcome="ok"
    )
    lag0, lag1 = (
        buckets(before, "slawatch_scheduler_lag_seconds"),
        buckets(after, "slawatch_scheduler_lag_seconds"),
    )
    p50, p99 = (bucket_quantile(lag0, lag1, q) * 1000 for q in (0.5, 0.99))
    cpu = stats1.cpu_s - stats0.cpu_s
    return Result(
        pipeline="slawatch",
        targets=targets,
        probes_per_s=probes / window,
        ok_share=ok / probes if probes else math.nan,
        cpu_s=cpu,
        cpu_per_1000=cpu / probes * 1000 if probes else math.nan,
        jitter=f"launch lag p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        rss_mb=stats1.rss_mb,
        load=load,
    )


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


def _query(prom_port: int, expr: str) -> float:
    """One instant PromQL query with a scalar-like answer (NaN when empty)."""
    url = f"http://{HOST}:{prom_port}/api/v1/query?query={urllib.parse.quote(expr)}"
    status, body = http_get(url)
    if status != 200:
        return math.nan
    result = json.loads(body)["data"]["result"]
    return float(result[0]["value"][1]) if result else math.nan


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
        prom_metrics = f"http://{HOST}:{prom_port}/metrics"
        _sleep_until(time.perf_counter() + args.warmup)
        before = parse_metrics(http_get(prom_metrics)[1].decode())
        cpu0 = [proc_stats(p.pid) for p in procs]
        start = time.perf_counter()
        _sleep_until(start + args.seconds)
        cpu1 = [proc_stats(p.pid) for p in procs]
        after = parse_metrics(http_get(prom_metrics)[1].decode())
        window = time.perf_counter() - start
        load = load_average()
        ok_share = _query(prom_port, 'avg(avg_over_time(probe_success{job="blackbox"}[30s]))')
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        log.close()
    probes = metric_sum(after, f"{INTERVAL}_count", interval="1s") - metric_sum(
        before, f"{INTERVAL}_count", interval="1s"
    )
    quantiles = {
        labels["quantile"]: value
        for labels, value in after.get(INTERVAL, [])
        if labels.get("interval") == "1s"
    }
    low, high = ((quantiles.get(q, math.nan) - 1) * 1000 for q in ("0.01", "0.99"))
    cpu = sum(b.cpu_s - a.cpu_s for a, b in zip(cpu0, cpu1, strict=True))
    return Result(
        pipeline="blackbox_exporter + Prometheus",
        targets=targets,
        probes_per_s=probes / window,
        ok_share=ok_share,
        cpu_s=cpu,
        cpu_per_1000=cpu / probes * 1000 if probes else math.nan,
        jitter=f"scrape interval p1 {low:+.1f} ms, p99 {high:+.1f} ms",
        rss_mb=sum(s.rss_mb for s in cpu1),
        load=load,
    )


def main() -> None:
    """Run both pipelines for each target count and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--seconds", type=float, default=45.0, help="measuring window (45 s)")
    parser.add_argument("--warmup", type=float, default=15.0, help="before the window (15 s)")
    parser.add_argument(
        "--pipelines", nargs="+", choices=["slawatch", "blackbox"], default=["slawatch", "blackbox"]
    )
    parser.add_argument(
        "--blackbox",
        default=shutil.which("prometheus-blackbox-exporter") or "prometheus-blackbox-exporter",
    )
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    args = parser.parse_args()
    print(
        "| targets | pipeline | probes/s | ok | CPU s | CPU s / 1000 probes | jitter "
        "| RSS MB | load avg |"
    )
    print("|---:|---|---:|---:|---:|---:|---|---:|---|")
    with tempfile.TemporaryDirectory(prefix="slawatch-vs-blackbox-") as tmp:
        root = Path(tmp)
        with target_server(root) as server:
            for targets in args.targets:
                for pipeline in args.pipelines:
                    folder = root / f"{pipeline}-{targets}"
                    folder.mkdir()
                    run = run_slawatch if pipeline == "slawatch" else run_blackbox
                    r = run(folder, server, targets, args)
                    print(
                        f"| {r.targets} | {r.pipeline} | {r.probes_per_s:.1f} | {r.ok_share:.1%} "
                        f"| {r.cpu_s:.2f} | {r.cpu_per_1000:.3f} | {r.jitter} | {r.rss_mb:.1f} "
                        f"| {r.load} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
