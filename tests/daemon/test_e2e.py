"""End to end: `slawatch run` against a loopback provider that fails and recovers, seen from outside.

The tests in this module share one daemon and run in order (one story): outage, incident
open and upgrade, status page, metrics and a real Prometheus, API writes, reload, recovery
and evidence, then SIGTERM during a second outage and a restart.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.timetext import parse_time
from slawatch.simulator import SimulatedProvider
from tests.support.cli import run_slawatch
from tests.support.daemon import Daemon, http_get, wait_for, write_config
from tests.support.provider import TOKEN, daemon_config, provider_daemon, provider_thread
from tests.support.servers import free_port


@dataclass
class Story:
    """What the module's tests share."""

    folder: Path
    provider: SimulatedProvider
    daemon: Daemon
    down_at: float = 0.0
    incident: str = ""


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """A running daemon watching a healthy simulated provider."""
    folder = tmp_path_factory.mktemp("e2e")
    with provider_thread() as provider:
        daemon = provider_daemon(folder, provider)
        daemon.start()
        try:
            yield Story(folder, provider, daemon)
        finally:
            daemon.stop()


def _open_incidents(daemon: Daemon) -> list[dict[str, object]]:
    incidents: list[dict[str, object]] = daemon.json("/api/v1/incidents?state=open")["incidents"]
    return incidents


def test_outage_opens_degraded_then_upgrades_to_critical(story: Story) -> None:
    """Severity 2 opens at the 10th failing second; the 20th (critical_after) upgrades it to 1."""
    daemon = story.daemon
    wait_for(
        lambda: (
            daemon.json("/api/v1/services")["services"][0]["channels"]["combined"]["verdict"]
            == "available"
        ),
        20,
        "a first available second",
    )
    story.down_at = time.time()
    story.provider.healthy = False
    opened = wait_for(lambda: _open_incidents(daemon), 30, "an open incident")[0]
    story.incident = str(opened["id"])
    started = parse_time(str(opened["started_at"]))
    detected = parse_time(str(opened["detected_at"]))
    assert abs(started - story.down_at) <= 1.5
    # The degraded rule holds at the 10th bad second: detected at the end of it.
    assert detected - started == 10
    assert opened["provider_severity"] in ("Severity 2", "Severity 1")
    upgraded = wait_for(
        lambda: [i for i in _open_incidents(daemon) if i["severity"] == 1], 30, "the upgrade"
    )[0]
    assert upgraded["id"] == story.incident
    assert upgraded["provider_severity"] == "Severity 1"
    change = upgraded["severity_changes"][0]
    assert (change["from"], change["to"]) == (2, 1)
    assert parse_time(change["at"]) - started == 20
    assert set(upgraded["clocks"]) == {"first_response", "update", "restore"}


def test_status_page_shows_open_incident_in_chromium(
    story: Story, require_tool: Callable[[str], str], tmp_path: Path
) -> None:
    """Headless Chromium renders the status page with the open incident and its countdowns."""
    chromium = require_tool("chromium")
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            story.daemon.url("/"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    open_table = dom[dom.index('id="open"') : dom.index('id="recent"')]
    assert story.incident in open_table
    assert "Severity 1" in open_table
    # The countdown script ran: remaining time is shown as h/m/s, not the server's seconds.
    assert re.search(r'data-deadline="\d+">\d+h \d\dm \d\ds<', open_table)


def test_metrics_count_the_outage(story: Story, require_tool: Callable[[str], str]) -> None:
    """/metrics counts unavailable seconds and failed attempts, and passes promtool."""
    status, body = story.daemon.get("/metrics")
    assert status == 200
    text = body.decode()

    def value(series: str) -> float:
        match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
        assert match, series
        return float(match.group(1))

    assert (
        value('slawatch_seconds_total{channel="combined",service="mail",verdict="unavailable"}')
        >= 20
    )
    assert (
        value(
            'slawatch_attempts_total{channel="api",outcome="server_error",service="mail",target="account"}'
        )
        >= 20
    )
    assert (
        value(
            'slawatch_attempts_total{channel="smtp",outcome="server_error",service="mail",target="inject"}'
        )
        >= 20
    )
    assert value('slawatch_incidents_open{service="mail",severity="1"}') == 1
    assert value('slawatch_incidents_opened_total{service="mail",severity="2"}') == 1
    assert (
        value('slawatch_sla_deadline_timestamp_seconds{clock="first_response",service="mail"}') > 0
    )
    assert value("slawatch_scheduler_lag_seconds_count") > 0
    proc = subprocess.run(
        [require_tool("promtool"), "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_real_prometheus_scrapes_the_daemon(
    story: Story, require_tool: Callable[[str], str], tmp_path: Path
) -> None:
    """A Prometheus server scraping every second answers a query over slawatch_seconds_total."""
    prometheus = require_tool("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: slawatch\n    static_configs: [{{targets: ['127.0.0.1:{story.daemon.port}']}}]\n"
    )
    server = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    query = 'sum(slawatch_seconds_total{service="mail",channel="combined",verdict="unavailable"})'
    url = f"http://127.0.0.1:{port}/api/v1/query?query={query}"

    def answer() -> float | None:
        status, body = http_get(
            f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query}),
            timeout=2,
        )
        if status != 200:
            return None
        result = json.loads(body)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    try:
        seen = wait_for(answer, 30, f"Prometheus to answer {url}")
    finally:
        server.terminate()
        server.wait(10)
    assert seen >= 20


def test_api_writes_need_the_token(story: Story) -> None:
    """POST events: 401 without the bearer token, 201 with it, and the clock is met."""
    path = f"/api/v1/incidents/{story.incident}/events"
    status, body = story.daemon.post(path, {"kind": "provider_responded"}, token=None)
    assert status == 401, body
    status, body = story.daemon.post(path, {"kind": "provider_responded"}, token="wrong")
    assert status == 401, body
    status, body = story.daemon.post(
        path, {"kind": "provider_responded", "note": "on it"}, token=TOKEN
    )
    assert status == 201, body
    assert body["clocks"]["first_response"]["state"] == "met"
    status, body = story.daemon.post(path, {"kind": "no_such_kind"}, token=TOKEN)
    assert status == 400
    assert "unknown event kind" in body["error"]
    # The token never shows in an answer or the log.
    assert TOKEN not in json.dumps(story.daemon.json(f"/api/v1/incidents/{story.incident}"))


def test_reload_keeps_running_on_bad_config_and_applies_good_one(story: Story) -> None:
    """SIGHUP with an invalid file logs the located error; a valid one adds a target live."""
    daemon = story.daemon
    config_file = story.folder / "slawatch.yaml"
    good = config_file.read_text()
    config_file.write_text(good.replace("timeout: 1s", "timeout: one second", 1))
    daemon.signal(signal.SIGHUP)
    refused = wait_for(
        lambda: [r for r in daemon.log_lines() if r["message"].startswith("config reload refused")],
        10,
        "the refused reload in the log",
    )
    assert "services[0].api[0].timeout: invalid duration 'one second'" in refused[0]["error"]
    assert daemon.get("/healthz")[0] == 200

    def attempts(text: str, target: str) -> float:
        match = re.search(
            rf'^slawatch_attempts_total\{{channel="api",outcome="server_error",service="mail",target="{target}"\}} (\S+)$',
            text,
            re.M,
        )
        return float(match.group(1)) if match else -1.0

    before = attempts(daemon.get("/metrics")[1].decode(), "account")
    port = daemon.port
    write_config(story.folder, daemon_config(story.provider, port, extra_api=True))
    daemon.signal(signal.SIGHUP)
    wait_for(
        lambda: attempts(daemon.get("/metrics")[1].decode(), "account-2") > 0, 15, "the new target"
    )
    assert attempts(daemon.get("/metrics")[1].decode(), "account") >= before
    assert [i["id"] for i in _open_incidents(daemon)] == [story.incident]


def test_recovery_restores_and_evidence_verifies(story: Story) -> None:
    """After recover_after available seconds the incident is restored; its evidence verifies."""
    daemon = story.daemon
    story.provider.healthy = True
    restored = wait_for(
        lambda: daemon.json("/api/v1/incidents?state=restored")["incidents"],
        30,
        "restore",
    )[0]
    assert restored["id"] == story.incident
    status, body = daemon.get(f"/api/v1/incidents/{story.incident}/evidence?format=json")
    assert status == 200
    bundle = story.folder / "bundle.json"
    bundle.write_bytes(body)
    assert TOKEN.encode() not in body
    verified = run_slawatch("evidence", "verify", str(bundle), cwd=story.folder)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    status, body = daemon.get(f"/api/v1/incidents/{story.incident}/evidence?format=md")
    assert status == 200
    assert b"Unavailability" in body


def test_sigterm_during_outage_then_restart_resumes(story: Story) -> None:
    """SIGTERM mid-outage exits 0 within timeout + 2 s; after a restart nothing is duplicated."""
    daemon = story.daemon
    story.provider.healthy = False
    wait_for(lambda: _open_incidents(daemon), 30, "the reopened incident")
    start = time.monotonic()
    assert daemon.stop() == 0
    took = time.monotonic() - start
    # Longest timeout (1 s) plus 2 s; a little more for interpreter exit on a loaded machine.
    assert took < 1 + 2 + 1.5, took
    assert "slawatch stopped" in [r["message"] for r in daemon.log_lines()]
    daemon.start()
    incidents = daemon.json("/api/v1/incidents?state=all")["incidents"]
    assert [i["id"] for i in incidents] == [story.incident]
    assert incidents[0]["state"] == "open"
    assert incidents[0]["reopened_at"]
    resumed = [r for r in daemon.log_lines() if r["message"] == "resumed open incident"]
    assert resumed[-1]["incident"] == story.incident
