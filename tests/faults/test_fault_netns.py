"""Network faults in namespaces of our own: a black-holed target, dead resolvers, a dead uplink.

Namespaces (named after this process, deleted on teardown):

    srv   10.200.0.1 ── veth ── 10.200.0.2   cli   resolver 10.200.0.1 (never answers)
          10.200.1.1 ── veth ── 10.200.1.2   cut   every packet leaving cut is dropped
                                             dns   no links; resolver 127.0.0.1 (nothing listens)

``srv`` runs an HTTP server on port 8080 and a UDP socket on port 53 that reads nothing
(a resolver that never answers, without even an ICMP "port unreachable"). In ``cli``
packets to port 8081 are dropped on the way out, so a SYN to 10.200.0.1:8081 is never
answered. Each of cli, cut
and dns runs ``slawatch probe`` (the real probes and scheduler, control checks included)
for a few seconds; the attempts it prints are then judged as observed and re-stamped onto
a long timeline (docs/reliability.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from probe.attempt import Attempt, Channel, Outcome, attempt_from_json
from probe.base import CONTROL_SERVICE
from tests.faults.fault_helpers import (
    OUTAGE,
    OUTAGE_EVENTS,
    Namespaces,
    by_second,
    classify,
    require_netns,
    restamp,
)
from tests.support.configs import config_from_yaml
from tests.support.paths import ROOT
from tests.support.timeline import Event, expand

SECONDS = 3
SILENT_NAME = "api.slawatch-fault.invalid"
# Longer than the probe timeout, so the probe's deadline always passes before the resolver
# gives up.
SILENT_RESOLVER_TIMEOUT = 3
# srv: HTTP on 8080, and a UDP socket on 53 that never reads: queries go unanswered.
SERVER = """
import functools, http.server, socket, sys
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind(("0.0.0.0", 53))
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
with http.server.ThreadingHTTPServer(("0.0.0.0", 8080), handler) as httpd:
    print("ready", flush=True)
    httpd.serve_forever()
"""

PROBERS: Mapping[str, str] = {
    "cli": f"""
prober: {{id: ns-cli}}
control: [{{name: gateway, tcp: "10.200.0.1:8080", timeout: 500ms}}]
services:
  - name: reachable
    api: [{{name: call, url: "http://10.200.0.1:8080/", timeout: 1s}}]
  - name: blackholed
    api: [{{name: call, url: "http://10.200.0.1:8081/", timeout: 1s}}]
    smtp: [{{name: inject, host: 10.200.0.1, port: 8081, tls: none, timeout: 1s}}]
  - name: resolver-silent
    api: [{{name: call, url: "http://{SILENT_NAME}:8080/", timeout: 1s}}]
""",
    "cut": """
prober: {id: ns-cut}
control: [{name: gateway, tcp: "10.200.1.1:8080", timeout: 500ms}]
services:
  - name: reachable
    api: [{name: call, url: "http://10.200.1.1:8080/", timeout: 1s}]
""",
    "dns": """
prober: {id: ns-dns}
services:
  - name: resolver-down
    api: [{name: call, url: "http://api.slawatch-fault.invalid:8080/", timeout: 1s}]
    smtp: [{name: inject, host: smtp.slawatch-fault.invalid, port: 25, tls: none, timeout: 1s}]
""",
}

# How each service is judged on the synthetic timeline: defaults, or DNS failures counted.
JUDGE = """
services:
  - name: reachable
    api: [{name: call, url: "http://10.200.0.1:8080/"}]
  - name: blackholed
    api: [{name: call, url: "http://10.200.0.1:8081/"}]
    smtp: [{name: inject, host: 10.200.0.1, port: 8081}]
  - name: resolver-silent
    api: [{name: call, url: "http://api.slawatch-fault.invalid:8080/"}]
  - name: resolver-down
    api: [{name: call, url: "http://api.slawatch-fault.invalid:8080/"}]
    smtp: [{name: inject, host: smtp.slawatch-fault.invalid, port: 25}]
  - name: resolver-down-counted
    counts_as_unavailable: [timeout, server_error, connection_error, dns_error]
    api: [{name: call, url: "http://api.slawatch-fault.invalid:8080/"}]
"""


@dataclass
class Observed:
    """Each prober's attempts and the packets tc dropped on its way out."""

    attempts: dict[str, list[Attempt]]
    dropped: dict[str, int]

    def seconds(self, prober: str, *services: str) -> list[list[Attempt]]:
        """The complete observed seconds of ``services`` (and the prober's control checks)."""
        wanted = {*services, CONTROL_SERVICE}
        return by_second((a for a in self.attempts[prober] if a.service in wanted), complete=True)


def _prober(ns: str, path: Path) -> subprocess.Popen[str]:
    """``slawatch probe`` inside namespace ``ns``: the real probes and scheduler."""
    probe = ["probe", "--config", str(path), "--count", str(SECONDS)]
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "slawatch.cli", *probe],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def observed() -> Iterator[Observed]:
    """Build the namespaces, serve HTTP in srv, and probe from cli, cut and dns at once."""
    require_netns()
    spaces = Namespaces("slwf")
    server: subprocess.Popen[str] | None = None
    with tempfile.TemporaryDirectory() as folder:
        try:
            srv = spaces.add("srv")
            cli = spaces.add(
                "cli", nameserver="10.200.0.1", resolver_timeout=SILENT_RESOLVER_TIMEOUT
            )
            cut = spaces.add("cut")
            spaces.add("dns", nameserver="127.0.0.1")
            cli_dev = spaces.link(srv, "10.200.0.1", cli, "10.200.0.2", 1)
            cut_dev = spaces.link(srv, "10.200.1.1", cut, "10.200.1.2", 2)
            spaces.drop_port(cli, cli_dev, 8081)
            spaces.drop_all(cut, cut_dev)
            server = subprocess.Popen(
                ("ip", "netns", "exec", srv, sys.executable, "-c", SERVER, folder),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert server.stdout is not None
            assert server.stdout.readline() == "ready\n"
            running = {}
            for name, text in PROBERS.items():
                path = Path(folder) / f"{name}.yaml"
                path.write_text(text)
                running[name] = _prober(f"{spaces.prefix}{name}", path)
            attempts: dict[str, list[Attempt]] = {}
            for name, process in running.items():
                out, err = process.communicate(timeout=30)
                assert process.returncode == 0, err
                attempts[name] = [attempt_from_json(json.loads(line)) for line in out.splitlines()]
            yield Observed(
                attempts=attempts,
                dropped={"cli": spaces.dropped(cli, cli_dev), "cut": spaces.dropped(cut, cut_dev)},
            )
        finally:
            if server is not None:
                server.kill()
                server.communicate()
            spaces.close()


@pytest.mark.parametrize(
    ("prober", "service", "channel", "outcome", "phase", "detail"),
    [
        pytest.param(
            "cli", "reachable", Channel.API, Outcome.OK, "done", "HTTP 200 OK", id="reachable"
        ),
        pytest.param(
            "cli",
            CONTROL_SERVICE,
            Channel.CONTROL,
            Outcome.OK,
            "done",
            "connected",
            id="cli-control-ok",
        ),
        pytest.param(
            "cli",
            "blackholed",
            Channel.API,
            Outcome.TIMEOUT,
            "connect",
            "deadline passed after 1s in connect",
            id="blackholed-http",
        ),
        pytest.param(
            "cli",
            "blackholed",
            Channel.SMTP,
            Outcome.TIMEOUT,
            "connect",
            "no reply in time in connect",
            id="blackholed-smtp",
        ),
        pytest.param(
            "cli",
            "resolver-silent",
            Channel.API,
            Outcome.DNS_ERROR,
            "dns",
            "resolver did not answer within 1s",
            id="resolver-silent",
        ),
        pytest.param(
            "dns",
            "resolver-down",
            Channel.API,
            Outcome.DNS_ERROR,
            "dns",
            "name did not resolve in dns: gaierror",
            id="resolver-down-http",
        ),
        pytest.param(
            "dns",
            "resolver-down",
            Channel.SMTP,
            Outcome.DNS_ERROR,
            "connect",
            "name did not resolve in connect: SMTPConnectError",
            id="resolver-down-smtp",
        ),
        pytest.param(
            "cut",
            CONTROL_SERVICE,
            Channel.CONTROL,
            Outcome.TIMEOUT,
            "connect",
            "no connection in time (0.5s)",
            id="uplink-dead-control",
        ),
        pytest.param(
            "cut",
            "reachable",
            Channel.API,
            Outcome.TIMEOUT,
            "connect",
            "deadline passed after 1s in connect",
            id="uplink-dead-target",
        ),
    ],
)
def test_observed_attempts(
    *,
    observed: Observed,
    prober: str,
    service: str,
    channel: Channel,
    outcome: Outcome,
    phase: str,
    detail: str,
) -> None:
    """Every real attempt of a fault has the outcome, phase and detail the fault implies."""
    seen = [a for a in observed.attempts[prober] if a.service == service and a.channel is channel]
    assert len(seen) == SECONDS
    for attempt in seen:
        assert (attempt.outcome, attempt.phase) == (outcome, phase), attempt
        assert attempt.detail.startswith(detail), attempt.detail
        assert attempt.prober == f"ns-{prober}"
        if outcome is Outcome.TIMEOUT and channel is not Channel.CONTROL:
            assert 0.9 < attempt.duration_s < 1.5


def test_drop_rules_dropped_packets(observed: Observed) -> None:
    """The SYNs went unanswered because tc dropped them (not refused, not routed elsewhere)."""
    assert observed.dropped["cli"] >= 2 * SECONDS  # HTTP and SMTP SYNs to port 8081
    assert observed.dropped["cut"] >= 2 * SECONDS  # control and target SYNs


@pytest.mark.parametrize(
    ("prober", "service", "verdict"),
    [
        pytest.param("cli", "reachable", ".", id="reachable"),
        pytest.param("cli", "blackholed", "x", id="blackholed"),
        pytest.param("cli", "resolver-silent", ".", id="resolver-silent"),
        pytest.param("dns", "resolver-down", ".", id="resolver-down"),
        pytest.param("cut", "reachable", "i", id="uplink-dead"),
    ],
)
def test_observed_seconds(observed: Observed, prober: str, service: str, verdict: str) -> None:
    """Each real second of a fault gets the verdict the contract gives it."""
    seconds = observed.seconds(prober, service)
    # Targets (and the control check) launch at their own offsets, so the first or last
    # observed second may lack one of them; the complete seconds are judged.
    assert len(seconds) >= SECONDS - 1
    judged = classify(config_from_yaml(JUDGE), [a for second in seconds for a in second], service)
    assert judged.line() == verdict * len(seconds)


@pytest.mark.parametrize(
    ("service", "fault", "line", "events"),
    [
        pytest.param("blackholed", ("cli", "blackholed"), OUTAGE, OUTAGE_EVENTS, id="blackholed"),
        pytest.param(
            "resolver-silent",
            ("cli", "resolver-silent"),
            "230.",
            [],
            id="resolver-silent-not-counted",
        ),
        pytest.param(
            "resolver-down", ("dns", "resolver-down"), "230.", [], id="resolver-down-not-counted"
        ),
        pytest.param(
            "resolver-down-counted",
            ("dns", "resolver-down"),
            OUTAGE,
            OUTAGE_EVENTS,
            id="resolver-down-counted-when-configured",
        ),
        pytest.param("reachable", ("cut", "reachable"), "30. 70i 130.", [], id="uplink-dead"),
    ],
)
def test_incident_timeline(
    *,
    observed: Observed,
    service: str,
    fault: tuple[str, str],
    line: str,
    events: list[Event],
) -> None:
    """70 seconds of the observed fault between healthy seconds: exact verdicts and incident."""
    healthy = observed.seconds("cli", "reachable")
    samples = {".": healthy, "x": observed.seconds(*fault)}
    attempts = restamp(OUTAGE, samples, service=service)
    judged = classify(config_from_yaml(JUDGE), attempts, service)
    assert judged.line() == expand(line)
    assert judged.events() == events


def test_one_prober_cut_off_another_sees_the_target(observed: Observed) -> None:
    """A prober whose uplink is dead is set aside; another prober's ok attempts keep it available."""
    healthy = observed.seconds("cli", "reachable")
    cut = observed.seconds("cut", "reachable")
    both = [[*h, *c] for h, c in zip(healthy, cut, strict=False)]
    attempts = restamp("30. 70i 130.", {".": healthy, "i": both}, service="reachable")
    judged = classify(config_from_yaml(JUDGE), attempts, "reachable")
    assert judged.line() == "." * 230
    assert [v.set_aside for v in judged.verdicts if v.channel == "api"][30:100] == [1] * 70
    assert judged.events() == []
