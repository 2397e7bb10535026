"""Fault-matrix helpers: observe real attempts, re-stamp them onto a timeline, classify it.

The method (docs/reliability.md): the real probes run with the real scheduler against a faulty
server for a few real seconds; their attempts are asserted as observed. Each observed
second is then a *sample*: a timeline in the tests' one notation (``tests.support.timeline``),
such as ``"30. 70x 130."`` (30 healthy seconds, 70 faulty ones, 130 healthy ones), is built
by copying the attempts of one observed second of that character onto each timeline
second, keeping each attempt's offset within its second, and the classifier judges that
timeline. Incident times are then exact, and a 230-second fault takes a few real seconds.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from classifier.engine import Classifier
from classifier.signals import IncidentSignal
from classifier.verdict import COMBINED, SecondVerdict
from config import load_catalog
from config.loader import LoadedConfig
from probe.attempt import Attempt, Channel
from probe.clock import SystemClock
from probe.registry import build_probes, probe_context
from probe.scheduler import MissedLaunches, Scheduler
from tests.support.ci_tools import missing
from tests.support.timeline import T0, Event, expand
from tests.support.timeline import events as signal_events
from tests.support.timeline import line as verdict_line

# A hard outage under the default thresholds: 30 healthy seconds, 70 bad, 130 healthy.
# Severity 2 opens at the 10th bad second (fewer than 200 seconds observed), upgrades to 1
# at the 60th, and is restored after 120 available seconds.
OUTAGE = "30. 70x 130."
OUTAGE_EVENTS: list[Event] = [
    ("opened", 2, 30, 40),
    ("upgraded", 1, 30, 90),
    ("restored", 1, 100, 220),
]


async def observe(loaded: LoadedConfig, seconds: int) -> list[Attempt]:
    """Run every probe of ``loaded`` with the real scheduler for ``seconds``; its attempts.

    A launch the scheduler reports missed fails here, with the report, rather than as a
    short list in the test.
    """
    clock = SystemClock()
    attempts: list[Attempt] = []
    missed: list[MissedLaunches] = []
    async with probe_context(loaded, clock) as context:
        probes = build_probes(loaded.config, context)
        async with Scheduler(
            clock=clock, on_attempt=attempts.append, on_missed=missed.append, prober=context.prober
        ) as scheduler:
            start = clock.time()
            scheduler.replace(probes, since=start)
            # Launch slots lie on a lattice: any `seconds` seconds hold exactly one launch each.
            await clock.sleep_until(start + seconds)
    assert not missed, f"the scheduler missed launches: {missed}"
    return sorted(attempts, key=lambda a: a.started_at)


def of_service(attempts: Iterable[Attempt], service: str) -> list[Attempt]:
    """The attempts of one service, in launch order."""
    return [a for a in attempts if a.service == service]


def by_second(attempts: Iterable[Attempt], *, complete: bool = False) -> list[list[Attempt]]:
    """Attempts grouped by the second they were launched in, oldest first (gaps kept empty).

    ``complete``: only the seconds holding an attempt of every target seen. Targets launch
    at different offsets, so the first and last observed seconds may miss some of them.
    """
    groups: dict[int, list[Attempt]] = {}
    targets: set[tuple[str, Channel, str]] = set()
    for attempt in attempts:
        groups.setdefault(attempt.second, []).append(attempt)
        targets.add((attempt.service, attempt.channel, attempt.target))
    if not groups:
        return []
    first, last = min(groups), max(groups)
    seconds = [groups.get(second, []) for second in range(first, last + 1)]
    if complete:
        seconds = [
            group
            for group in seconds
            if {(a.service, a.channel, a.target) for a in group} == targets
        ]
    return seconds


def restamp(
    timeline: str,
    samples: Mapping[str, Sequence[Sequence[Attempt]]],
    *,
    service: str,
    start: int = T0,
) -> list[Attempt]:
    """Attempts for ``timeline``: second ``i`` gets a copy of an observed second of its char.

    ``samples[char]`` holds observed seconds (lists of attempts); second ``i`` copies the
    ``i``-th of them, cyclically, moved to ``start + i`` with its sub-second offset kept and
    its service renamed to ``service`` (control attempts keep theirs).
    """
    out: list[Attempt] = []
    for offset, char in enumerate(expand(timeline)):
        seconds = samples[char]
        for attempt in seconds[offset % len(seconds)]:
            fraction = attempt.started_at - math.floor(attempt.started_at)
            renamed = attempt.service if attempt.channel is Channel.CONTROL else service
            out.append(
                dataclasses.replace(attempt, service=renamed, started_at=start + offset + fraction)
            )
    return sorted(out, key=lambda a: a.started_at)


@dataclass
class Judged:
    """What the classifier made of some attempts: combined verdicts and incident events."""

    verdicts: list[SecondVerdict]
    signals: list[IncidentSignal]
    start: int

    def line(self, channel: str = COMBINED) -> str:
        """One character a second for ``channel`` (``combined`` by default)."""
        return verdict_line(v for v in self.verdicts if v.channel == channel)

    def events(self) -> list[Event]:
        """Every signal as (kind, severity, start, detected), relative to ``start``."""
        return signal_events(self.signals, self.start)


def classify(loaded: LoadedConfig, attempts: Sequence[Attempt], service: str) -> Judged:
    """Judge ``attempts`` with the real classifier (offline, as replay does)."""
    classifier = Classifier.from_config(loaded.config, load_catalog(), horizon=0)
    for attempt in attempts:
        classifier.add(attempt)
    finalized = classifier.finish()
    first = min(a.second for a in attempts)
    return Judged(
        verdicts=[v for v in finalized.verdicts if v.service == service],
        signals=[s for s in finalized.signals if s.service == service],
        start=first,
    )


# Network namespaces ---------------------------------------------------------------------


def require_netns() -> None:
    """Skip without root and iproute2 (ip, tc), except under CI where that is a failure."""
    absent = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    reason = ""
    if absent:
        reason = f"{' and '.join(absent)} (iproute2) not installed"
    elif os.geteuid() != 0:
        reason = "network namespaces need root"
    if reason:
        missing(reason)


def run(*command: str) -> None:
    """Run a setup command; its stderr becomes the failure message."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")


class Namespaces:
    """Network namespaces named after this process, deleted (with their links) on close."""

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}{os.getpid()}"
        self.names: list[str] = []
        self._resolv: list[Path] = []

    def add(self, suffix: str, *, nameserver: str | None = None, resolver_timeout: int = 1) -> str:
        """A new namespace with loopback up; ``nameserver`` becomes its own resolv.conf."""
        name = f"{self.prefix}{suffix}"
        run("ip", "netns", "add", name)
        self.names.append(name)
        if nameserver is not None:
            # `ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf.
            folder = Path("/etc/netns") / name
            folder.mkdir(parents=True, exist_ok=True)
            self._resolv.append(folder)
            (folder / "resolv.conf").write_text(
                f"nameserver {nameserver}\noptions timeout:{resolver_timeout} attempts:1\n"
            )
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def link(self, left: str, left_ip: str, right: str, right_ip: str, tag: int) -> str:
        """A veth pair between two of our namespaces (/24 addresses); the right end's name.

        Each end knows the other's MAC address permanently, so no ARP is needed: a link
        whose packets are all dropped then drops SYNs silently (with ARP failing instead,
        connect would end early with "no route to host").
        """
        left_dev, right_dev = f"f{os.getpid()}x{tag}a", f"f{os.getpid()}x{tag}b"
        left_mac, right_mac = f"02:5a:00:00:{tag:02x}:01", f"02:5a:00:00:{tag:02x}:02"
        run(
            *f"ip link add {left_dev} address {left_mac} netns {left} type veth "
            f"peer name {right_dev} address {right_mac} netns {right}".split()
        )
        ends = (
            (left, left_dev, left_ip, right_ip, right_mac),
            (right, right_dev, right_ip, left_ip, left_mac),
        )
        for ns, dev, ip, peer_ip, peer_mac in ends:
            run(*f"ip -n {ns} addr add {ip}/24 dev {dev}".split())
            run(*f"ip -n {ns} link set {dev} up".split())
            run(
                *f"ip -n {ns} neigh replace {peer_ip} lladdr {peer_mac} dev {dev} nud permanent".split()
            )
        return right_dev

    def drop_port(self, ns: str, dev: str, port: int) -> None:
        """Drop every packet leaving ``dev`` for ``port``: a drop rule made of plain tc parts.

        An htb root whose default class passes traffic, and a class whose queue holds zero
        packets (``pfifo limit 0``) for the matched port: those packets are discarded, so a
        SYN is never answered. (netem and tc actions are kernel modules not every host has.)
        """
        tc = f"ip netns exec {ns} tc"
        run(*f"{tc} qdisc add dev {dev} root handle 1: htb default 10".split())
        for leaf in (10, 20):
            run(
                *f"{tc} class add dev {dev} parent 1: classid 1:{leaf} "
                "htb rate 1gbit quantum 60000".split()
            )
        run(*f"{tc} qdisc add dev {dev} parent 1:20 handle 20: pfifo limit 0".split())
        run(
            *f"{tc} filter add dev {dev} parent 1: protocol ip prio 1 "
            f"u32 match ip dport {port} 0xffff flowid 1:20".split()
        )

    def drop_all(self, ns: str, dev: str) -> None:
        """Drop every packet leaving ``dev`` (a queue of zero packets): the link is dead."""
        run(*f"ip netns exec {ns} tc qdisc add dev {dev} root pfifo limit 0".split())

    def dropped(self, ns: str, dev: str) -> int:
        """Packets the tc queues of ``dev`` dropped (the proof that SYNs went unanswered)."""
        result = subprocess.run(
            ("ip", "netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", dev),
            capture_output=True,
            text=True,
            check=True,
        )
        total = 0
        for line in result.stdout.splitlines():
            if "(dropped " in line and line.strip().startswith("Sent"):
                total = max(total, int(line.split("(dropped ")[1].split(",")[0]))
        return total

    def close(self) -> None:
        """Delete every namespace (their veth ends go with them) and resolv.conf folder."""
        for name in reversed(self.names):
            subprocess.run(("ip", "netns", "del", name), capture_output=True, check=False)
        for folder in self._resolv:
            shutil.rmtree(folder, ignore_errors=True)
        self.names.clear()
        self._resolv.clear()
