"""A fleet under test: `slawatch run` processes on one PostgreSQL, each location its own provider.

Each member probes its own loopback simulated provider (its "location"), so a fault can be
seen by one location or by all. A loopback webhook sink records every notification with
its ``Idempotency-Key``. The checks every scenario makes (FLEET.md, I1-I3) read the shared
database directly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.pooling import ProberSecond
from slawatch.simulator import SimulatedProvider
from tests.support.daemon import Daemon, wait_for, write_config
from tests.support.loop_thread import LoopThread
from tests.support.paths import ROOT
from tests.support.postgres import PgCluster
from tests.support.provider import running
from tests.support.receiver import Received, Receiver
from tests.support.servers import free_port, serve_app
from tests.support.tcp_proxy import TcpProxy, tcp_proxy

# Short thresholds, so a scenario lasts well under a minute.
CLASSIFIER = {
    "critical_after": "8s",
    "recover_after": "5s",
    # Only the critical condition: a scenario's partial seconds must not open a degraded one.
    "degraded_min_seconds": 10_000,
}
CLUSTER = {"lease_ttl": "3s", "prober_timeout": "3s", "grace": "1s"}
TTL_S = 3.0


def member_config(
    provider: SimulatedProvider,
    port: int,
    prober: str,
    url: str,
    hook_url: str,
    *,
    group: str | None = None,
    targets: int = 1,
    classifier: Mapping[str, Any] | None = None,
    **cluster: Any,
) -> dict[str, Any]:
    """One member's config: its own provider (location), the shared database, the sink.

    ``classifier`` overrides keys of the short thresholds ``CLASSIFIER``.
    """
    api = [{"name": "account", "url": provider.api_url, "timeout": "1s"}]
    api += [{"name": f"t{i}", "url": provider.api_url, "timeout": "1s"} for i in range(1, targets)]
    return {
        "prober": {"id": prober, "group": group or prober},
        "server": {"listen": f"127.0.0.1:{port}"},
        "storage": {"url": url},
        "cluster": {**CLUSTER, **cluster},
        "services": [
            {
                "name": "mail",
                "sla": {"policy": "megaport", "calendar": "uk"},
                "classifier": {**CLASSIFIER, **(classifier or {})},
                "api": api,
            }
        ],
        "notify": [
            {
                "name": "ops",
                "type": "webhook",
                "url": hook_url,
                "events": ["opened", "restored", "prober_unhealthy"],
            }
        ],
    }


@dataclass
class Fleet:
    """The running members, their providers, the sink and the shared database."""

    pg: PgCluster
    url: str
    members: list[Daemon]
    providers: list[SimulatedProvider]
    receiver: Receiver
    ids: list[str] = field(default_factory=list)
    # Members whose database link runs through a partitionable proxy, by id.
    proxies: dict[str, TcpProxy] = field(default_factory=dict)
    thread: LoopThread | None = None

    def partition(self, prober: str, *, partitioned: bool = True) -> float:
        """Cut ``prober`` off the database (or heal it); when it happened."""
        assert self.thread is not None
        self.thread.run(self.proxies[prober].set_partitioned(partitioned))
        return time.time()  # noqa: TID251

    @property
    def database(self) -> str:
        """The shared database's name."""
        return self.url.rsplit("/", 1)[1]

    def sql(self, statement: str) -> list[list[str]]:
        """Rows of a query on the shared database, as text fields."""
        out = self.pg.sql(statement, database=self.database)
        return [line.split("|") for line in out.splitlines() if line]

    def member(self, prober: str) -> Daemon:
        """The member called ``prober``."""
        return self.members[self.ids.index(prober)]

    def leader(self) -> str:
        """The lease holder, once one holds it."""
        return str(wait_for(self.holder, 15, "a finalizer"))

    def holder(self) -> str | None:
        """The lease holder now (None while nobody holds it)."""
        rows = self.sql("SELECT holder FROM lease WHERE expires_at > clock_timestamp()")
        return rows[0][0] if rows and rows[0][0] else None

    def epoch(self) -> int:
        """The lease's epoch now."""
        return int(self.sql("SELECT epoch FROM lease")[0][0])

    def set_down(self, *locations: int, fault: str = "server_error") -> float:
        """Make the providers of ``locations`` fail (all, when none is named); when it happened.

        ``fault``: how they fail (one of ``slawatch.simulator.FAULTS``).
        """
        for i in locations or range(len(self.providers)):
            self.providers[i].fault = fault
            self.providers[i].healthy = False
        return time.time()  # noqa: TID251  (the processes under test run on real time)

    def set_up(self) -> float:
        """Heal every provider; when it happened."""
        for provider in self.providers:
            provider.healthy = True
        return time.time()  # noqa: TID251

    def pooled_through(self) -> int:
        """The last second pooled so far (0 before the first)."""
        rows = self.sql("SELECT coalesce(max(second), 0) FROM pooled_seconds")
        return int(rows[0][0])

    def wait_pooled(self, second: float, timeout: float = 20.0) -> None:
        """Wait until the finalizers have pooled ``second``."""
        wait_for(lambda: self.pooled_through() >= int(second), timeout, f"second {second} pooled")

    def incidents(self) -> list[tuple[str, int]]:
        """(id, started_at) of every incident."""
        return [(r[0], int(r[1])) for r in self.sql("SELECT id, started_at FROM incidents")]

    def verdicts(self, channel: str = "api") -> dict[int, str]:
        """The pooled verdict of every second of ``channel``, from the runs."""
        out: dict[int, str] = {}
        rows = self.sql(
            f"SELECT first, last, verdict FROM runs WHERE channel = '{channel}' ORDER BY first"  # noqa: S608  (a test's own constant)
        )
        for first, last, verdict in rows:
            for second in range(int(first), int(last) + 1):
                assert second not in out, f"second {second} judged twice"
                out[second] = verdict
        return out

    def check_invariants(self, fault_at: float) -> str:
        """I1 contiguous verdicts, I2 one incident starting at the fault, I3 one key per event."""
        pooled = [int(r[0]) for r in self.sql("SELECT second FROM pooled_seconds ORDER BY second")]
        assert pooled == list(range(pooled[0], pooled[-1] + 1)), "a pooled second is missing"
        verdicts = self.verdicts()
        seconds = sorted(verdicts)
        assert seconds == list(range(seconds[0], seconds[-1] + 1)), "a verdict second is missing"
        (incident,) = self.incidents()
        # The fault starts mid-second: its first second is that one or the next (launch offset).
        assert incident[1] in (int(fault_at), int(fault_at) + 1), (incident, fault_at)
        keys: dict[tuple[str, str], set[str]] = {}
        for got in self.incident_notes():
            body = got.body
            keys.setdefault((body["event"], body["incident"]["id"]), set()).add(
                got.headers["Idempotency-Key"]
            )
        assert keys, "no notification arrived"
        assert all(len(k) == 1 for k in keys.values()), keys
        return incident[0]

    def incident_notes(self) -> list[Received]:
        """The notifications about incidents the sink received (not the probers' own notices)."""
        return [got for got in self.receiver.got if got.body["incident"] is not None]

    def prober_notes(self) -> list[dict[str, Any]]:
        """The probers' own notices (prober_unhealthy) the sink received: their prober part."""
        return [got.body["prober"] for got in self.receiver.got if got.body["incident"] is None]

    def attempts(self, prober: str, first: int, last: int) -> dict[int, int]:
        """How many attempts ``prober`` published for each second of ``first..last``."""
        import psycopg

        from classifier.pooling import fleet_lanes
        from config import load_config

        lanes = fleet_lanes(load_config(self.member(prober).folder / "slawatch.yaml").config)
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT second, counts FROM prober_seconds "
                "WHERE prober = %s AND second BETWEEN %s AND %s",
                (prober, first, last),
            ).fetchall()
        return {
            second: ProberSecond.unpack(prober, second, bytes(counts), lanes).attempts
            for second, counts in rows
        }

    def event_epochs(self) -> list[int]:
        """The lease epoch of every event row, in seq order."""
        return [int(r[0]) for r in self.sql("SELECT epoch FROM events ORDER BY seq")]


@contextlib.contextmanager
def running_fleet(
    folder: Path,
    pg: PgCluster,
    count: int = 3,
    *,
    skews: Mapping[int, float] | None = None,
    proxied: Iterable[int] = (),
    groups: Sequence[str] | None = None,
    targets: int = 1,
    args: Sequence[str] = (),
    classifier: Mapping[str, Any] | None = None,
    **cluster: Any,
) -> Iterator[Fleet]:
    """``count`` members on a fresh database, each with its own provider; stopped on exit.

    ``skews`` sets members' clocks off (member index → seconds ahead of the true time);
    the ``proxied`` members reach the database through a :class:`TcpProxy` each;
    ``groups`` puts members in groups (default: each its own); ``targets`` per member;
    ``args``: more `slawatch run` options for every member (run in its own folder);
    ``classifier`` overrides keys of ``CLASSIFIER`` for every member.
    """
    url = pg.new_database()
    with LoopThread() as thread:
        receiver = Receiver()
        hook_port = free_port()
        thread.enter(serve_app(receiver.app(), hook_port))
        providers = [thread.enter(running(SimulatedProvider())) for _ in range(count)]
        ids = [f"loc{i + 1}" for i in range(count)]
        proxies = {ids[i]: thread.enter(tcp_proxy(pg.port)) for i in proxied}
        members = []
        for prober, provider in zip(ids, providers, strict=True):
            proxy = proxies.get(prober)
            member_url = url if proxy is None else url.replace(f":{pg.port}/", f":{proxy.port}/")
            home = folder / prober
            home.mkdir()
            port = free_port()
            hook = f"http://127.0.0.1:{hook_port}/hook"
            group = None if groups is None else groups[len(members)]
            config = member_config(
                provider, port, prober, member_url, hook,
                group=group, targets=targets, classifier=classifier, **cluster,
            )  # fmt: skip
            write_config(home, config)
            skew = (skews or {}).get(len(members))
            if skew is None:
                members.append(Daemon(home, port, args=args))
            else:
                members.append(
                    Daemon(
                        home,
                        port,
                        env={"PYTHONPATH": str(ROOT)},
                        args=args,
                        module="tests.support.skewed_run",
                        module_args=[str(skew)],
                    )
                )
        fleet = Fleet(pg, url, members, providers, receiver, ids, proxies, thread)
        try:
            for member in members:
                member.start()
            yield fleet
        finally:
            for member in members:
                if member.proc is not None and member.proc.poll() is None:
                    member.stop()


def now() -> float:
    """The real time (the processes under test run on it)."""
    return time.time()  # noqa: TID251


def finish(fleet: Fleet) -> None:
    """Heal, and wait for the restore to be notified and every member's seconds pooled."""
    healed = fleet.set_up()
    wait_for(
        lambda: any(r.body["event"] == "restored" for r in fleet.receiver.got),
        30,
        "the restore notification",
    )
    fleet.wait_pooled(healed + 2)
