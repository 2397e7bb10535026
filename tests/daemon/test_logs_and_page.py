"""Structured logs redact secrets; the status page escapes every user-controlled string."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from config.secrets import REDACTED, Redactor
from slawatch.logs import setup_logging
from slawatch.statuspage import render_status_page

SECRET = "s3cr3t-token-value"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A log stream; the root handler setup_logging installs is removed afterwards."""
    out = io.StringIO()
    yield out
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "stream", None) is out:
            root.removeHandler(handler)


@pytest.mark.parametrize("fmt", [pytest.param("json", id="json"), pytest.param("text", id="text")])
@pytest.mark.parametrize("name", ["slawatch.test", "probe.elsewhere", "aiohttp.client"])
def test_logs_redact_secrets(stream: io.StringIO, fmt: str, name: str) -> None:
    """A secret in the message, an extra field or an exception never reaches the log,
    whichever package's logger wrote the line."""
    setup_logging(fmt=fmt, stream=stream, redactor=lambda: Redactor([SECRET]))
    logger = logging.getLogger(name)
    logger.warning("calling with %s", SECRET, extra={"header": f"Bearer {SECRET}"})
    try:
        raise ValueError(f"bad token {SECRET}")
    except ValueError:
        logger.exception("failed")
    out = stream.getvalue()
    assert SECRET not in out
    assert out.count(REDACTED) >= 3
    if fmt == "json":
        first = json.loads(out.splitlines()[0])
        assert first["message"] == f"calling with {REDACTED}"
        assert first["header"] == f"Bearer {REDACTED}"
        assert first["level"] == "warning"
        assert first["logger"] == name


def test_json_is_default_off_a_terminal(stream: io.StringIO) -> None:
    """auto picks JSON when the stream is not a terminal."""
    setup_logging(stream=stream)
    logging.getLogger("slawatch.test").info("hello", extra={"service": "sparkpost"})
    record = json.loads(stream.getvalue())
    assert record["message"] == "hello"
    assert record["service"] == "sparkpost"
    assert record["time"].endswith("Z")


def test_status_page_escapes_user_strings() -> None:
    """A malicious service name, incident id or provider name is rendered inert."""
    evil = '<script>alert("x")</script>'
    page = render_status_page(
        [
            {
                "name": evil,
                "environment": "production",
                "policy": evil,
                "channels": {"api": {"verdict": evil, "streak_s": 3}},
                "open_incident": evil,
            }
        ],
        [
            {
                "id": evil,
                "service": evil,
                "severity": 1,
                "provider_severity": evil,
                "state": "open",
                "started_at": evil,
                "clocks": {evil: {"state": evil, "deadline": evil}},
            }
        ],
        now=1_790_000_000.0,
        version="0.1.0",
    )
    assert evil not in page
    assert "&lt;script&gt;" in page
    assert page.count("<script>") == 1  # only the page's own countdown


def test_status_page_counts_down_running_clocks() -> None:
    """A running clock with a deadline gets a countdown element."""
    page = render_status_page(
        [],
        [
            {
                "id": "sp-1",
                "service": "sp",
                "severity": 1,
                "provider_severity": "Critical Issue",
                "state": "open",
                "clocks": {
                    "first_response": {
                        "state": "running",
                        "deadline": "2026-11-21T10:15:00Z",
                        "deadline_epoch": 1_790_000_900.0,
                    }
                },
            }
        ],
        now=1_790_000_000.0,
        version="0.1.0",
    )
    assert 'data-deadline="1790000900"' in page
    assert "900s" in page
    assert 'id="open"' in page
