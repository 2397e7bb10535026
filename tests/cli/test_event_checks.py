"""Recorded provider events are checked alike through the CLI and the API (issue 17).

An event before the incident's first bad second, one from the future, or a
``customer_replied`` with no open ``awaiting_customer`` is refused (exit 2 / 400) and
nothing is recorded; RFC 3339 times may be written with a lower-case ``t`` and ``z``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from config import load_config
from config.timetext import format_time
from incidents.recorder import replay_into_store
from incidents.sqlite_store import SqliteStore
from probe.clock import ManualClock
from slawatch.daemon import Daemon
from slawatch.web import make_app
from tests.incidents.incidents_timeline import ENV, OUTAGE, T0, write_attempts, write_config
from tests.support.cli import run_slawatch

INCIDENT = "bird-20261102T100320Z"
FIRST_BAD = "2026-11-02T10:03:20Z"


def slawatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess, with the timeline's environment."""
    return run_slawatch(*args, cwd=cwd, env=ENV)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A config whose store holds the replayed outage (first bad second 10:03:20Z)."""
    config = write_config(tmp_path)
    attempts = write_attempts(tmp_path, OUTAGE)
    with SqliteStore(tmp_path / "store.db") as store:
        replay_into_store(
            attempts.read_bytes().splitlines(), load_config(config, ENV), store, horizon=11
        )
    return tmp_path


def _events(folder: Path) -> list[dict[str, Any]]:
    done = slawatch(
        "incidents", "show", INCIDENT, "--config", "slawatch.yaml", "--format", "json", cwd=folder
    )
    assert done.returncode == 0, done.stderr
    events: list[dict[str, Any]] = json.loads(done.stdout)["events"]
    return events


def _event(folder: Path, kind: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return slawatch(
        "incidents", "event", INCIDENT, kind, "--config", "slawatch.yaml", *extra, cwd=folder
    )


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        pytest.param(
            "provider_updated",
            ("--at", "1970-01-01T00:00:00Z"),
            f"incidents event: provider_updated: 1970-01-01T00:00:00Z is before the incident's "
            f"first bad second ({FIRST_BAD})",
            id="epoch",
        ),
        pytest.param(
            "ticket_opened",
            ("--ticket", "CS-1", "--at", "2026-11-02T10:03:19Z"),
            f"incidents event: ticket_opened: 2026-11-02T10:03:19Z is before the incident's "
            f"first bad second ({FIRST_BAD})",
            id="a-second-early",
        ),
        pytest.param(
            "provider_responded",
            ("--at", "2999-01-01T00:00:00Z"),
            "incidents event: provider_responded: 2999-01-01T00:00:00Z is in the future",
            id="future",
        ),
        pytest.param(
            "customer_replied",
            (),
            f"incidents event: customer_replied: incident {INCIDENT} is not awaiting the "
            "customer (record awaiting_customer first)",
            id="reply-without-waiting",
        ),
    ],
)
def test_the_cli_refuses_events_that_cannot_be(
    folder: Path, kind: str, extra: tuple[str, ...], message: str
) -> None:
    """Exit 2 with one line, and the incident's events stay as they were."""
    before = _events(folder)
    done = _event(folder, kind, *extra)
    assert done.returncode == 2
    assert done.stderr.strip().startswith(message)
    assert len(done.stderr.strip().splitlines()) == 1
    assert _events(folder) == before


def test_customer_replied_answers_an_open_wait(folder: Path) -> None:
    """awaiting_customer then customer_replied is accepted; a second reply is not."""
    assert _event(folder, "awaiting_customer", "--at", "2026-11-02T10:10:00Z").returncode == 0
    assert _event(folder, "customer_replied", "--at", "2026-11-02T10:20:00Z").returncode == 0
    again = _event(folder, "customer_replied")
    assert again.returncode == 2
    assert "is not awaiting the customer" in again.stderr


def test_lower_case_t_and_z_in_cli_times(folder: Path) -> None:
    """``--at`` and ``--next-update`` take RFC 3339 with a lower-case ``t`` and ``z``."""
    done = _event(
        folder,
        "provider_updated",
        "--at",
        "2026-11-02t10:05:00z",
        "--next-update",
        "2026-11-02t12:00:00.5z",
    )
    assert done.returncode == 0, done.stderr
    event = _events(folder)[-1]
    assert (event["at"], event["next_update_at"]) == (
        "2026-11-02T10:05:00Z",
        "2026-11-02T12:00:00.500Z",
    )


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(
            ("sla", "deadline", "--policy", "megaport", "--severity", "1", "--opened", "{0}"),
            id="sla-deadline",
        ),
        pytest.param(
            (
                "report",
                "--config",
                "slawatch.yaml",
                "--service",
                "bird",
                "--from",
                "{0}",
                "--to",
                "2026-11-02T11:00:00Z",
            ),
            id="report",
        ),
    ],
)
def test_lower_case_t_and_z_elsewhere_on_the_command_line(
    folder: Path, args: tuple[str, ...]
) -> None:
    """``sla deadline --opened`` and ``report --from`` read lower-case times alike."""
    upper, lower = (
        slawatch(*(a.format(t) for a in args), "--format", "json", cwd=folder)
        for t in ("2026-11-02T10:00:00Z", "2026-11-02t10:00:00z")
    )
    assert (upper.returncode, lower.returncode) == (0, 0), lower.stderr
    assert json.loads(lower.stdout) == json.loads(upper.stdout)


async def _post(folder: Path, body: dict[str, Any], now: float) -> tuple[int, dict[str, Any]]:
    loaded = load_config(folder / "slawatch.yaml", ENV)
    store = SqliteStore(folder / "store.db")
    core = Daemon(loaded, clock=ManualClock(now), registry=CollectorRegistry(), store=store)
    await core.open_store()
    client = TestClient(TestServer(make_app(core)))
    await client.start_server()
    try:
        response = await client.post(f"/api/v1/incidents/{INCIDENT}/events", json=body)
        answer: dict[str, Any] = await response.json()
        return response.status, answer
    finally:
        await client.close()
        await core.probing.stop()
        core.writer.close()
        store.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            {"kind": "provider_updated", "at": "1970-01-01T00:00:00Z"},
            f"provider_updated: 1970-01-01T00:00:00Z is before the incident's first bad "
            f"second ({FIRST_BAD})",
            id="epoch",
        ),
        pytest.param(
            {"kind": "provider_responded", "at": format_time(T0 + 7200)},
            "provider_responded: 2026-11-02T12:00:00Z is in the future (it is 2026-11-02T11:00:00Z)",
            id="future",
        ),
        pytest.param(
            {"kind": "customer_replied"},
            f"customer_replied: incident {INCIDENT} is not awaiting the customer "
            "(record awaiting_customer first)",
            id="reply-without-waiting",
        ),
    ],
)
async def test_the_api_refuses_events_that_cannot_be(
    folder: Path, body: dict[str, Any], message: str
) -> None:
    """POST …/events answers 400 with the same words, and records nothing."""
    before = _events(folder)
    status, answer = await _post(folder, body, now=T0 + 3600)
    assert (status, answer) == (400, {"error": message})
    assert _events(folder) == before


async def test_the_api_takes_lower_case_times(folder: Path) -> None:
    """An ``at`` with a lower-case ``t`` and ``z`` is recorded as the same time."""
    status, answer = await _post(
        folder, {"kind": "provider_responded", "at": "2026-11-02t10:30:00z"}, now=T0 + 3600
    )
    assert status == 201, answer
    assert _events(folder)[-1]["at"] == "2026-11-02T10:30:00Z"


async def test_the_update_clock_is_not_breached_by_a_refused_event(folder: Path) -> None:
    """The 1970 provider update of the issue no longer reaches the clocks."""
    await _post(folder, {"kind": "provider_updated", "at": "1970-01-01T00:00:00Z"}, now=T0 + 3600)
    done = slawatch(
        "incidents", "show", INCIDENT, "--config", "slawatch.yaml", "--format", "json", cwd=folder
    )
    clocks = json.loads(done.stdout)["clocks"]
    assert clocks["update"]["deadline"] is None
    assert clocks["update"]["state"] != "breached"
