"""The ``incidents`` command on a real store file, alone and beside a running writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config import load_config
from incidents.recorder import replay_into_store
from incidents.sqlite_store import SqliteStore
from tests.incidents.incidents_timeline import (
    ENV,
    OUTAGE,
    write_attempts,
    write_config,
    writer_command,
)
from tests.support.cli import run_slawatch
from tests.support.paths import ROOT

INCIDENT = "bird-20261102T100320Z"


def slawatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess, with the timeline's environment."""
    return run_slawatch(*args, cwd=cwd, env=ENV)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A config whose store (storage.path, next to it) holds the replayed outage."""
    config = write_config(tmp_path)
    attempts = write_attempts(tmp_path, OUTAGE)
    with SqliteStore(tmp_path / "store.db") as store:
        replay_into_store(
            attempts.read_bytes().splitlines(), load_config(config, ENV), store, horizon=11
        )
    return tmp_path


def test_list_finds_the_store_through_the_config(
    folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """storage.path is relative to the config file, so the command works from any folder."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    done = slawatch(
        "incidents",
        "list",
        "--config",
        str(folder / "slawatch.yaml"),
        "--format",
        "json",
        cwd=elsewhere,
    )
    assert done.returncode == 0, done.stderr
    (incident,) = json.loads(done.stdout)
    assert (incident["id"], incident["state"], incident["severity"]) == (INCIDENT, "restored", 1)
    text = slawatch("incidents", "list", "--store", "store.db", "--state", "open", cwd=folder)
    assert (text.returncode, text.stdout) == (0, "no incidents\n")


def test_event_then_show(folder: Path) -> None:
    """A recorded ticket and response show up with their source, and the clocks follow them."""
    done = slawatch(
        "incidents",
        "event",
        INCIDENT,
        "ticket_opened",
        "--ticket",
        "CS-1234",
        "--at",
        "2026-11-02T10:05:00Z",
        "--config",
        "slawatch.yaml",
        cwd=folder,
    )
    assert (done.returncode, done.stdout) == (
        0,
        f"{INCIDENT}: ticket_opened recorded at 2026-11-02T10:05:00Z; now restored\n",
    )
    done = slawatch(
        "incidents",
        "event",
        INCIDENT,
        "provider_responded",
        "--at",
        "2026-11-02T10:12:00Z",
        "--config",
        "slawatch.yaml",
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr
    shown = slawatch(
        "incidents", "show", INCIDENT, "--config", "slawatch.yaml", "--format", "json", cwd=folder
    )
    document = json.loads(shown.stdout)
    assert document["ticket"] == "CS-1234"
    assert [(e["kind"], e["source"]) for e in document["events"]] == [
        ("opened", "replay"),
        ("upgraded", "replay"),
        ("restored", "replay"),
        ("ticket_opened", "cli"),
        ("provider_responded", "cli"),
    ]
    assert document["clocks"]["first_response"] | {"elapsed_s": 0, "remaining_s": 0} == {
        "deadline": "2026-11-02T10:20:00Z",
        # The same projection as the API's: the deadline also as epoch seconds.
        "deadline_epoch": 1793614800.0,
        "state": "met",
        "target": "15m",
        "calendar": "24x7",
        "elapsed_s": 0,
        "remaining_s": 0,
        "breaches": 0,
        # And in the time zone of its calendar.
        "time_zone": "UTC",
        "deadline_local": "2026-11-02T10:20:00+00:00",
    }
    text = slawatch("incidents", "show", INCIDENT, "--config", "slawatch.yaml", cwd=folder).stdout
    assert "2026-11-02T10:05:00Z  ticket_opened      by cli        ticket CS-1234" in text
    assert "first_response met      deadline 2026-11-02T10:20:00Z" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("show", "bird-nope"), "no incident 'bird-nope'", id="unknown-incident"),
        pytest.param(
            ("event", INCIDENT, "severity_changed"),
            "a severity is given with severity_changed",
            id="severity-missing",
        ),
        pytest.param(
            ("event", INCIDENT, "resolved", "--at", "yesterday"),
            "--at: invalid RFC 3339 time",
            id="bad-time",
        ),
        pytest.param(
            ("event", INCIDENT, "severity_changed", "--severity", "1"),
            "already severity 1",
            id="no-change",
        ),
    ],
)
def test_bad_input_exits_2(folder: Path, args: tuple[str, ...], message: str) -> None:
    """Bad input is one line on stderr and exit status 2; the store is unchanged."""
    done = slawatch("incidents", *args, "--store", "store.db", cwd=folder)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    with SqliteStore(folder / "store.db") as store:
        assert len(store.events(INCIDENT)) == 3


def test_resolved_incident_takes_no_more_events(folder: Path) -> None:
    """After resolution a user event is refused with exit 2."""
    assert (
        slawatch(
            "incidents",
            "event",
            INCIDENT,
            "resolved",
            "--note",
            "RCA",
            "--store",
            "store.db",
            cwd=folder,
        ).returncode
        == 0
    )
    done = slawatch(
        "incidents", "event", INCIDENT, "provider_updated", "--store", "store.db", cwd=folder
    )
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f"incidents event: incident {INCIDENT} is resolved: no more events",
    )


def test_missing_store_is_bad_input(tmp_path: Path) -> None:
    """A store file that does not exist is not created by a read command."""
    done = slawatch("incidents", "list", "--store", "absent.db", cwd=tmp_path)
    assert done.returncode == 2
    assert "no incident store there" in done.stderr
    assert not (tmp_path / "absent.db").exists()


def test_concurrent_events_beside_a_running_writer_lose_nothing(tmp_path: Path) -> None:
    """Six simultaneous CLI events while the daemon-like writer commits every second: all kept."""
    config = write_config(tmp_path)
    store_file, stop = tmp_path / "store.db", tmp_path / "stop"
    writer = subprocess.Popen(
        writer_command(config, store_file, "30x", "--delay", "0.01", "--stop", str(stop)),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        incident = None
        for _ in range(1200):  # up to a minute
            if incident is not None:
                break
            time.sleep(0.05)
            if store_file.exists():
                with SqliteStore(store_file) as store:
                    found = store.incidents()
                incident = found[0].id if found else None
        assert incident is not None
        callers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "slawatch.cli",
                    "incidents",
                    "event",
                    incident,
                    "provider_updated",
                    "--note",
                    f"update {n}",
                    "--store",
                    str(store_file),
                ],
                env={**os.environ, **ENV},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(6)
        ]
        results = [(c.wait(timeout=120), c.communicate()) for c in callers]
        assert [code for code, _ in results] == [0] * 6, [err for _, (_, err) in results]
        assert writer.poll() is None, "the writer finished before the events were recorded"
        # Let the writer reach the restore before stopping it: on a loaded machine its
        # seconds come slower than the delay says.
        for _ in range(1200):  # up to a minute
            with SqliteStore(store_file) as store:
                found = store.get(incident)
            if found is not None and found.state == "restored":
                break
            time.sleep(0.05)
    finally:
        stop.touch()
        writer.wait(timeout=60)
        assert writer.stderr is not None
        errors = writer.stderr.read()
        writer.stderr.close()
    assert writer.returncode == 0, errors
    with SqliteStore(store_file) as store:
        events = store.events(incident)
    notes = sorted(e.note for e in events if e.kind == "provider_updated")
    assert notes == [f"update {n}" for n in range(6)]
    assert [e.kind for e in events if e.source == "classifier"] == ["opened", "restored"]
