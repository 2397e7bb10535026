"""Storage faults seen from outside: a full disk under a running daemon, damaged stores at start."""

from __future__ import annotations

import itertools
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from config.timetext import parse_time
from incidents.sqlite_store import SqliteStore
from incidents.store import Batch
from tests.hardening.hardening_helpers import fill, tmpfs
from tests.support.cli import run_slawatch
from tests.support.daemon import wait_for
from tests.support.provider import provider_daemon, provider_thread
from tests.support.servers import free_port

REFUSED = "store refuses writes; keeping batches in memory"


def _metric(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else -1.0


def _contiguous(store: SqliteStore, channel: str, first: int, last: int) -> None:
    runs = store.runs("mail", channel, first, last)
    assert runs, channel
    for before, after in itertools.pairwise(runs):
        assert after.first == before.last + 1, (channel, before, after)


def test_disk_full_keeps_probing_then_catches_up(tmp_path: Path) -> None:
    """A full store disk: probing and /metrics go on, /readyz says 503 with the error, one
    error line (not one a second); once space is freed the buffered incident is committed."""
    with tmpfs(tmp_path / "disk", size="2m") as disk, provider_thread() as provider:
        storage = {"path": str(disk / "store.db")}
        daemon = provider_daemon(tmp_path, provider, extra={"storage": storage})
        daemon.start()
        try:
            filler = fill(disk)
            wait_for(lambda: daemon.get("/readyz")[0] == 503, 15, "/readyz to report it")
            body = daemon.get("/readyz")[1]
            assert b"database or disk is full" in body
            assert b'"store_writable": false' in body
            provider.healthy = False
            # Verdicts go on live; incident metrics follow the store's event log, so the
            # incident counts once it is committed (below), not before.
            streak = 'slawatch_unavailable_streak_seconds{channel="combined",service="mail"}'
            wait_for(
                lambda: _metric(daemon.get("/metrics")[1].decode(), streak) >= 12,
                30,
                "an outage judged while the disk is full",
            )
            series = 'slawatch_incidents_opened_total{service="mail",severity="2"}'
            assert _metric(daemon.get("/metrics")[1].decode(), series) == 0
            attempts = 'slawatch_attempts_total{channel="api",outcome="server_error",service="mail",target="account"}'
            seen = _metric(daemon.get("/metrics")[1].decode(), attempts)
            wait_for(
                lambda: _metric(daemon.get("/metrics")[1].decode(), attempts) >= seen + 2,
                10,
                "probing to go on",
            )
            assert daemon.get("/healthz")[0] == 200
            assert daemon.json("/api/v1/incidents")["incidents"] == []
            refused = [r for r in daemon.log_lines() if r["message"] == REFUSED]
            # Well over ten failed commits by now, logged once (the limit is one a minute).
            assert len(refused) == 1, refused
            assert refused[0]["error"] == "database or disk is full"

            filler.unlink()
            wait_for(lambda: daemon.get("/readyz")[0] == 200, 15, "ready again")
            messages = [r["message"] for r in daemon.log_lines()]
            assert "store writable again; caught up" in messages
            incident = wait_for(
                lambda: daemon.json("/api/v1/incidents")["incidents"], 10, "the incident"
            )[0]
            started = int(parse_time(incident["started_at"]))
            assert _metric(daemon.get("/metrics")[1].decode(), series) == 1
            provider.healthy = True
        finally:
            assert daemon.stop() == 0
        with SqliteStore(disk / "store.db") as store:
            last = store.high_water()[("mail", "combined")]
            assert last > started + 10
            # The seconds judged while the disk was full are all there, unbroken.
            for channel in ("api", "smtp", "combined"):
                _contiguous(store, channel, started - 5, last)
            assert [i.id for i in store.incidents()] == [incident["id"]]
            assert store.samples("mail", started, started + 5)


def _write_store(path: Path) -> None:
    with SqliteStore(path) as store:
        store.commit(Batch(classifier_state={"padding": "x" * 60_000}))


def _damage_tail(path: Path) -> None:
    """Overwrite the last pages: the header still says SQLite, the data is garbage."""
    _write_store(path)
    data = bytearray(path.read_bytes())
    pages = len(data) // 4096
    for page in range(pages - 8, pages):
        data[page * 4096 : (page + 1) * 4096] = b"\xab" * 4096
    path.write_bytes(bytes(data))


def _random_bytes(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 80)


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.close()


def _truncated(path: Path) -> None:
    _write_store(path)
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\0" * (len(data) - 100))


def _directory(path: Path) -> None:
    path.mkdir()


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        pytest.param(_random_bytes, "file is not a database", id="random-bytes"),
        pytest.param(_damage_tail, "malformed", id="damaged-pages"),
        pytest.param(_truncated, "malformed", id="zeroed-pages"),
        pytest.param(_foreign, "not a slawatch store", id="foreign-database"),
        pytest.param(_directory, "unable to open", id="a-directory"),
    ],
)
def test_damaged_store_at_start_is_one_clear_line(
    tmp_path: Path, damage: object, expected: str
) -> None:
    """`slawatch run` on a damaged store exits 2 with one line naming the file, no traceback."""
    store = tmp_path / "store.db"
    assert callable(damage)
    damage(store)
    config = tmp_path / "slawatch.yaml"
    config.write_text(
        f'server: {{listen: "127.0.0.1:{free_port()}"}}\n'
        "storage: {path: store.db}\nservices:\n  - name: mail\n"
    )
    done = run_slawatch("run", "--config", str(config), cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{store}: "), lines
    assert expected in lines[0]


def test_read_only_store_at_start_is_one_clear_line(tmp_path: Path) -> None:
    """A store on a filesystem mounted read-only: exit 2, one line naming the file."""
    with tmpfs(tmp_path / "disk", size="2m") as disk:
        _write_store(disk / "store.db")
        done = subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=False)
        assert done.returncode == 0
        config = tmp_path / "slawatch.yaml"
        config.write_text(
            f'server: {{listen: "127.0.0.1:{free_port()}"}}\n'
            f"storage: {{path: {disk / 'store.db'}}}\nservices:\n  - name: mail\n"
        )
        done = run_slawatch("run", "--config", str(config), cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{disk / 'store.db'}: "), lines
