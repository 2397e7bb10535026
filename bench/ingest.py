"""Ingestion throughput: OTLP/HTTP protobuf spans per second into `slawatch run` while it probes.

`slawatch run` (one process, so one core) probes N HTTP targets at 1 attempt/s against a
target server in another process; this process then posts OTLP protobuf trace exports
(``--batch`` client spans each, every one matching the service's traffic rule) from
``--senders`` concurrent clients for ``--seconds``. Printed: the spans per second the
daemon took, and the probes' launch lag (p50/p99, from slawatch_scheduler_lag_seconds)
before and during ingestion, with the load average.

    .venv/bin/python bench/ingest.py --targets 100 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

# The checkout on the path: `python bench/ingest.py` finds the packages and tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_common import (
    api_target,
    bucket_quantile,
    buckets,
    daemon_metrics,
    load_average,
    slawatch_daemon,
    target_server,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.daemon import write_config
from tests.support.servers import HOST

TOKEN = "bench-ingest-token"  # noqa: S105  (a throwaway token of a loopback run)
LAG = "slawatch_scheduler_lag_seconds"


def export_body(spans: int, at: float) -> bytes:
    """An OTLP export of ``spans`` client spans of the Transmissions API started at ``at``."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="bench-app"))
    )
    scope = resource.scope_spans.add()
    start = int(at * 1e9)
    for index in range(spans):
        scope.spans.append(
            Span(
                trace_id=index.to_bytes(16, "big"),
                span_id=index.to_bytes(8, "big"),
                name="POST",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start + index * 1000,
                end_time_unix_nano=start + index * 1000 + 50_000_000,
                attributes=[
                    KeyValue(key="server.address", value=AnyValue(string_value="api.example.com")),
                    KeyValue(key="url.path", value=AnyValue(string_value="/api/v1/transmissions")),
                    KeyValue(key="http.request.method", value=AnyValue(string_value="POST")),
                    KeyValue(
                        key="http.response.status_code",
                        value=AnyValue(int_value=200 if index % 10 else 503),
                    ),
                ],
            )
        )
    return request.SerializeToString()


async def _send(url: str, batch: int, seconds: float, senders: int) -> tuple[int, int, float]:
    """Post exports from ``senders`` clients for ``seconds``: (spans taken, refused, elapsed)."""
    bodies: dict[int, bytes] = {}
    taken = refused = 0
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"}
    begin = time.time()  # noqa: TID251  (a benchmark measures real time)
    stop = begin + seconds

    def body_now() -> bytes:
        second = int(time.time())  # noqa: TID251
        if second not in bodies:
            bodies.clear()
            bodies[second] = export_body(batch, second + 0.5)
        return bodies[second]

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal taken, refused
        while time.time() < stop:  # noqa: TID251
            async with session.post(url, data=body_now(), headers=headers) as response:
                answer = await response.read()
            if response.status != 200:
                refused += batch
                continue
            rejected = ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans
            taken += batch - rejected
            refused += rejected

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(sender(session) for _ in range(senders)))
    return taken, refused, time.time() - begin  # noqa: TID251


def _lag(before: dict[float, float], after: dict[float, float]) -> str:
    p50 = bucket_quantile(before, after, 0.5) * 1000
    p99 = bucket_quantile(before, after, 0.99) * 1000
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=512, help="spans per export request")
    parser.add_argument("--senders", type=int, default=4, help="concurrent exporting clients")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, target_server(Path(tmp)) as server:
        folder = Path(tmp)
        config = {
            "server": {"token": TOKEN},
            "services": [
                {
                    "name": "bench",
                    "api": [api_target(f"t{i}", server.url(i)) for i in range(args.targets)],
                    "traffic": [
                        {
                            "match": {
                                "server.address": "api.example.com",
                                "url.path": "^/api/v1/transmissions",
                            }
                        }
                    ],
                }
            ],
        }
        daemon = slawatch_daemon(folder, config)
        # The server key replaced the harness's: give the port it chose back to it.
        config["server"]["listen"] = f"{HOST}:{daemon.port}"
        write_config(
            folder, {"prober": {"id": "bench-1"}, "storage": {"path": "store.db"}, **config}
        )
        daemon.start()
        try:
            time.sleep(5)
            quiet = buckets(daemon_metrics(daemon), LAG)
            time.sleep(args.seconds)
            busy = buckets(daemon_metrics(daemon), LAG)
            taken, refused, elapsed = asyncio.run(
                _send(daemon.url("/v1/traces"), args.batch, args.seconds, args.senders)
            )
            after = buckets(daemon_metrics(daemon), LAG)
        finally:
            daemon.stop()
    print(f"targets {args.targets}, batch {args.batch} spans, {args.senders} senders")
    print(f"probing alone:      launch lag {_lag(quiet, busy)}")
    print(
        f"probing + ingest:   {taken / elapsed:,.0f} spans/s taken "
        f"({taken:,} in {elapsed:.1f} s, {refused:,} refused), launch lag {_lag(busy, after)}"
    )
    print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
