"""Shared benchmark parts: a faulty HTTP server process, `slawatch run` as a subprocess, /proc.

`slawatch run` is driven by the tests' daemon harness (``tests.support.daemon``). The target
server runs in its own process (``python bench/bench_common.py serve ...``) so its CPU is
not counted against the prober. Each request to ``/t<i>`` is answered, chosen
at random per request (each target is probed once a period, so per target per period):
``200``; ``503``; a hang past the probe timeout (the connection is held, then closed);
a TCP reset. With ``--smtp`` the process also runs the simulated provider (its HTTP API
and SMTP port), switched between healthy and down at random intervals.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# The checkout on the path: run as a script (the target server), this module finds tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.daemon import Daemon, http_get, stop_process, wait_for, write_config
from tests.support.paths import ROOT
from tests.support.servers import HOST, free_port

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\n"
    b"Content-Type: text/plain\r\n\r\nunavailable"
)
CLOSE = b"\r\nConnection: close\r\n\r\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# -- the target server (runs in its own process) ------------------------------------------


@dataclass(frozen=True, slots=True)
class Faults:
    """How requests fail: the share of each fault, and how long a hang holds the connection."""

    error: float = 0.0
    hang: float = 0.0
    reset: float = 0.0
    hang_s: float = 3.0


class _Target(asyncio.Protocol):
    """A minimal HTTP/1.1 responder that answers, hangs or resets each request at random.

    Every request is counted (``served``); ``GET /_count`` answers the count so far (and is
    not counted), so benchmarks count probes where they arrive, not where they are sent.
    """

    def __init__(self, faults: Faults, rng: random.Random, served: list[int]) -> None:
        self.faults = faults
        self.rng = rng
        self.served = served
        self.buffer = b""
        self.hold: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.hold is not None:
            self.hold.cancel()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or self.hold is not None:
            return
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            if head.startswith(b"GET /_count "):
                count = str(self.served[0]).encode()
                transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(count), count)
                )
                transport.close()
                return
            self.served[0] += 1
            draw = self.rng.random()
            f = self.faults
            if draw < f.hang:
                # Hold past the prober's timeout; closed later so the server leaks nothing.
                self.hold = asyncio.get_running_loop().call_later(f.hang_s, transport.close)
                return
            if draw < f.hang + f.reset:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                return
            body = UNAVAILABLE if draw < f.hang + f.reset + f.error else OK
            if b"connection: close" in head.lower():
                transport.write(body.replace(b"\r\n\r\n", CLOSE, 1))
                transport.close()
                return
            transport.write(body)


async def _flap(provider: Any, rng: random.Random, low: float, high: float) -> None:
    """Switch the simulated provider between healthy and down at random intervals."""
    while True:
        await asyncio.sleep(rng.uniform(low, high))
        provider.healthy = not provider.healthy


async def _serve(args: argparse.Namespace) -> None:
    from slawatch.simulator import SimulatedProvider

    share = args.fault_share
    faults = Faults(error=share / 3, hang=share / 3, reset=share / 3, hang_s=args.hang)
    rng = random.Random(args.seed)  # noqa: S311  (fault choice, not security)
    loop = asyncio.get_running_loop()
    served = [0]
    servers = [
        await loop.create_server(
            lambda: _Target(faults, rng, served), HOST, port, backlog=4096, reuse_address=True
        )
        for port in [args.port] + [0] * (args.ports - 1)
    ]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    ready: dict[str, Any] = {"http_port": args.port, "http_ports": ports}
    provider = None
    flapper = None
    if args.smtp:
        provider = SimulatedProvider(HOST)
        await provider.start()
        ready |= {"smtp_port": provider.smtp_port, "api_url": provider.api_url}
        flapper = asyncio.ensure_future(_flap(provider, rng, args.flap_min, args.flap_max))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await asyncio.to_thread(Path(args.ready).write_text, json.dumps(ready))
    try:
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        if flapper is not None:
            flapper.cancel()
        if provider is not None:
            await provider.close()


@dataclass(frozen=True, slots=True)
class TargetServer:
    """A running target server process and where it listens."""

    proc: subprocess.Popen[bytes]
    http_port: int
    smtp_port: int | None
    api_url: str | None
    # Every port the targets are spread over (http_port first).
    http_ports: tuple[int, ...] = ()

    def url(self, index: int) -> str:
        """The URL of target ``index``: the targets take the ports in turn."""
        ports = self.http_ports or (self.http_port,)
        return f"http://{HOST}:{ports[index % len(ports)]}/t{index}"

    def served(self) -> int:
        """Requests the server has answered so far (counted where they arrive)."""
        status, body = http_get(f"http://{HOST}:{self.http_port}/_count", timeout=10.0)
        if status != 200:
            raise RuntimeError(f"the target server answered {status} for its count")
        return int(body)


@contextlib.contextmanager
def target_server(
    folder: Path,
    *,
    fault_share: float = 0.0,
    smtp: bool = False,
    seed: int = 1,
    hang: float = 3.0,
    flap: tuple[float, float] = (20.0, 90.0),
    cores: set[int] | None = None,
    ports: int = 16,
) -> Iterator[TargetServer]:
    """Start the target server in another process (on ``cores``, if given); stop it on exit.

    It listens on ``ports`` ports: fresh connections leave each one in TIME_WAIT for a
    minute, and one destination (address and port) has only some 28,000 source ports, so
    two thousand new connections a second to one port would measure the kernel's search
    for a free source port rather than the prober. Many targets are many destinations.
    """
    ready = folder / "server-ready.json"
    port = free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "serve", "--port", str(port)]
    command += ["--fault-share", str(fault_share), "--seed", str(seed), "--hang", str(hang)]
    command += ["--ready", str(ready), "--flap-min", str(flap[0]), "--flap-max", str(flap[1])]
    command += ["--ports", str(ports)]
    if smtp:
        command.append("--smtp")
    with pinned(cores):
        proc = subprocess.Popen(command, cwd=ROOT)
    try:
        info = _wait_file(ready, proc, 20.0)
        yield TargetServer(
            proc,
            port,
            info.get("smtp_port"),
            info.get("api_url"),
            tuple(info.get("http_ports", [port])),
        )
    finally:
        stop_process(proc)


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if path.exists():
            return dict(json.loads(path.read_text()))
        if proc.poll() is not None:
            raise RuntimeError(f"the target server exited with status {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("the target server did not start")


# -- processes ------------------------------------------------------------------------


@contextlib.contextmanager
def pinned(cores: set[int] | None) -> Iterator[None]:
    """Run this process on ``cores`` meanwhile, so the children started inside inherit them.

    Every thread a child ever starts inherits its affinity, which pinning the child's pid
    afterwards would not give (threads it already runs keep theirs).
    """
    if cores is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def busy_process(core: int) -> Iterator[subprocess.Popen[bytes]]:
    """A process spinning on ``core`` (the competitor of a contention run)."""
    with pinned({core}):
        proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def prober_cores() -> tuple[set[int] | None, set[int] | None]:
    """(the prober's core, the target server's cores): one core each when there are two."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return {cores[0]}, set(cores[1:])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    """Poll ``url`` until it answers 200, failing early if ``proc`` exits."""
    wait_for(lambda: http_get(url, 2.0)[0] == 200, timeout, what, process=proc)


@dataclass(frozen=True, slots=True)
class ProcStats:
    """One process's CPU seconds, resident memory and open descriptors at one moment."""

    cpu_s: float
    rss_mb: float
    fds: int
    sockets: int
    # Inodes of sockets the peer has closed and this process has not yet: normal for an
    # instant, a leak when one is still there after its attempt's deadline has passed.
    close_wait: frozenset[str]


# The CLOSE_WAIT state in /proc/net/tcp (include/net/tcp_states.h).
TCP_CLOSE_WAIT = "08"


def _close_wait_inodes() -> set[str]:
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == TCP_CLOSE_WAIT:
                    found.add(fields[9])
    return found


def proc_stats(pid: int) -> ProcStats:
    """Read a process's CPU (utime+stime), RSS and descriptors from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 and 15 of stat(5); the slice starts at field 3.
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    fds = 0
    inodes: list[str] = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(entry.readlink())
        except OSError:
            continue  # closed between the listing and the read: not open any more
        fds += 1
        if target.startswith("socket:["):
            inodes.append(target[len("socket:[") : -1])
    waiting = _close_wait_inodes()
    close_wait = frozenset(inode for inode in inodes if inode in waiting)
    return ProcStats(cpu, rss_pages * PAGE_KB / 1024, fds, len(inodes), close_wait)


# -- slawatch as a subprocess ---------------------------------------------------------------


def api_target(name: str, url: str, timeout: str = "1s") -> dict[str, Any]:
    """One HTTP target of the config."""
    return {"name": name, "url": url, "timeout": timeout}


def slawatch_daemon(folder: Path, config: dict[str, Any]) -> Daemon:
    """`slawatch run` in ``folder`` on ``config``, with a prober id, a free port and a store."""
    port = free_port()
    write_config(
        folder,
        {
            "prober": {"id": "bench-1"},
            "server": {"listen": f"{HOST}:{port}"},
            "storage": {"path": "store.db"},
            **config,
        },
    )
    return Daemon(folder, port, args=("--log-level", "warning"))


def daemon_metrics(daemon: Daemon) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The daemon's /metrics as {sample name: [(labels, value)]}."""
    # Generous: a saturated daemon writes its page between launches, last.
    status, body = http_get(daemon.url("/metrics"), timeout=60.0)
    if status != 200:
        raise RuntimeError(f"slawatch /metrics answered {status}")
    return parse_metrics(body.decode())


def store_bytes(folder: Path) -> int:
    """The size of the SQLite store in ``folder`` with its WAL."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            total += (folder / f"store.db{suffix}").stat().st_size
    return total


# -- metrics --------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text exposition as {sample name: [(labels, value)]}."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def metric_sum(
    metrics: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    """The sum of a sample over every series whose labels include ``labels``."""
    return sum(
        value
        for got, value in metrics.get(name, [])
        if all(got.get(k) == v for k, v in labels.items())
    )


def buckets(
    metrics: dict[str, list[tuple[dict[str, str], float]]], name: str
) -> dict[float, float]:
    """A histogram's cumulative buckets {upper bound: count}, summed over series."""
    out: dict[float, float] = {}
    for labels, value in metrics.get(f"{name}_bucket", []):
        bound = float(labels["le"])
        out[bound] = out.get(bound, 0.0) + value
    return out


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile of the observations between two bucket snapshots (as histogram_quantile)."""
    bounds = sorted(after)
    delta = [after[b] - before.get(b, 0.0) for b in bounds]
    total = delta[-1] if delta else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, delta, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def time_wait_sockets() -> int:
    """TCP sockets in TIME_WAIT on this machine (from /proc/net/sockstat; 0 if unreadable)."""
    try:
        fields = Path("/proc/net/sockstat").read_text().split("TCP:", 1)[1].split()
    except (OSError, IndexError):
        return 0
    pairs = dict(zip(fields[::2], fields[1::2], strict=False))
    return int(pairs.get("tw", "0"))


def drain_time_wait(most: float, below: int = 2000) -> None:
    """Wait (at most ``most`` seconds) until fewer than ``below`` sockets are in TIME_WAIT.

    A run of fresh connections leaves one TIME_WAIT socket per probe for a minute, and
    ``connect()`` costs more the more of them there are: a pipeline run right after
    another would pay for the last one's sockets.
    """
    deadline = time.perf_counter() + most
    while time_wait_sockets() >= below and time.perf_counter() < deadline:
        time.sleep(1.0)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as uptime prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    """Run the target server (``serve``): the process the benchmarks start."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--ports", type=int, default=1, help="listen on this many ports")
    serve.add_argument("--fault-share", type=float, default=0.0)
    serve.add_argument("--hang", type=float, default=3.0)
    serve.add_argument("--seed", type=int, default=1)
    serve.add_argument("--smtp", action="store_true")
    serve.add_argument("--flap-min", type=float, default=20.0)
    serve.add_argument("--flap-max", type=float, default=90.0)
    serve.add_argument("--ready", required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
