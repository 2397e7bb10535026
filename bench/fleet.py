"""A fleet's database work: 3 probers x 1,000 targets on one private PostgreSQL on this machine.

Three fleet members (``slawatch.fleet.FleetMember``, each on its own connection) run their
once-a-second step in threads, as ``slawatch run`` does on its store thread, on a config
of 1,000 API targets. Each second each member publishes one packed slice with an attempt
for every target (a share of them failing) and the lease holder pools and commits. The
probes themselves are not run: the figures are the fleet's database cost, not probing.

    .venv/bin/python bench/fleet.py [--seconds 30] [--lanes 100] [--kills 5]

Prints: database transactions and row writes per second, bytes per prober-second row
(the packed counts, the sample failures as sent and as stored, and the whole row), the
finalizer's lag p50/p99 (database time minus the end of the last pooled second, sampled
each second), the failover time over ``--kills`` kills of the holder (it stops stepping,
as after ``kill -9``), and the rate at which a member publishes an hour of spooled seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry  # noqa: E402

from classifier.pooling import ProberSecond, Slicer  # noqa: E402
from classifier.verdict import OUTCOME_INDEX, OUTCOMES  # noqa: E402
from config import load_config_text  # noqa: E402
from incidents.pg_store import PgStore  # noqa: E402
from probe.attempt import Attempt, Outcome  # noqa: E402
from slawatch.fleet import FleetMember  # noqa: E402
from tests.support.postgres import pg_cluster  # noqa: E402

TARGETS = 1000
TTL = 3.0
# Failing attempts a slice samples per lane (the default ``storage.attempts_per_second``).
SAMPLES_PER_SECOND = 20
# The fleet runs on real time, as `slawatch run` does; the benchmark reads it here only.
wall = time.time  # noqa: TID251


def config_text(prober: str, url: str, lanes: int) -> str:
    """1,000 API targets spread over ``lanes`` services (one lane each)."""
    per = TARGETS // lanes
    services = []
    for s in range(lanes):
        targets = ", ".join(
            f'{{name: t{t}, url: "http://127.0.0.1:9/{s}/{t}", timeout: 1s}}' for t in range(per)
        )
        services.append(f"  - {{name: s{s}, api: [{targets}]}}")
    return (
        f"prober: {{id: {prober}, group: {prober}}}\n"
        f'storage: {{url: "{url}"}}\n'
        f"cluster: {{lease_ttl: {TTL:g}s, prober_timeout: 3s, grace: 1s}}\n"
        "services:\n" + "\n".join(services) + "\n"
    )


def make_slice(member: FleetMember, second: int, rng: random.Random, fail: float) -> ProberSecond:
    """One second of ``member``: every target attempted once, a share ``fail`` timing out.

    The failures are sampled as a member's slicer samples them (classifier/pooling.py).
    """
    per = TARGETS // len(member.lanes)
    counts = {}
    slicer = Slicer(member.id, 0, second, samples_per_second=SAMPLES_PER_SECOND)
    for lane in member.lanes:
        row = [0] * len(OUTCOMES)
        bad = [t for t in range(per) if rng.random() < fail]
        row[OUTCOME_INDEX[Outcome.OK]] = per - len(bad)
        row[OUTCOME_INDEX[Outcome.TIMEOUT]] = len(bad)
        counts[lane] = tuple(row)
        for t in bad:
            slicer.add(
                Attempt(
                    service=lane[0],
                    channel=lane[1],
                    target=f"t{t}",
                    prober=member.id,
                    started_at=second + rng.random(),
                    duration_s=1.0,
                    outcome=Outcome.TIMEOUT,
                    phase="headers",
                    detail="read timeout after 1.0s",
                    timings={"connect": 0.0004, "tls": 0.0, "total": 1.0},
                )
            )
    (sampled,) = slicer.take_through(second)
    return ProberSecond(member.id, second, counts, 1, 1, samples=sampled.samples)


def db_counters(store: PgStore) -> tuple[int, int]:
    """(transactions committed, rows inserted or updated) of this database so far."""
    rows: list[Any] = store.transaction(
        lambda cur: cur.execute(
            "SELECT xact_commit, tup_inserted + tup_updated FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchall()
    )
    return int(rows[0][0]), int(rows[0][1])


def percentile(values: list[float], q: float) -> float:
    """The q-th quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def main() -> None:  # noqa: PLR0915  (one linear benchmark script)
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--lanes", type=int, default=100)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--fail", type=float, default=0.01)
    args = parser.parse_args()
    rng = random.Random(7)  # noqa: S311  (synthetic load, not secrets)
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with pg_cluster() as pg, tempfile.TemporaryDirectory() as folder:
        url = pg.new_database()
        members: list[FleetMember] = []
        for i in range(3):
            source = Path(folder) / f"m{i}.yaml"
            text = config_text(f"p{i}", url, args.lanes)
            source.write_text(text)
            loaded = load_config_text(text, str(source), {})
            member = FleetMember(
                loaded,
                PgStore(url),
                version="bench",
                local_time=wall,
                registry=CollectorRegistry(),
            )
            member.start(wall())
            members.append(member)
        stopped: set[int] = set()
        lags: list[float] = []
        steps: list[float] = []

        def run_second(second: int) -> None:
            threads = []
            for index, member in enumerate(members):
                if index in stopped:
                    continue

                def step(member: FleetMember = member) -> None:
                    began = time.perf_counter()
                    member.step([make_slice(member, second, rng, args.fail)])
                    steps.append(time.perf_counter() - began)

                threads.append(threading.Thread(target=step))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        def tick(duration: int) -> None:
            for _ in range(duration):
                now = wall()
                run_second(math.floor(now) - 1)
                leader = next((m for m in members if m.leader), None)
                if leader is not None:
                    lag = leader.metrics.lag._value.get()
                    if lag:
                        lags.append(lag)
                time.sleep(max(0.0, math.floor(now) + 1.05 - wall()))

        tick(5)
        tx0, rows0 = db_counters(members[0].store)
        lags.clear()
        steps.clear()
        began = wall()
        tick(args.seconds)
        elapsed = wall() - began
        tx1, rows1 = db_counters(members[0].store)
        sizes: list[Any] = members[0].store.transaction(
            lambda cur: cur.execute(
                "SELECT avg(octet_length(counts)), avg(pg_column_size(s.*)), "
                "avg(coalesce(octet_length(samples), 0)), "
                "avg(coalesce(pg_column_size(samples), 0)), "
                "avg(coalesce(json_array_length(convert_from(samples, 'UTF8')::json), 0)) "
                "FROM prober_seconds s"
            ).fetchall()
        )
        print(f"lanes {args.lanes}, targets {TARGETS}, probers 3, {args.seconds} s steady")
        print(f"database transactions per second: {(tx1 - tx0) / elapsed:.1f}")
        print(f"database rows written per second: {(rows1 - rows0) / elapsed:.1f}")
        counts_b, row_b, samples_b, stored_b, per_row = (float(x or 0) for x in sizes[0])
        print(
            f"bytes per prober-second row: counts {counts_b:.0f}, samples {samples_b:.0f} "
            f"({stored_b:.0f} stored, {per_row:.1f} failures sampled a row), whole row {row_b:.0f}"
        )
        print(
            f"member step ms: p50 {percentile(steps, 0.5) * 1000:.1f}, "
            f"p99 {percentile(steps, 0.99) * 1000:.1f}"
        )
        print(f"finalizer lag s: p50 {percentile(lags, 0.5):.2f}, p99 {percentile(lags, 0.99):.2f}")
        failovers = []
        for _ in range(args.kills):
            leader = next(i for i, m in enumerate(members) if m.leader)
            epoch = members[leader].epoch
            stopped.add(leader)
            killed = wall()
            while not any(m.leader and m.epoch != epoch for m in members):
                tick(1)
            failovers.append(wall() - killed)
            stopped.discard(leader)
            members[leader].finalize()  # the killed one comes back: fenced, it follows
            tick(2)
        print(
            f"failover s over {args.kills} kills (ttl {TTL:g} s): "
            f"median {statistics.median(failovers):.2f}, worst {max(failovers):.2f}"
        )
        backlog = [make_slice(members[0], 1_700_000_000 + s, rng, args.fail) for s in range(3600)]
        began = time.perf_counter()
        members[0].publish(backlog)
        took = time.perf_counter() - began
        rate = len(backlog) / took
        print(f"spool replay: {len(backlog)} seconds in {took:.2f} s ({rate:.0f} rows/s)")
        for member in members:
            member.release()
            member.store.close()
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
