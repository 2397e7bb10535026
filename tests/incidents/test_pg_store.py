"""The PostgreSQL store beyond the shared scenarios: selection, reachability, order, restarts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from incidents.lifecycle import signal_event, user_event
from incidents.model import EventRecord
from incidents.store import Batch, StoreError
from tests.incidents.test_store import TERMS, opened
from tests.support.cli import run_slawatch, unmeasured_env
from tests.support.paths import ROOT
from tests.support.postgres import PgCluster
from tests.support.servers import free_port

PASSWORD = "pg-hunter2-secret"
CONFIG = """
storage: {{url: "{url}"}}
services: [{{name: bird, sla: {{policy: bird-email-enterprise, calendar: us-eastern}}}}]
"""


def _store(url: str):
    from incidents.pg_store import PgStore

    return PgStore(url)


def test_check_config_reports_the_database(tmp_path: Path, postgres: PgCluster) -> None:
    """`check-config` connects to storage.url and says what is there."""
    url = postgres.new_database()
    (tmp_path / "c.yaml").write_text(CONFIG.format(url=url))
    done = run_slawatch("check-config", "c.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    host = url.split("@", 1)[1]
    assert f"storage: postgresql://{host}: PostgreSQL " in done.stdout
    assert "no slawatch schema yet" in done.stdout
    with _store(url):
        pass
    again = run_slawatch("check-config", "c.yaml", cwd=tmp_path)
    from incidents.pg_store import SCHEMA_VERSION

    assert f"schema version {SCHEMA_VERSION}" in again.stdout


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    """Nothing listening: exit 1, one line naming storage.url, never the password."""
    url = f"postgresql://slawatch:{PASSWORD}@127.0.0.1:{free_port()}/slawatch"
    (tmp_path / "c.yaml").write_text(CONFIG.format(url=url))
    done = run_slawatch("check-config", "c.yaml", cwd=tmp_path)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("c.yaml: storage.url: postgresql://127.0.0.1:")
    assert "cannot reach the database" in line
    assert PASSWORD not in done.stderr + done.stdout
    with pytest.raises(StoreError) as caught:
        _store(url)
    assert PASSWORD not in str(caught.value)


def test_cli_reads_incidents_from_the_database(tmp_path: Path, postgres: PgCluster) -> None:
    """`slawatch incidents list --config` answers from the shared store."""
    url = postgres.new_database()
    with _store(url) as store:
        store.commit(Batch(events=[signal_event(opened(), TERMS, source="classifier")]))
    (tmp_path / "c.yaml").write_text(CONFIG.format(url=url))
    done = run_slawatch("incidents", "list", "--config", "c.yaml", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [i["id"] for i in json.loads(done.stdout)] == ["bird-1"]


def test_concurrent_writers_never_let_a_reader_skip_an_event(postgres: PgCluster) -> None:
    """Two writers append events while a reader follows by seq: it sees each one once."""
    url = postgres.new_database()
    ids = ["bird-1", "bird-2"]
    with _store(url) as setup:
        setup.commit(
            Batch(
                events=[
                    signal_event(opened(i, 1_790_000_000 + n), TERMS, source="replay")
                    for n, i in enumerate(ids)
                ]
            )
        )
    per_writer = 40
    done = threading.Event()
    seen: list[EventRecord] = []

    def write(incident: str) -> None:
        with _store(url) as store:
            for n in range(per_writer):
                at = 1_790_000_100.0 + n
                event = user_event(
                    incident, "provider_updated", at=at, source="cli", recorded_at=at, note=str(n)
                )
                store.commit(Batch(events=[event]))

    def read() -> None:
        cursor = 0
        with _store(url) as store:
            while True:
                finished = done.is_set()
                for event in store.events_since(cursor):
                    seen.append(event)
                    cursor = event.seq or cursor
                if finished:
                    return

    writers = [threading.Thread(target=write, args=(i,)) for i in ids]
    reader = threading.Thread(target=read)
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    done.set()
    reader.join(60)
    seqs = [e.seq for e in seen]
    assert len(seqs) == len(set(seqs)) == len(ids) + 2 * per_writer
    assert seqs == sorted(seqs)  # type: ignore[type-var]


def test_the_store_survives_a_server_crash(postgres: PgCluster) -> None:
    """After `pg_ctl restart -m immediate` the next call reconnects; committed data is there."""
    url = postgres.new_database()
    with _store(url) as store:
        store.commit(Batch(events=[signal_event(opened(), TERMS, source="classifier")]))
        postgres.restart("immediate")
        assert [i.id for i in store.incidents()] == ["bird-1"]
        resolved = user_event("bird-1", "resolved", at=1.8e9, source="cli", recorded_at=1.8e9)
        (incident,) = store.commit(Batch(events=[resolved]))
        assert incident.state == "resolved"


def test_a_newer_schema_is_refused(postgres: PgCluster) -> None:
    """A database migrated by a newer slawatch is refused with one line, not used."""
    url = postgres.new_database()
    with _store(url):
        pass
    name = url.rsplit("/", 1)[1]
    postgres.sql("UPDATE schema_version SET version = 99", database=name)
    with pytest.raises(StoreError, match="schema version 99 is newer than this slawatch"):
        _store(url)


def test_sqlite_never_loads_the_postgres_driver(tmp_path: Path) -> None:
    """With storage.path only, opening the store and building the daemon imports no psycopg."""
    (tmp_path / "c.yaml").write_text("services: [{name: bird}]\n")
    code = (
        "import sys\n"
        "from prometheus_client import CollectorRegistry\n"
        "from config import load_config\n"
        "from probe.clock import SystemClock\n"
        "from slawatch.daemon import build\n"
        "from slawatch.storage import open_store\n"
        f"loaded = load_config({str(tmp_path / 'c.yaml')!r})\n"
        "build(loaded, clock=SystemClock(), registry=CollectorRegistry())\n"
        "open_store(loaded).close()\n"
        "print('psycopg' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=unmeasured_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
