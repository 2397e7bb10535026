"""The attempt log (`slawatch run --attempt-log`): replay lines, written once a second, never in the way."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from config.timetext import format_time, parse_time
from probe.attempt import Attempt, Channel, Outcome, Source, attempt_from_json
from probe.clock import ManualClock
from slawatch.attemptlog import AttemptLog
from tests.support.cli import run_slawatch
from tests.support.daemon import Daemon, wait_for, write_config
from tests.support.provider import TOKEN, TOKEN_ENV, daemon_config, provider_thread
from tests.support.servers import free_port
from tests.support.site import open_site

NOW = 1_795_176_000.0  # 2026-11-20T12:00:00Z


def _attempt(at: float, outcome: Outcome = Outcome.OK, **extra: object) -> Attempt:
    return Attempt(
        service="mail",
        channel=Channel.API,
        target="account",
        prober="eu-1",
        started_at=at,
        duration_s=0.012345678,
        outcome=outcome,
        **extra,  # type: ignore[arg-type]
    )


def _value(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(name)
    assert value is not None, name
    return value


async def test_attempts_are_written_once_a_second_in_the_replay_form(tmp_path: Path) -> None:
    """Nothing is written per attempt; each second's flush appends the `slawatch probe` lines."""
    path = tmp_path / "attempts.jsonl"
    registry = CollectorRegistry()
    attempts = [
        _attempt(NOW + 0.25),
        _attempt(NOW + 0.5, Outcome.SERVER_ERROR, phase="headers", detail="HTTP 503"),
        _attempt(NOW + 0.75, Outcome.TIMEOUT, timings={"connect": 0.001}),
    ]
    clock = ManualClock(NOW)
    stop = asyncio.Event()
    log = AttemptLog(path, registry)
    flusher = asyncio.create_task(log.run(clock, stop))
    await asyncio.sleep(0)
    for attempt in attempts:
        log.add(attempt)
    assert path.read_bytes() == b""
    assert log.pending == 3
    clock.advance(1.0)
    await wait_for_async(lambda: log.pending == 0 and path.read_bytes() != b"")
    expected = "".join(json.dumps(a.to_json(), ensure_ascii=False) + "\n" for a in attempts)
    assert path.read_text() == expected
    assert [attempt_from_json(json.loads(x)).outcome for x in expected.splitlines()] == [
        Outcome.OK,
        Outcome.SERVER_ERROR,
        Outcome.TIMEOUT,
    ]
    log.add(_attempt(NOW + 1.5))
    stop.set()
    await flusher
    await log.close()
    assert len(path.read_text().splitlines()) == 4, "close writes what is pending"
    assert _value(registry, "slawatch_attempt_log_written_total") == 4
    log.add(_attempt(NOW + 2.5))
    assert _value(registry, "slawatch_attempt_log_dropped_total") == 1, "added after close"


async def wait_for_async(check: Callable[[], bool]) -> None:
    """Yield to the loop until ``check()`` is true (for at most 5 s)."""
    async with asyncio.timeout(5):
        while not check():  # noqa: ASYNC110  (written on another thread: no event to await)
            await asyncio.sleep(0.01)


async def test_a_failing_write_is_logged_once_counted_and_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk: one error line however many writes fail, every attempt counted as dropped."""
    registry = CollectorRegistry()
    log = AttemptLog(Path("/dev/full"), registry)
    with caplog.at_level(logging.INFO, logger="slawatch.attempt_log"):
        for second in range(3):
            log.add(_attempt(NOW + second))
            log.add(_attempt(NOW + second + 0.5))
            await log.flush()
        assert _value(registry, "slawatch_attempt_log_errors_total") == 3
        assert _value(registry, "slawatch_attempt_log_dropped_total") == 6
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage() for r in errors] == [
            "cannot write the attempt log; dropping its attempts until it can"
        ]
        assert errors[0].__dict__["error"] == "No space left on device"
        # The path is writable again (here: another file, as after a rotation) and reopened.
        log.path = tmp_path / "attempts.jsonl"
        log.reopen()
        log.add(_attempt(NOW + 3))
        await log.flush()
        assert [r.getMessage() for r in caplog.records][-1] == "attempt log writable again"
    await log.close()
    assert len(log.path.read_text().splitlines()) == 1
    assert _value(registry, "slawatch_attempt_log_written_total") == 1


async def test_ingested_traffic_is_logged_with_its_source_and_redacted(tmp_path: Path) -> None:
    """A pushed attempt is logged as traffic, its detail redacted; a refused one is not logged."""
    secret = "sk-live-8f3e2d1c0b"
    config = {
        "prober": {"id": "push-1"},
        "server": {"listen": "127.0.0.1:9797", "token": "${PUSH_TOKEN}"},
        "services": [
            {
                "name": "mail",
                "api": [
                    {
                        "name": "account",
                        "url": "http://127.0.0.1:9/",
                        "headers": {"Authorization": "${API_KEY}"},
                    }
                ],
            }
        ],
    }
    path = tmp_path / "attempts.jsonl"
    site = await open_site(
        tmp_path, config, NOW, environ={"PUSH_TOKEN": TOKEN, "API_KEY": secret}, attempt_log=path
    )
    try:
        lines = [
            {
                "service": "mail",
                "channel": "api",
                "target": "send",
                "prober": "web-3",
                "started_at": format_time(NOW - 0.5, precision=3),
                "outcome": "server_error",
                "detail": f"HTTP 503 for key {secret}",
            },
            {
                "service": "nope",
                "channel": "api",
                "target": "send",
                "started_at": format_time(NOW - 0.5, precision=3),
                "outcome": "ok",
            },
        ]
        response = await site.client.post(
            "/api/v1/attempts",
            data="\n".join(json.dumps(x) for x in lines),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"},
        )
        assert response.status == 200, await response.text()
        assert site.daemon.attempt_log is not None
        await site.daemon.attempt_log.flush()
    finally:
        await site.close()
    text = path.read_text()
    assert secret not in text
    (record,) = [json.loads(x) for x in text.splitlines()]
    assert record["source"] == "traffic"
    assert record["prober"] == "traffic:web-3"
    assert record["detail"] == "HTTP 503 for key [redacted]"
    assert attempt_from_json(record).source is Source.TRAFFIC


@pytest.mark.slow
def test_slawatch_run_writes_a_log_replay_reads(tmp_path: Path) -> None:
    """`slawatch run --attempt-log`: both channels logged, reopened on SIGHUP, flushed on SIGTERM,
    replayed as is."""
    with provider_thread() as provider:
        port = free_port()
        write_config(tmp_path, daemon_config(provider, port))
        daemon = Daemon(tmp_path, port, env=TOKEN_ENV, args=("--attempt-log", "attempts.jsonl"))
        daemon.start()
        log, rotated = tmp_path / "attempts.jsonl", tmp_path / "attempts.jsonl.1"
        try:
            wait_for(lambda: log.stat().st_size, 10, "a first write")
            time.sleep(1)
            # As logrotate does: move the file, then SIGHUP; the next write makes a new one.
            log.rename(rotated)
            daemon.signal(signal.SIGHUP)
            wait_for(log.exists, 5, "the log reopened")
            time.sleep(1)
            stopped_at = time.time()  # noqa: TID251  (the daemon runs on real time)
        finally:
            assert daemon.stop() == 0
    text = rotated.read_text() + log.read_text()
    (tmp_path / "both.jsonl").write_text(text)
    records = [json.loads(x) for x in text.splitlines()]
    assert {(r["channel"], r["outcome"]) for r in records} == {("api", "ok"), ("smtp", "ok")}
    # Launched up to the stop, every one of them written by the last flush.
    assert max(parse_time(r["started_at"]) for r in records) > stopped_at - 1.5
    done = run_slawatch(
        "replay", "--config", "slawatch.yaml", "both.jsonl", cwd=tmp_path, env=TOKEN_ENV
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["attempts"] == len(records)
    assert report["late_attempts"] == {}
    combined = report["services"]["mail"]["combined"]
    assert combined["available"] == report["span"]["seconds"]


def test_an_attempt_log_that_cannot_be_opened_is_refused(tmp_path: Path) -> None:
    """A path that cannot be opened: exit status 2 and one line naming the flag and the path."""
    write_config(tmp_path, daemon_config_offline())
    done = run_slawatch(
        "run", "--config", "slawatch.yaml", "--attempt-log", "missing/attempts.jsonl",
        cwd=tmp_path, env=TOKEN_ENV, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "--attempt-log: cannot open missing/attempts.jsonl: No such file or directory"
    ]


def daemon_config_offline() -> dict[str, object]:
    """A config that is valid without any provider running."""
    return {
        "server": {"listen": f"127.0.0.1:{free_port()}"},
        "services": [{"name": "mail", "api": [{"name": "a", "url": "http://127.0.0.1:9/"}]}],
    }
