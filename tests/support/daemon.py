"""`slawatch run` as a subprocess on a config file: start, wait ready, talk JSON, read its log, stop.

The one harness of the daemon tests, the hardening tests and the benchmarks. The daemon
runs in ``folder`` on ``folder/slawatch.yaml`` (so a relative ``storage.path`` lands there),
logs JSON lines to ``folder/daemon.log`` (appended across restarts) and answers on the
port the config gives it. Waits are on real time: the daemon runs on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.support.servers import HOST

CONFIG = "slawatch.yaml"
LOG = "daemon.log"


def write_config(folder: Path, config: Mapping[str, Any]) -> Path:
    """Write the daemon's config file into ``folder``; its path."""
    path = folder / CONFIG
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def wait_for(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    process: subprocess.Popen[bytes] | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy; fail early if ``process`` exits."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        result = check()
        if result:
            return result
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited with status {process.returncode} waiting for {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET a loopback URL: (status, body); (0, b'') when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except OSError:
        return 0, b""


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM and wait; SIGKILL if it does not stop in ``timeout``: the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout)


class Daemon:
    """`slawatch run` in a subprocess, with its log captured and its API at hand."""

    def __init__(
        self,
        folder: Path,
        port: int,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        module: str = "slawatch.cli",
        module_args: Sequence[str] = (),
    ) -> None:
        self.folder = folder
        # The module run as `python -m` (a test wrapper around the CLI), with its own arguments.
        self.module = module
        self.module_args = tuple(module_args)
        self.port = port
        self.log = folder / LOG
        # Variables added to this process's environment (the config's ${VAR}s).
        self.env = dict(env or {})
        # More `slawatch run` options, e.g. ("--log-level", "warning").
        self.args = tuple(args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        if self.proc is None:
            raise RuntimeError("slawatch is not started")
        return self.proc.pid

    def start(self, timeout: float = 20.0) -> None:
        """Start the daemon and wait until /readyz says it is ready."""
        command = [sys.executable, "-m", self.module, *self.module_args, "run", "--config", CONFIG]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*command, "--log-format", "json", *self.args],
                cwd=self.folder,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=log,
            )
        try:
            wait_for(
                lambda: self.get("/readyz")[0] == 200, timeout, "slawatch ready", process=self.proc
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log ends:\n{self.log_tail()}") from None

    def url(self, path: str) -> str:
        """An absolute URL on the daemon."""
        return f"http://{HOST}:{self.port}{path}"

    def get(self, path: str) -> tuple[int, bytes]:
        """GET a path: (status, body); (0, b'') when nothing answers."""
        return http_get(self.url(path))

    def json(self, path: str) -> Any:
        """GET a JSON document."""
        status, body = self.get(path)
        assert status == 200, (status, body)
        return json.loads(body)

    def post(self, path: str, body: dict[str, Any], token: str | None) -> tuple[int, Any]:
        """POST JSON with an optional bearer token: (status, decoded answer)."""
        request = urllib.request.Request(  # noqa: S310
            self.url(path),
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def signal(self, sig: signal.Signals) -> None:
        """Send a signal to the daemon."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: the exit status (SIGKILLed after ``timeout``; None if never started)."""
        if self.proc is None:
            return None
        return stop_process(self.proc, timeout)

    def kill(self, timeout: float = 10.0) -> int:
        """SIGKILL (kill -9) and wait: the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout)

    def log_lines(self) -> list[dict[str, Any]]:
        """The daemon's JSON log records so far (other lines skipped)."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the daemon's log."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
