"""``slawatch probe`` against a local server prints attempts as valid JSON Lines."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probe.attempt import Outcome, attempt_from_json


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "slawatch.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def server() -> TestServer:
    """An HTTP server answering 200 at /."""
    app = web.Application()
    app.router.add_get("/", _ok)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield test_server  # type: ignore[misc]
    await test_server.close()


async def test_probe_prints_json_lines(server: TestServer, tmp_path: Path) -> None:
    """Every printed line is one replay record; two targets for two seconds give four lines."""
    config = tmp_path / "slawatch.yaml"
    config.write_text(
        "prober: {id: cli-test}\n"
        "control:\n"
        f"  - {{name: self, tcp: '127.0.0.1:{server.port}'}}\n"
        "services:\n"
        "  - name: local\n"
        "    api:\n"
        f"      - {{name: root, url: '{server.make_url('/')}', headers: {{Authorization: x}}}}\n"
        f"      - {{name: missing, url: '{server.make_url('/missing')}'}}\n"
    )
    code, out, err = await _cli(
        "probe", "--config", str(config), "--service", "local", "--count", "2"
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    records = [json.loads(line) for line in lines]
    attempts = [attempt_from_json(record) for record in records]
    assert sorted((a.target, a.outcome) for a in attempts) == [
        ("missing", Outcome.CLIENT_ERROR),
        ("missing", Outcome.CLIENT_ERROR),
        ("root", Outcome.OK),
        ("root", Outcome.OK),
    ]
    assert {a.prober for a in attempts} == {"cli-test"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--service", "nope"], "--service: no service 'nope'", id="unknown-service"),
        pytest.param(["--count", "0"], "--count: expected a whole number", id="bad-count"),
        pytest.param(["--target", "nope"], "nothing to probe", id="no-target"),
    ],
)
async def test_probe_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    """Bad arguments exit 2 with one line naming the problem."""
    config = tmp_path / "slawatch.yaml"
    config.write_text(
        "services:\n  - name: local\n    api:\n      - {name: a, url: 'http://127.0.0.1:9/'}\n"
    )
    code, out, err = await _cli("probe", "--config", str(config), *args)
    assert code == 2
    assert out == ""
    assert message in err
