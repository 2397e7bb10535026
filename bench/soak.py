"""Soak: `slawatch run` for a while against targets with random faults; asserts no leak.

A target server in another process answers each request at random with 200, 503, a hang
past the timeout or a TCP reset; a simulated provider adds an API target and two SMTP
targets that flap between healthy and down (incidents open and restore). Every
``--sample`` seconds it prints the daemon's RSS, open descriptors (sockets apart; sockets
in CLOSE_WAIT, and how many of those are still there seconds later), CPU, attempts and
missed launches, launch lag (p50/p99 from the bucket deltas of
``slawatch_scheduler_lag_seconds``) and store size. After the run it asserts that, after
the warm-up, RSS grew less than ``--max-rss-growth``, descriptors other than sockets stayed
flat, no socket stayed in CLOSE_WAIT, and sockets never exceeded what the attempts in
flight can hold (exit status 1 otherwise).

    .venv/bin/python bench/soak.py                          # 10 min, 500 targets
    .venv/bin/python bench/soak.py --seconds 30 --targets 100 --sample 5 --warmup 10
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The checkout on the path: `python bench/soak.py` finds the packages and tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_common import (
    api_target,
    bucket_quantile,
    buckets,
    daemon_metrics,
    load_average,
    metric_sum,
    proc_stats,
    slawatch_daemon,
    store_bytes,
    target_server,
)
from tests.support.daemon import Daemon

LAG = "slawatch_scheduler_lag_seconds"
MISSED = "slawatch_missed_launches_total"
# Probes of the "mail" service: its API target and two SMTP targets.
MAIL_TARGETS = 3
# Targets per service: pooled seconds of a hundred targets, like a provider with many calls.
PER_SERVICE = 100


@dataclass(frozen=True, slots=True)
class Sample:
    """The daemon at one sampling point, with rates over the interval since the previous one."""

    at_s: float
    rss_mb: float
    fds: int
    sockets: int
    close_wait: int
    # Of those, still in CLOSE_WAIT a few seconds later (past any attempt's deadline).
    stuck: int
    cpu_pct: float
    attempts_per_s: float
    missed: float
    failed_share: float
    lag_p50_ms: float
    lag_p99_ms: float
    store_mb: float
    # Incidents opened or reopened since the start (the lifecycle is exercised too).
    incidents: float
    load: str


def soak_config(server: Any, targets: int, timeout: float) -> dict[str, Any]:
    """Services of up to 100 faulty HTTP targets each, plus a flapping API+SMTP service."""
    services: list[dict[str, Any]] = []
    seconds = f"{timeout:g}s"
    for first in range(0, targets, PER_SERVICE):
        api = [
            api_target(f"t{i}", server.url(i), seconds)
            for i in range(first, min(targets, first + PER_SERVICE))
        ]
        services.append(
            {
                "name": f"svc{first // PER_SERVICE}",
                "sla": {"policy": "megaport", "calendar": "uk"},
                "api": api,
            }
        )
    smtp = [
        {
            "name": f"inject-{k}",
            "host": "127.0.0.1",
            "port": server.smtp_port,
            "tls": "none",
            "timeout": seconds,
        }
        for k in (1, 2)
    ]
    services.append(
        {
            "name": "mail",
            "sla": {"policy": "bird-email-enterprise", "calendar": "uk"},
            "classifier": {"critical_after": "20s", "recover_after": "10s"},
            "api": [api_target("account", server.api_url, seconds)],
            "smtp": smtp,
        }
    )
    return {"services": services}


def _fmt(value: float, spec: str) -> str:
    return "n/a" if math.isnan(value) else format(value, spec)


def print_series(samples: list[Sample], warmup: float) -> None:
    """Print the samples as one Markdown table."""
    print(
        "| t | RSS MB | fds (sockets, close-wait/stuck) | CPU | attempts/s | missed | failed "
        "| lag p50 | lag p99 "
        "| store MB | incidents | load avg |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in samples:
        mark = "" if s.at_s > warmup else " (warm-up)"
        print(
            f"| {s.at_s:.0f} s{mark} | {s.rss_mb:.1f} "
            f"| {s.fds} ({s.sockets}, {s.close_wait}/{s.stuck}) "
            f"| {s.cpu_pct:.0f} % | {s.attempts_per_s:.1f} | {s.missed:.0f} | {s.failed_share:.1%} "
            f"| {_fmt(s.lag_p50_ms, '.1f')} ms "
            f"| {_fmt(s.lag_p99_ms, '.1f')} ms | {s.store_mb:.2f} | {s.incidents:.0f} | {s.load} |",
            flush=True,
        )


def check_leaks(samples: list[Sample], args: argparse.Namespace) -> list[str]:
    """The leak assertions over the samples after the warm-up: the failures, if any."""
    after = [s for s in samples if s.at_s >= args.warmup]
    if len(after) < 2:
        return [f"too few samples after the {args.warmup:.0f} s warm-up ({len(after)})"]
    base, last = after[0], after[-1]
    problems = []
    growth = last.rss_mb / base.rss_mb - 1
    print(
        f"RSS {base.rss_mb:.1f} MB at {base.at_s:.0f} s -> {last.rss_mb:.1f} MB at "
        f"{last.at_s:.0f} s ({growth:+.1%}; limit {args.max_rss_growth:.0%})"
    )
    if growth >= args.max_rss_growth:
        problems.append(
            f"RSS grew {growth:.1%} after the warm-up (limit {args.max_rss_growth:.0%})"
        )
    # Files, pipes and the store must not move. Sockets swing with the attempts in flight
    # (a hang holds one for the whole timeout, a loaded machine holds many), so they are
    # judged by what a leak leaves behind: sockets still in CLOSE_WAIT seconds after the
    # peer closed them (past every deadline), or more sockets than the
    # attempts in flight can hold (max_in_flight defaults to ceil(timeout) + 1 per target).
    files = [s.fds - s.sockets for s in after]
    lingering = max(s.stuck for s in after)
    in_flight = (math.ceil(args.timeout) + 1) * (args.targets + MAIL_TARGETS)
    bound = in_flight + 2 * args.fd_slack
    most = max(s.sockets for s in after)
    print(
        f"non-socket fds {base.fds - base.sockets} -> {min(files)}..{max(files)} "
        f"(slack {args.fd_slack}); stuck in CLOSE_WAIT at most {lingering} "
        f"(slack {args.fd_slack}); "
        f"sockets {min(s.sockets for s in after)}..{most} (bound {bound})"
    )
    if max(abs(f - files[0]) for f in files) > args.fd_slack:
        problems.append(f"non-socket descriptors moved {min(files)}..{max(files)}")
    if lingering > args.fd_slack:
        problems.append(f"{lingering} sockets stuck in CLOSE_WAIT (slack {args.fd_slack})")
    if most > bound:
        problems.append(f"{most} sockets open, more than {bound} attempts in flight can hold")
    return problems


def soak(args: argparse.Namespace) -> int:
    """Run the soak and print the series; the exit status."""
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="slawatch-soak-") as tmp:
        folder = Path(tmp)
        with target_server(
            folder, fault_share=args.fault_share, smtp=True, seed=args.seed
        ) as server:
            daemon = slawatch_daemon(folder, soak_config(server, args.targets, args.timeout))
            status: int | None = None
            try:
                daemon.start(timeout=60)
                status = _sample_loop(daemon, args, samples)
            finally:
                exit_status = daemon.stop()
                if status is None or exit_status != 0:
                    print(daemon.log_tail(), file=sys.stderr)
    print_series(samples, args.warmup)
    problems = [f"daemon exited early with status {status}"] if status else []
    if exit_status not in (0, None):
        problems.append(f"daemon exited with status {exit_status} on SIGTERM")
    problems += check_leaks(samples, args)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _sample_loop(daemon: Daemon, args: argparse.Namespace, samples: list[Sample]) -> int:
    """Sample every ``args.sample`` seconds until ``args.seconds``; 0, or the early exit status."""
    if daemon.proc is None:
        raise RuntimeError("slawatch is not started")
    start = time.perf_counter()
    before = daemon_metrics(daemon)
    stats_before = proc_stats(daemon.pid)
    tick_before = start
    for k in range(1, math.ceil(args.seconds / args.sample) + 1):
        at = min(k * args.sample, args.seconds)
        time.sleep(max(0.0, start + at - time.perf_counter()))
        if daemon.proc.poll() is not None:
            return daemon.proc.returncode
        now = time.perf_counter()
        after = daemon_metrics(daemon)
        stats = proc_stats(daemon.pid)
        if stats.close_wait:
            time.sleep(min(args.timeout + 2, args.sample / 2))
        interval = now - tick_before
        attempts = metric_sum(after, "slawatch_attempts_total") - metric_sum(
            before, "slawatch_attempts_total"
        )
        ok = metric_sum(after, "slawatch_attempts_total", outcome="ok") - metric_sum(
            before, "slawatch_attempts_total", outcome="ok"
        )
        lag_before, lag_after = buckets(before, LAG), buckets(after, LAG)
        samples.append(
            Sample(
                at_s=at,
                rss_mb=stats.rss_mb,
                fds=stats.fds,
                sockets=stats.sockets,
                close_wait=len(stats.close_wait),
                stuck=len(stats.close_wait & proc_stats(daemon.pid).close_wait),
                cpu_pct=(stats.cpu_s - stats_before.cpu_s) / interval * 100,
                attempts_per_s=attempts / interval,
                missed=metric_sum(after, MISSED) - metric_sum(before, MISSED),
                failed_share=1 - ok / attempts if attempts else math.nan,
                lag_p50_ms=bucket_quantile(lag_before, lag_after, 0.50) * 1000,
                lag_p99_ms=bucket_quantile(lag_before, lag_after, 0.99) * 1000,
                store_mb=store_bytes(daemon.folder) / 1e6,
                incidents=metric_sum(after, "slawatch_incidents_opened_total"),
                load=load_average(),
            )
        )
        print(f"sampled {at:.0f}/{args.seconds:.0f} s", file=sys.stderr, flush=True)
        before, stats_before, tick_before = after, stats, now
    return 0


def main() -> None:
    """Parse the arguments and run the soak."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to run (600)")
    parser.add_argument("--targets", type=int, default=500, help="faulty HTTP targets (500)")
    parser.add_argument("--sample", type=float, default=60.0, help="sampling interval (60 s)")
    parser.add_argument(
        "--warmup", type=float, help="samples before this are not judged (seconds / 5)"
    )
    parser.add_argument(
        "--fault-share", type=float, default=0.3, help="503 + hang + reset share (0.3)"
    )
    parser.add_argument("--timeout", type=float, default=1.0, help="probe timeout (1 s; hangs 3 s)")
    parser.add_argument("--max-rss-growth", type=float, default=0.20, help="after warm-up (0.20)")
    parser.add_argument("--fd-slack", type=int, default=3, help="descriptor drift allowed (3)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = args.seconds / 5
    sys.exit(soak(args))


if __name__ == "__main__":
    main()
