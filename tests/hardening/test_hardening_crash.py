"""SIGKILL of `slawatch run` in the middle of an incident, then a restart."""

from __future__ import annotations

import signal
from pathlib import Path

from incidents.sqlite_store import SqliteStore
from tests.support.daemon import wait_for
from tests.support.provider import provider_daemon, provider_thread


def _seconds(store: SqliteStore, channel: str) -> dict[int, str]:
    """Every persisted second of a channel and its verdict."""
    out: dict[int, str] = {}
    for run in store.runs("mail", channel, 0, 1 << 40):
        for second in range(run.first, run.last + 1):
            out[second] = run.verdict
    return out


def test_sigkill_mid_incident_then_restart(tmp_path: Path) -> None:
    """After SIGKILL every committed second survives; the restarted daemon resumes the same
    incident with the same clocks, opens no duplicate, and restores it when the outage ends."""
    with provider_thread() as provider:
        daemon = provider_daemon(tmp_path, provider)
        daemon.start()
        try:
            provider.healthy = False
            before = wait_for(
                lambda: daemon.json("/api/v1/incidents?state=open")["incidents"],
                30,
                "an open incident",
            )[0]
            with SqliteStore(tmp_path / "store.db") as store:
                committed = {ch: _seconds(store, ch) for ch in ("api", "smtp", "combined")}
            assert daemon.kill() == -signal.SIGKILL
            with SqliteStore(tmp_path / "store.db") as store:
                for channel, seconds in committed.items():
                    after = _seconds(store, channel)
                    # Nothing committed before the kill is lost or changed.
                    assert {s: after.get(s) for s in seconds} == seconds, channel
                assert [i.id for i in store.incidents()] == [before["id"]]

            daemon.start()
            resumed = [r for r in daemon.log_lines() if r["message"] == "resumed open incident"]
            assert [r["incident"] for r in resumed] == [before["id"]]
            now = daemon.json(f"/api/v1/incidents/{before['id']}")
            for key in ("started_at", "detected_at", "severity"):
                assert now[key] == before[key], key
            for name, clock in before["clocks"].items():
                # Clocks are derived from stored events: the same deadlines after the restart.
                assert now["clocks"][name]["deadline"] == clock["deadline"], name
                assert now["clocks"][name]["state"] == "running", name
            # The outage goes on across the restart: still one incident, never a second one.
            wait_for(
                lambda: (
                    daemon.json("/api/v1/services")["services"][0]["channels"]["combined"][
                        "verdict"
                    ]
                    == "unavailable"
                ),
                15,
                "unavailable seconds after the restart",
            )
            provider.healthy = True
            restored = wait_for(
                lambda: daemon.json("/api/v1/incidents?state=restored")["incidents"],
                30,
                "the restore",
            )
            assert [i["id"] for i in restored] == [before["id"]]
            assert [i["id"] for i in daemon.json("/api/v1/incidents?state=all")["incidents"]] == [
                before["id"]
            ]
        finally:
            daemon.stop()
