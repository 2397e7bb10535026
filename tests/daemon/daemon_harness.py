"""Test harness: a simulated provider on a background loop and `slawatch run` as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from slawatch.simulator import SimulatedProvider


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProviderThread:
    """A SimulatedProvider running on its own event loop in a thread, switched from the test."""

    def __init__(self) -> None:
        self.provider = SimulatedProvider()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> SimulatedProvider:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.provider.start(), self._loop).result(10)
        return self.provider

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.provider.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def daemon_config(
    provider: SimulatedProvider, port: int, *, extra_api: bool = False, **classifier: Any
) -> dict[str, Any]:
    """A config with one production service probing the simulated API and SMTP port."""
    thresholds = {"critical_after": "20s", "recover_after": "5s", **classifier}
    api = [{"name": "account", "url": provider.api_url, "timeout": "1s"}]
    if extra_api:
        api.append({"name": "account-2", "url": provider.api_url, "timeout": "1s"})
    return {
        "prober": {"id": "e2e-1"},
        "server": {"listen": f"127.0.0.1:{port}", "token": "${E2E_TOKEN}"},
        "storage": {"path": "store.db"},
        "services": [
            {
                "name": "mail",
                "sla": {"policy": "megaport", "calendar": "uk"},
                "classifier": thresholds,
                "api": api,
                "smtp": [
                    {
                        "name": "inject",
                        "host": provider.host,
                        "port": provider.smtp_port,
                        "tls": "none",
                        "timeout": "1s",
                    }
                ],
            }
        ],
    }


TOKEN = "e2e-secret-token-4711"


class Daemon:
    """`slawatch run` in a subprocess, with its log captured and its API at hand."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.log = folder / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the daemon and wait until it is ready."""
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "slawatch.cli",
                "run",
                "--config",
                "slawatch.yaml",
                "--log-format",
                "json",
            ],
            cwd=self.folder,
            env={**os.environ, "E2E_TOKEN": TOKEN},
            stdout=handle,
            stderr=handle,
        )
        handle.close()
        wait_for(lambda: self.get("/readyz")[0] == 200, 20, "daemon ready")

    def url(self, path: str) -> str:
        """An absolute URL on the daemon."""
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, bytes]:
        """GET a path: (status, body); (0, b'') when nothing answers."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=5) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def json(self, path: str) -> Any:
        """GET a JSON document."""
        status, body = self.get(path)
        assert status == 200, (status, body)
        return json.loads(body)

    def post(self, path: str, body: dict[str, Any], token: str | None) -> tuple[int, Any]:
        """POST JSON with an optional bearer token."""
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

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log_lines(self) -> list[dict[str, Any]]:
        """The daemon's JSON log records so far."""
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


def write_config(folder: Path, config: dict[str, Any]) -> None:
    """Write the daemon's config file."""
    (folder / "slawatch.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy (real time: the daemon runs on it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
