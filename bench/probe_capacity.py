"""Probe capacity: N HTTP targets at 1 attempt/s against a local server in another process.

Prints, per target count and connection mode, the achieved attempts per second, the
launch lag (p50/p99/max) and the prober's CPU seconds per 1,000 attempts.

    .venv/bin/python bench/probe_capacity.py --targets 100 500 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

# The checkout on the path: `python bench/probe_capacity.py` finds the packages and tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.model import HttpTarget
from probe.attempt import Attempt
from probe.base import ProbeContext
from probe.clock import SystemClock
from probe.http import HttpProbe
from probe.scheduler import Launch, Scheduler
from tests.support.daemon import stop_process
from tests.support.servers import free_port

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class _Http(asyncio.Protocol):
    """A minimal HTTP/1.1 responder: one fixed 200 per request, keep-alive unless asked to close."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            close = b"connection: close" in head.lower()
            self.transport.write(
                RESPONSE
                if not close
                else RESPONSE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
            )
            if close:
                self.transport.close()
                return


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def _wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            time.sleep(0.025)
    raise RuntimeError("bench server did not start")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def _run(port: int, targets: int, mode: str, seconds: float) -> dict[str, float]:
    clock = SystemClock()
    attempts: list[Attempt] = []
    launches: list[Launch] = []
    async with ProbeContext(clock=clock, prober="bench") as context:
        probes = [
            HttpProbe(
                HttpTarget(
                    name=f"t{i}",
                    url=f"http://127.0.0.1:{port}/t{i}",
                    timeout=2.0,
                    connection=mode,  # type: ignore[arg-type]
                ),
                service="bench",
                context=context,
            )
            for i in range(targets)
        ]
        scheduler = Scheduler(clock=clock, on_attempt=attempts.append, on_launch=launches.append)
        scheduler.replace(probes)
        # One second of warm-up (connection pools, first DNS), then the measured window.
        await clock.sleep_until(math.floor(clock.time()) + 2)
        attempts.clear()
        launches.clear()
        cpu0, wall0 = time.process_time(), clock.time()
        await clock.sleep_until(wall0 + seconds)
        cpu = time.process_time() - cpu0
        done = [a for a in attempts if a.started_at < wall0 + seconds]
        lags = [launch.lag for launch in launches]
        await scheduler.stop()
    outcomes = Counter(str(a.outcome) for a in done)
    return {
        "attempts_per_s": len(done) / seconds,
        "ok_share": outcomes["ok"] / max(1, len(done)),
        "lag_p50_ms": _percentile(lags, 0.50) * 1000,
        "lag_p99_ms": _percentile(lags, 0.99) * 1000,
        "lag_max_ms": max(lags) * 1000,
        "cpu_s_per_1000": cpu / max(1, len(done)) * 1000,
        "failures": float(len(done) - outcomes["ok"]),
    }


def main() -> None:
    """Run the benchmark matrix and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--modes", nargs="+", default=["fresh", "reuse"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
        return
    print("| targets | connection | attempts/s | ok | lag p50 | lag p99 | lag max | CPU s / 1000 |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for targets in args.targets:
        for mode in args.modes:
            port = free_port()
            server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
            try:
                _wait_listening(port)
                r = asyncio.run(_run(port, targets, mode, args.seconds))
            finally:
                stop_process(server)
            print(
                f"| {targets} | {mode} | {r['attempts_per_s']:.1f} | {r['ok_share']:.1%} "
                f"| {r['lag_p50_ms']:.1f} ms | {r['lag_p99_ms']:.1f} ms | {r['lag_max_ms']:.1f} ms "
                f"| {r['cpu_s_per_1000']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
