"""Restart safety: a writer killed with SIGKILL mid-stream loses no closed second and no event."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from classifier.verdict import Verdict
from config import load_config
from incidents.lifecycle import incident_clocks
from incidents.sqlite_store import SqliteStore
from tests.incidents.incidents_timeline import ENV, T0, write_config, writer_command
from tests.support.paths import ROOT
from tests.support.timeline import VERDICT_CHAR, expand

# An outage long enough to open (10th bad second), upgrade (60th) and restore (120 ok).
TIMELINE = expand("60. 100x 140.")


def _writer(config: Path, store: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        writer_command(config, store, TIMELINE, "--delay", "0.004"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_to_end(config: Path, store: Path) -> None:
    done = subprocess.run(
        writer_command(config, store, TIMELINE),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _covered(store: SqliteStore, channel: str) -> str:
    """The channel's verdicts second by second from T0, as a timeline ('|' at a gap)."""
    out, expected_first = [], T0
    for run in store.runs("bird", channel, 0, 2 * T0):
        if run.first != expected_first:
            out.append("|")
        out.append(VERDICT_CHAR[Verdict(run.verdict)] * run.seconds)
        expected_first = run.last + 1
    return "".join(out)


@pytest.mark.parametrize(
    "kill_after", [pytest.param(75, id="just-after-open"), pytest.param(190, id="before-restore")]
)
def test_sigkill_mid_stream_then_resume(tmp_path: Path, kill_after: int) -> None:
    """Killed after N committed seconds, a restarted writer ends with what an uninterrupted one has."""
    config = write_config(tmp_path)
    store_file = tmp_path / "store.db"
    writer = _writer(config, store_file)
    assert writer.stdout is not None
    committed = []
    for line in writer.stdout:
        committed.append(int(line.split()[1]))
        if len(committed) >= kill_after:
            writer.send_signal(signal.SIGKILL)
            break
    writer.wait(timeout=30)
    writer.stdout.close()
    assert writer.stderr is not None
    writer.stderr.close()
    assert writer.returncode == -signal.SIGKILL

    with SqliteStore(store_file) as store:
        marks = store.high_water()
        # Every second reported committed is stored, contiguously, with its verdict.
        assert set(marks.values()) == {marks[("bird", "combined")]}
        assert committed[-1] <= marks[("bird", "combined")] < T0 + len(TIMELINE) - 1
        seen = _covered(store, "combined")
        assert seen == TIMELINE[: len(seen)]
        assert len(store.incidents()) == 1
        assert store.get("bird-20261102T100100Z") is not None

    _run_to_end(config, store_file)
    reference = tmp_path / "reference.db"
    _run_to_end(config, reference)

    with SqliteStore(store_file) as resumed, SqliteStore(reference) as straight:
        for channel in ("api", "smtp", "combined"):
            assert resumed.runs("bird", channel, 0, 2 * T0) == straight.runs(
                "bird", channel, 0, 2 * T0
            )
        assert _covered(resumed, "combined") == TIMELINE
        (incident,) = resumed.incidents()
        assert incident == straight.get(incident.id)
        events = resumed.events(incident.id)
        assert [e.kind for e in events] == ["opened", "upgraded", "restored"]
        assert [e.to_json() | {"seq": 0} for e in events] == [
            e.to_json() | {"seq": 0} for e in straight.events(incident.id)
        ]
        assert len(resumed.samples("bird", 0, 2 * T0)) == 100
        # The clocks resume with the deadlines the incident opened with.
        loaded = load_config(config, ENV)
        assert loaded.config.service("bird").sla.policy == "bird-email-enterprise"
        clocks = incident_clocks(incident, events, T0 + 400)
        assert clocks["first_response"].deadline == incident.detected_at + 900
        assert clocks["first_response"].state == "running"
        assert incident_clocks(incident, events, T0 + 1000)["first_response"].state == "breached"
        assert clocks == incident_clocks(incident, straight.events(incident.id), T0 + 400)
