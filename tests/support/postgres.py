"""A private PostgreSQL for the tests: one cluster per session in a temp dir, one database per test.

Debian's ``postgresql`` package provides the server (``make test`` installs it when missing).
``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user,
which runs every server command through ``runuser``. The server listens on 127.0.0.1 at a
free port and on a unix socket in the cluster's folder; nothing else can reach it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.ci_tools import missing
from tests.support.servers import free_port

# The Debian layout keeps the server binaries out of PATH, one folder per major version.
_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_counter = itertools.count(1)


def _bindir() -> Path | None:
    found = shutil.which("pg_config")
    if found is not None:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        path = Path(out.stdout.strip())
        if (path / "initdb").exists():
            return path
    for candidate in sorted(_DEBIAN_ROOT.glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    return None


@dataclass
class PgCluster:
    """A running private cluster: its folder, port, socket folder and server binaries."""

    folder: Path
    port: int
    bindir: Path
    as_user: str | None

    def url(self, database: str = "postgres") -> str:
        """A libpq URL of one database over TCP on loopback."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bindir / tool), *args]
        if self.as_user is not None:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return command

    def run(self, tool: str, *args: str, timeout: float = 60) -> str:
        """Run a server tool (as the cluster's owner); its output, or AssertionError."""
        done = subprocess.run(
            self._command(tool, *args), capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, f"{tool} {' '.join(args)}: {done.stderr or done.stdout}"
        return done.stdout

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one SQL statement with psql over the unix socket."""
        return self.run(
            "psql", "-X", "-q", "-At", "-h", str(self.folder), "-p", str(self.port),
            "-U", "postgres", "-d", database, "-c", statement,
        )  # fmt: skip

    def start(self) -> None:
        """Start (or restart after a stop) the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-w", "-t", "60",
                 "-l", str(self.folder / "server.log"), "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash, as after a power cut)."""
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "immediate") -> None:
        """Stop the server the given way and start it again on the same port."""
        self.stop(mode)
        self.start()

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"t{os.getpid()}_{next(_counter)}"
        self.sql(f"CREATE DATABASE {name}")
        return self.url(name)


@contextlib.contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """A fresh private cluster for the duration of the block (skipped, or failed under CI,
    when the PostgreSQL server is not installed)."""
    bindir = _bindir()
    if bindir is None:
        missing("PostgreSQL server (Debian package postgresql)")
    as_user = "postgres" if os.geteuid() == 0 else None
    if as_user is not None and shutil.which("runuser") is None:
        missing("runuser (to run PostgreSQL as the postgres user)")
    folder = Path(tempfile.mkdtemp(prefix="slawatch-pg-"))
    if as_user is not None:
        shutil.chown(folder, user=as_user)
    cluster = PgCluster(folder=folder, port=free_port(), bindir=bindir, as_user=as_user)
    try:
        cluster.run("initdb", "-D", str(folder / "data"), "--no-sync", "-A", "trust",
                    "-U", "postgres", "-E", "UTF8", "--locale=C")  # fmt: skip
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
