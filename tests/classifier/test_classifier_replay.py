"""`slawatch replay`: the JSON and text reports, located errors, stdin, the fast reader, memory."""

from __future__ import annotations

import io
import json
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.engine import Classifier
from classifier.replay import LineReader, ReplayError, replay, result_json
from config import load_catalog
from config.timetext import format_time
from slawatch.cli import main
from tests.classifier.classifier_timelines import CONFIG, attempts, config, lines
from tests.support.timeline import T0


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working directory holding the test config as ``slawatch.yaml``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slawatch.yaml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def write(path: Path, items: list[bytes]) -> None:
    """Write replay lines to ``path``."""
    path.write_bytes(b"".join(items))


def test_json_report_of_a_hard_outage(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The JSON report lists verdict counts per channel and combined, and the incident (DESIGN.md §11)."""
    write(workdir / "attempts.jsonl", lines(attempts({"api": "30. 90x 120."})))
    assert main(["replay", "--config", "slawatch.yaml", "attempts.jsonl"]) == 0
    report = json.loads(capsys.readouterr().out)
    api = {"available": 150, "unavailable": 90, "partial": 0, "inconclusive": 0, "no_data": 0}
    assert report["services"]["svc"] == {"channels": {"api": api}, "combined": api}
    assert report["services"]["bare"] == {
        "channels": {},
        "combined": {
            "available": 0,
            "unavailable": 0,
            "partial": 0,
            "inconclusive": 0,
            "no_data": 240,
        },
    }
    assert report["span"] == {
        "from": "2026-11-21T10:00:00Z",
        "to": "2026-11-21T10:04:00Z",
        "seconds": 240,
    }
    assert report["attempts"] == 480
    assert report["late_attempts"] == {}
    assert report["incidents"] == [
        {
            "id": "svc-20261121T100030Z",
            "service": "svc",
            "severity": 1,
            "provider_severity": "Critical Issue",
            "state": "restored",
            "started_at": "2026-11-21T10:00:30Z",
            "detected_at": "2026-11-21T10:00:40Z",
            "restored_at": "2026-11-21T10:02:00Z",
            "severity_changes": [{"at": "2026-11-21T10:01:30Z", "from": 2, "to": 1}],
            "reopened_at": [],
            "channels": ["api"],
            # As they stood at the end of the log (10:04:00): the critical line's call back
            # is due 15 min after detection; no response yet, so no update deadline.
            "clocks": {
                "first_response": {
                    "deadline": "2026-11-21T10:15:40Z",
                    "state": "running",
                    "target": "15m",
                    "calendar": "24x7",
                    "elapsed_s": 200.0,
                    "remaining_s": 700.0,
                    "breaches": 0,
                },
                "update": {
                    "deadline": None,
                    "state": "running",
                    "target": None,
                    "calendar": "24x7",
                    "elapsed_s": 0.0,
                    "remaining_s": None,
                    "breaches": 0,
                },
            },
        }
    ]


def test_text_report(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The text summary names the span, the counts and each incident's timeline."""
    write(workdir / "a.jsonl", lines(attempts({"api": "30. 20x 130. 20x 10."})))
    assert main(["replay", "--config", "slawatch.yaml", "a.jsonl", "--format", "text"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "span 2026-11-21T10:00:00Z .. 2026-11-21T10:03:30Z (210 s), 420 attempts"
    assert out[1] == "service svc"
    assert out[2].startswith("  api       available 170  unavailable 40  partial 0")
    assert "incidents: 1" in out
    assert "  svc-20261121T100030Z  severity 2 (Non-Critical Issue)  channels api" in out
    assert "    reopened  2026-11-21T10:03:10Z" in out
    assert out[-1] == "    restored  still open"


def test_stdin(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-` reads the log from standard input."""
    data = b"".join(lines(attempts({"api": "5."})))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["replay", "--config", "slawatch.yaml", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["services"]["svc"]["combined"]["available"] == 5


GOOD = lines(attempts({"api": "."}))[0].decode().strip()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param(
            GOOD.replace("2026-11-21T10:00:00.250Z", "x"),
            "attempts.jsonl:2: started_at: invalid RFC 3339 time 'x'",
            id="bad-time",
        ),
        pytest.param(
            GOOD.replace("2026-11-21T10:00:00.250Z", "2026-13-21T10:00:00.250Z"),
            "attempts.jsonl:2: started_at: invalid RFC 3339 time '2026-13-21T10:00:00.250Z'",
            id="bad-month-in-canonical-form",
        ),
        pytest.param(
            GOOD.replace("2026-11-21T10:00:00.250Z", "2026-11-21T10:00:00"),
            "attempts.jsonl:2: started_at: time '2026-11-21T10:00:00' has no UTC offset",
            id="no-offset",
        ),
        pytest.param(
            GOOD.replace('"ok"', '"meh"'),
            "attempts.jsonl:2: outcome: unknown outcome 'meh'",
            id="unknown-outcome",
        ),
        pytest.param(
            GOOD.replace('"service": "svc"', '"service": "nope"'),
            "attempts.jsonl:2: service: unknown service 'nope' (not in the configuration)",
            id="unknown-service-canonical",
        ),
        pytest.param(
            json.dumps({**json.loads(GOOD), "service": "nope"}, separators=(",", ":")),
            "attempts.jsonl:2: service: unknown service 'nope' (not in the configuration)",
            id="unknown-service-compact",
        ),
        pytest.param(
            '{"service": "svc"',
            "attempts.jsonl:2: invalid JSON: Expecting ',' delimiter (column 19)",
            id="truncated-json",
        ),
        pytest.param(
            "[1, 2]", "attempts.jsonl:2: record: expected a JSON object, got list", id="array"
        ),
        pytest.param(
            GOOD.replace('"outcome": "ok", ', ""),
            "attempts.jsonl:2: outcome: missing",
            id="missing-field",
        ),
        pytest.param(
            GOOD.replace('"duration_s": 0.05', '"duration_s": -1'),
            "attempts.jsonl:2: duration_s: expected seconds >= 0, got -1",
            id="negative-duration",
        ),
    ],
)
def test_bad_line_is_located(
    workdir: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    """A bad line exits 2 with one line naming the file, the line number and the field."""
    (workdir / "attempts.jsonl").write_text(GOOD + "\n" + line + "\n", encoding="utf-8")
    assert main(["replay", "--config", "slawatch.yaml", "attempts.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err == message + "\n"


def test_missing_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A log that cannot be read is an input error naming it."""
    assert main(["replay", "--config", "slawatch.yaml", "nothing.jsonl"]) == 2
    assert capsys.readouterr().err == "nothing.jsonl: cannot read: No such file or directory\n"


def test_blank_lines_and_late_attempts_are_reported(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Blank lines are skipped; an attempt later than the horizon is counted in late_attempts."""
    items = lines(attempts({"api": "20."}))
    late = lines(attempts({"api": "x"}, start=T0 + 2))
    write(workdir / "a.jsonl", [*items, b"\n", *late])
    assert main(["replay", "--config", "slawatch.yaml", "a.jsonl", "--horizon", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["late_attempts"] == {"svc": 2}
    assert report["services"]["svc"]["late_attempts"] == 2
    assert report["services"]["svc"]["combined"]["available"] == 20


def test_clocks_given_land_in_each_incident() -> None:
    """Clocks handed to the report land in their incident's `clocks`; none, none shown."""
    cfg = config()
    result = replay(lines(attempts({"api": "30. 90x 10."})), cfg, load_catalog(), horizon=2)
    clocks = {result.incidents[0].id: {"first_response": {"deadline": "2026-11-21T10:15:40Z"}}}
    report = result_json(result, clocks)
    assert report["incidents"][0]["clocks"] == {
        "first_response": {"deadline": "2026-11-21T10:15:40Z"}
    }
    assert "clocks" not in result_json(result)["incidents"][0]


def _parse(line: bytes) -> object:
    reader = LineReader(Classifier(config().services, load_catalog(), horizon=1).check)
    try:
        return list(reader.runs([line]))
    except ReplayError as exc:
        return str(exc)


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
_TIMES = st.one_of(
    st.builds(format_time, st.floats(0, 4e9), st.integers(0, 6)),
    st.builds(lambda s: format_time(s)[:-1] + "+02:00", st.integers(0, 4_000_000_000)),
    st.sampled_from(
        [
            "2026-13-01T00:00:00Z",
            "2026-11-21T24:00:00.5Z",
            "2026-11-21T10:60:00Z",
            "2026-11-21T10:00:60Z",
            "2026-02-29T10:00:00Z",
            "2028-02-29T10:00:00.999999Z",
            "2026-11-21T10:00:00.1234567Z",
            "2026-11-21T10:00:00",
        ]
    ),
    _TEXT,
)
_RECORDS = st.fixed_dictionaries(
    {
        "service": st.sampled_from(["svc", "nope", "", "stage"]),
        "channel": st.sampled_from(["api", "smtp", "control", "ftp"]),
        "target": st.one_of(st.just("t"), _TEXT),
        "prober": st.one_of(st.just("p1"), st.just("traffic:app"), _TEXT, st.integers()),
        "started_at": _TIMES,
        "outcome": st.sampled_from(["ok", "timeout", "client_error", "probe_error", "OK", "meh"]),
    },
    optional={
        "duration_s": st.one_of(st.floats(allow_nan=False), st.integers(-5, 10**30), st.booleans()),
        "phase": _TEXT,
        "detail": st.one_of(_TEXT, st.none()),
        "timings": st.dictionaries(st.sampled_from(["dns", "connect"]), st.floats(0, 10)),
        "source": st.sampled_from(["probe", "traffic", "synthetic"]),
    },
)


@settings(max_examples=150, deadline=None)
@given(record=_RECORDS)
def test_fast_reader_agrees_with_full_parser(record: dict[str, Any]) -> None:
    """The canonical-form fast path gives the answer (fields or error) of json + attempt_from_json."""
    canonical = json.dumps(record).encode() + b"\n"
    compact = json.dumps(record, separators=(",", ":")).encode() + b"\n"
    assert _parse(canonical) == _parse(compact)


def _month_lines(seconds: int) -> Iterator[bytes]:
    for offset in range(seconds):
        stamp = format_time(T0 + offset)[:-1]
        outcome = "timeout" if offset % 500 < 30 else "ok"
        yield (
            b'{"service": "svc", "channel": "api", "target": "t", "prober": "p", '
            b'"started_at": "'
            + stamp.encode()
            + b'.250Z", "outcome": "'
            + outcome.encode()
            + b'"}\n'
        )


def _peak(seconds: int) -> int:
    tracemalloc.start()
    try:
        result = replay(_month_lines(seconds), config(), load_catalog(), horizon=11)
        assert result.seconds == seconds
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_input() -> None:
    """Replaying four times as many seconds (with as many incidents) peaks at about the same memory."""
    short, long = _peak(2000), _peak(8000)
    assert long < short * 1.5 + 64 * 1024, (short, long)
