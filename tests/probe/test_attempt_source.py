"""Attempt.source: the replay record's optional ``source`` and the ``traffic:`` prober namespace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from classifier.replay import ReplayError, parse_line
from probe.attempt import (
    Attempt,
    AttemptFormatError,
    Channel,
    Outcome,
    Source,
    attempt_from_json,
    prober_source,
)

BASE: dict[str, Any] = {
    "service": "svc",
    "channel": "api",
    "target": "send",
    "started_at": "2026-11-21T10:00:00.250Z",
    "outcome": "server_error",
}


@pytest.mark.parametrize(
    ("extra", "default", "source", "prober"),
    [
        pytest.param({"prober": "eu-1"}, Source.PROBE, Source.PROBE, "eu-1", id="probe-default"),
        pytest.param({}, Source.PROBE, Source.PROBE, "", id="probe-no-prober"),
        pytest.param(
            {"prober": "traffic:app"}, Source.PROBE, Source.TRAFFIC, "traffic:app", id="prefix"
        ),
        pytest.param(
            {"prober": "app", "source": "traffic"},
            Source.PROBE,
            Source.TRAFFIC,
            "traffic:app",
            id="traffic-prefixed",
        ),
        pytest.param({}, Source.TRAFFIC, Source.TRAFFIC, "traffic:push", id="push-default"),
        pytest.param(
            {"prober": "eu-1", "source": "probe"},
            Source.TRAFFIC,
            Source.PROBE,
            "eu-1",
            id="push-probe",
        ),
    ],
)
def test_source_and_prober(
    extra: dict[str, Any], default: Source, source: Source, prober: str
) -> None:
    """A record's source is given, implied by a traffic: prober, or the reader's default."""
    attempt = attempt_from_json({**BASE, **extra}, default_source=default)
    assert (attempt.source, attempt.prober) == (source, prober)
    assert prober_source(attempt.prober) is (source if prober else Source.PROBE)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            {"source": "synthetic"},
            "source: expected probe or traffic, got 'synthetic'",
            id="value",
        ),
        pytest.param({"source": 1}, "source: expected probe or traffic, got 1", id="type"),
        pytest.param(
            {"source": "probe", "prober": "traffic:x"},
            "prober: the 'traffic:' prefix is reserved for source traffic",
            id="reserved",
        ),
    ],
)
def test_bad_source_is_located(extra: dict[str, Any], message: str) -> None:
    """A bad source (or a probe record in the traffic namespace) names the field."""
    with pytest.raises(AttemptFormatError) as caught:
        attempt_from_json({**BASE, **extra})
    assert str(caught.value) == message


def test_source_round_trips_and_probe_records_stay_canonical() -> None:
    """to_json writes source only for traffic, and reads back as the same attempt."""
    probe = Attempt("svc", Channel.API, "send", "eu-1", 1.5, 0.1, Outcome.OK)
    assert "source" not in probe.to_json()
    traffic = Attempt(
        "svc", Channel.API, "send", "traffic:app", 1.5, 0.1, Outcome.OK, source=Source.TRAFFIC
    )
    record = traffic.to_json()
    assert record["source"] == "traffic"
    assert attempt_from_json(json.loads(json.dumps(record))) == traffic


def test_parse_line_takes_a_default_source() -> None:
    """The push API reads lines without source as traffic; replay as probes; errors keep the line."""
    line = json.dumps(BASE).encode()
    first = parse_line(line, 1)
    pushed = parse_line(line, 1, default_source=Source.TRAFFIC)
    assert first is not None
    assert first.source is Source.PROBE
    assert pushed is not None
    assert (pushed.source, pushed.prober) == (Source.TRAFFIC, "traffic:push")
    with pytest.raises(ReplayError) as caught:
        parse_line(json.dumps({**BASE, "source": "x"}).encode(), 7)
    assert str(caught.value) == "7: source: expected probe or traffic, got 'x'"
