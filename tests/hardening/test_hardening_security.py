"""Security review: secrets in no output channel, writes need the token, HTML escapes, non-root
container, and an audit of the locked dependencies."""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from incidents.memory_store import MemoryStore
from probe.clock import ManualClock
from slawatch.daemon import Daemon as DaemonCore
from slawatch.web import is_loopback, make_app
from tests.support.cli import run_slawatch
from tests.support.configs import config_from_yaml
from tests.support.daemon import Daemon, wait_for, write_config
from tests.support.loop_thread import LoopThread
from tests.support.paths import ROOT
from tests.support.servers import free_port, raw_server, serve_app

SECRETS = {
    "SEC_API_KEY": "apikey-5e5e5e5e-aaaa",
    "SEC_SMTP_PW": "smtp-pw-7f7f7f7f-bbbb",
    "SEC_URL_PW": "urlpw-3c3c3c3c-cccc",
    "SEC_TOKEN": "token-9d9d9d9d-dddd",
    "SEC_HOOK": "hook-1a1a1a1a-eeee",
}
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
TICKET = '<script>alert("ticket")</script>'


@dataclass
class EvilProvider:
    """Where the hostile provider listens."""

    http_port: int
    smtp_port: int


async def _api(request: web.Request) -> web.Response:
    """An HTTP API that fails with a hostile reason echoing the credentials it was sent."""
    echoed = f"{SCRIPT} auth={request.headers.get('Authorization', '')}"
    return web.Response(status=500, reason=echoed, text=f"{echoed} {request.url}")


async def _greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An SMTP server whose greeting carries markup."""
    writer.write(f"421 4.3.2 {SCRIPT} try later\r\n".encode())
    await writer.drain()


@contextlib.contextmanager
def evil_provider() -> Iterator[EvilProvider]:
    """The hostile HTTP API and SMTP server, on a background loop."""
    app = web.Application()
    app.router.add_get("/account", _api)
    with LoopThread() as thread:
        http_port = thread.enter(serve_app(app))
        smtp = thread.enter(raw_server(_greet))
        yield EvilProvider(http_port, smtp.port)


def _config(provider: EvilProvider, port: int) -> dict[str, Any]:
    return {
        "prober": {"id": "sec-1"},
        "server": {"listen": f"127.0.0.1:{port}", "token": "${SEC_TOKEN}"},
        "storage": {"path": "store.db"},
        "services": [
            {
                "name": "mail",
                "sla": {"policy": "megaport", "calendar": "uk"},
                "classifier": {"critical_after": "20s", "recover_after": "5s"},
                "api": [
                    {
                        "name": "account",
                        "url": f"http://127.0.0.1:{provider.http_port}/account?key=${{SEC_URL_PW}}",
                        "headers": {"Authorization": "Bearer ${SEC_API_KEY}"},
                        "timeout": "1s",
                    }
                ],
                "smtp": [
                    {
                        "name": "inject",
                        "host": "127.0.0.1",
                        "port": provider.smtp_port,
                        "tls": "none",
                        "username": "probe",
                        "password": "${SEC_SMTP_PW}",
                        "timeout": "1s",
                    }
                ],
            }
        ],
        "notify": [
            {
                "name": "ops",
                "type": "webhook",
                "url": "http://127.0.0.1:9/hook",
                "secret": "${SEC_HOOK}",
            }
        ],
    }


@pytest.fixture
def secret_env() -> Iterator[None]:
    """The secrets in this process's environment (the daemon harness passes it on)."""
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)
    yield
    for key, old in saved.items():
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _no_secret(channel: str, data: bytes) -> None:
    for name, value in SECRETS.items():
        assert value.encode() not in data, f"{name} leaks through {channel}"


def test_secrets_absent_from_every_output_channel(tmp_path: Path, secret_env: None) -> None:
    """With a provider echoing credentials, no secret value reaches logs, metrics, API answers,
    the status page, evidence in every format, the store file or error text; markup is escaped."""
    with evil_provider() as provider:
        port = free_port()
        write_config(tmp_path, _config(provider, port))
        daemon = Daemon(tmp_path, port)
        # The daemon inherits the secrets from this process's environment (secret_env).
        daemon.start()
        try:
            incident = wait_for(
                lambda: daemon.json("/api/v1/incidents?state=open")["incidents"], 30, "incident"
            )[0]
            path = f"/api/v1/incidents/{incident['id']}/events"
            status, body = daemon.post(path, {"kind": "provider_responded"}, token=None)
            assert status == 401
            _no_secret("a 401 answer", repr(body).encode())
            status, body = daemon.post(
                path,
                {"kind": "ticket_opened", "ticket": TICKET, "note": IMG},
                token=SECRETS["SEC_TOKEN"],
            )
            assert status == 201, body
            answers: dict[str, bytes] = {}
            for url in (
                "/metrics",
                "/healthz",
                "/readyz",
                "/",
                "/api/v1/services",
                "/api/v1/incidents?state=all",
                f"/api/v1/incidents/{incident['id']}",
                *(
                    f"/api/v1/incidents/{incident['id']}/evidence?format={fmt}"
                    for fmt in ("json", "csv", "md", "html")
                ),
            ):
                status, body = daemon.get(url)
                assert status == 200, (url, body[:300])
                answers[url] = body
                _no_secret(url, body)
            evidence_html = answers[f"/api/v1/incidents/{incident['id']}/evidence?format=html"]
            evidence_json = answers[f"/api/v1/incidents/{incident['id']}/evidence?format=json"]
            # The provider's text reached the evidence (redacted), so escaping is put to the test.
            assert b"alert(1)" in evidence_json
            assert b"[redacted]" in evidence_json
            for page in (evidence_html, answers["/"]):
                for hostile in (SCRIPT, IMG, TICKET):
                    assert hostile.encode() not in page
            assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in evidence_html
            assert html.escape(TICKET).encode() in evidence_html
            cli = run_slawatch(
                "evidence", incident["id"], "--config", "slawatch.yaml", "--format", "md",
                cwd=tmp_path,
            )  # fmt: skip
            assert cli.returncode == 0, cli.stderr
            _no_secret("slawatch evidence", (cli.stdout + cli.stderr).encode())
        finally:
            daemon.stop()
        _no_secret("the log", daemon.log.read_bytes())
        for store_file in tmp_path.glob("store.db*"):
            _no_secret(store_file.name, store_file.read_bytes())


def test_config_errors_do_not_quote_secrets(tmp_path: Path) -> None:
    """A secret from the environment in an invalid field is not echoed by the error."""
    (tmp_path / "bad.yaml").write_text(
        "services:\n  - name: mail\n    api:\n"
        '      - {name: a, url: "http://127.0.0.1:1/", timeout: "${SEC_API_KEY}", rate: "${SEC_API_KEY}"}\n'
    )
    done = run_slawatch("check-config", "bad.yaml", cwd=tmp_path, env=SECRETS)
    assert done.returncode == 2
    assert "bad.yaml: services[0].api[0].timeout: invalid duration '[redacted]'" in done.stderr
    _no_secret("a config error", done.stderr.encode())


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        pytest.param("127.0.0.1:9797", True, id="ipv4-loopback"),
        pytest.param("127.0.0.2:9797", True, id="ipv4-loopback-net"),
        pytest.param("[::1]:9797", True, id="ipv6-loopback"),
        pytest.param("localhost:9797", True, id="localhost"),
        pytest.param("0.0.0.0:9797", False, id="ipv4-wildcard"),
        pytest.param("[::]:9797", False, id="ipv6-wildcard"),
        pytest.param("192.0.2.10:9797", False, id="ipv4-address"),
        pytest.param("monitor.example.com:9797", False, id="host-name"),
        pytest.param(":9797", False, id="empty-host"),
    ],
)
def test_is_loopback(listen: str, loopback: bool) -> None:
    """Only addresses that bind loopback alone count as loopback."""
    assert is_loopback(listen) is loopback


def _core(tmp_path: Path, server: dict[str, str]) -> DaemonCore:
    loaded = config_from_yaml(
        {"server": server, "services": [{"name": "mail"}]}, path=tmp_path / "slawatch.yaml"
    )
    return DaemonCore(
        loaded, clock=ManualClock(), registry=CollectorRegistry(), store=MemoryStore()
    )


@pytest.mark.parametrize(
    ("server", "header", "status"),
    [
        pytest.param({"listen": "0.0.0.0:9797"}, None, 403, id="wildcard-no-token"),
        pytest.param({"listen": "[::]:9797"}, "Bearer x", 403, id="wildcard-v6-no-token"),
        pytest.param({"listen": "0.0.0.0:9797", "token": "s3"}, None, 401, id="token-missing"),
        pytest.param({"listen": "0.0.0.0:9797", "token": "s3"}, "Bearer s4", 401, id="token-wrong"),
        pytest.param({"listen": "0.0.0.0:9797", "token": "s3"}, "s3", 401, id="token-no-scheme"),
        pytest.param({"listen": "0.0.0.0:9797", "token": "s3"}, "Bearer s3", 404, id="token-ok"),
        pytest.param({"listen": "127.0.0.1:9797"}, None, 404, id="loopback-no-token"),
    ],
)
async def test_writes_need_token_off_loopback(
    tmp_path: Path, server: dict[str, str], header: str | None, status: int
) -> None:
    """POST events: 403 off loopback without a token, 401 with a wrong one, else on to the handler
    (404: no such incident). The test client does not bind the configured address."""
    core = _core(tmp_path, server)
    await core.open_store()
    client = TestClient(TestServer(make_app(core)))
    await client.start_server()
    try:
        headers = {"Authorization": header} if header is not None else {}
        response = await client.post(
            "/api/v1/incidents/nope/events", json={"kind": "provider_responded"}, headers=headers
        )
        assert response.status == status, await response.text()
        assert "s3" not in await response.text()
    finally:
        await client.close()
        await core.probing.stop()
        core.writer.close()


def test_container_runs_as_non_root() -> None:
    """The final stage of the Dockerfile switches to a non-root numeric uid it created."""
    text = (ROOT / "Dockerfile").read_text()
    final = text[text.rindex("\nFROM ") :]
    users = re.findall(r"^USER\s+(\S+)\s*$", final, re.M)
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"USER {user} should be numeric (Kubernetes runAsNonRoot checks it)"
    assert int(user) != 0
    assert re.search(rf"useradd\b[^\n]*--uid {user}\b", final)


def _pip_audit() -> str | None:
    beside = Path(sys.executable).with_name("pip-audit")
    return str(beside) if beside.exists() else shutil.which("pip-audit")


def test_locked_dependencies_have_no_known_vulnerabilities() -> None:
    """pip-audit of requirements.lock finds nothing (skipped when its service does not answer)."""
    tool = _pip_audit()
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pip-audit is required under CI (it is a dev dependency)")
        pytest.skip("pip-audit is not installed (pip install -r requirements-dev.lock)")
    try:
        urllib.request.urlopen("https://pypi.org/pypi/pip/json", timeout=10).close()
    except OSError as exc:
        reason = f"the vulnerability service (pypi.org) does not answer: {exc}"
        print(reason)
        pytest.skip(reason)
    done = subprocess.run(
        [tool, "--requirement", str(ROOT / "requirements.lock"), "--no-deps", "--disable-pip",
         "--progress-spinner", "off"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0 and re.search(
        r"ConnectionError|HTTPError|Max retries|timed out", done.stderr
    ):
        reason = f"the vulnerability service failed: {done.stderr.strip()[-300:]}"
        print(reason)
        pytest.skip(reason)
    unaudited = re.findall(r"could not be audited: (\S+)", done.stdout)
    if unaudited:
        # An index without the vulnerability data answers "not found": that is no audit.
        reason = f"the vulnerability service knows none of: {', '.join(unaudited)}"
        print(reason)
        pytest.skip(reason)
    assert done.returncode == 0, done.stdout + done.stderr
