"""Replay input that must cost nothing wrong, slow or lost: implausible stamps, long gaps,
duplicate keys, lower-case RFC 3339, long degraded windows (issue 17)."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classifier.buckets import SecondBuckets
from classifier.engine import Classifier
from classifier.machine import ServiceMachine, Thresholds
from classifier.replay import LineReader, ReplayError, bounded_chunks, chunk_lines, replay
from classifier.verdict import Verdict
from config import load_catalog, load_config_text
from config.model import ClassifierConfig
from config.timetext import format_time
from incidents.memory_store import MemoryStore
from incidents.recorder import replay_into_store
from slawatch.cli import main
from tests.classifier.classifier_timelines import CONFIG, T0, attempts, config, lines

DAY = 86_400


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the classifier test config as ``slawatch.yaml``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slawatch.yaml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def _line(stamp: str, outcome: str = "ok") -> bytes:
    record = {
        "service": "svc",
        "channel": "api",
        "target": "t0",
        "prober": "p1",
        "started_at": stamp,
        "outcome": outcome,
    }
    return json.dumps(record).encode() + b"\n"


def _replay_cli(
    workdir: Path, body: bytes, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, str]:
    (workdir / "attempts.jsonl").write_bytes(body)
    code = main(["replay", "--config", "slawatch.yaml", *extra, "attempts.jsonl"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


@pytest.mark.parametrize(
    "store", [pytest.param([], id="memory"), pytest.param(["--store", "r.db"], id="store")]
)
@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            _line("1970-01-01T00:00:00Z"),
            "attempts.jsonl:1: started_at: 1970-01-01T00:00:00Z is before 2000-01-01T00:00:00Z "
            "(not a plausible time for an attempt)",
            id="epoch",
        ),
        pytest.param(
            _line(format_time(T0)) + _line(format_time(T0 + 1)) + _line("9999-12-31T23:59:59Z"),
            "attempts.jsonl:3: started_at: 9999-12-31T23:59:59Z is more than a day after the "
            "latest attempt so far (2026-11-21T10:00:01Z)",
            id="year-9999",
        ),
        pytest.param(
            _line(format_time(T0)) + _line(format_time(T0 + DAY + 1).lower()),
            "attempts.jsonl:2: started_at: 2026-11-22T10:00:01Z is more than a day after the "
            "latest attempt so far (2026-11-21T10:00:00Z)",
            id="a-day-and-a-second-ahead",
        ),
    ],
)
def test_implausible_stamps_are_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], body: bytes, message: str, store: list[str]
) -> None:
    """A stamp before 2000 or more than a day past the latest so far: exit 2, the line named."""
    code, _, err = _replay_cli(workdir, body, capsys, *store)
    assert (code, err) == (2, message)


def test_a_long_gap_is_judged_as_one_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Almost a day of silence between two lines is counted exactly, and opens nothing."""
    gap = DAY - 10
    body = b"".join(lines(attempts({"api": "5."}))) + b"".join(
        lines(attempts({"api": "5."}, start=T0 + 5 + gap))
    )
    code, out, err = _replay_cli(workdir, body, capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["services"]["svc"]["combined"] == {
        "available": 10,
        "unavailable": 0,
        "partial": 0,
        "inconclusive": 0,
        "no_data": gap,
    }
    assert report["incidents"] == []


class _Counting(ServiceMachine):
    """A state machine that counts the steps it is asked to take one by one."""

    steps = 0

    def step(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        type(self).steps += 1
        super().step(*args, **kwargs)  # type: ignore[arg-type]


class _CountingRuns(dict[int, object]):
    """The open seconds of a replay, counting how many times one is looked up."""

    pops = 0

    def pop(self, *args: object) -> object:  # type: ignore[override]
        type(self).pops += 1
        return super().pop(*args)  # type: ignore[call-overload]


@pytest.mark.parametrize("path", ["replay", "store"])
def test_a_long_gap_costs_changes_not_seconds(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """Both replay paths look at and step through a gap a few times, not once a second."""
    monkeypatch.setattr("classifier.engine.ServiceMachine", _Counting)
    original = SecondBuckets.__init__

    def counting(self: SecondBuckets, *args: int | None) -> None:
        original(self, *args)
        self.runs = _CountingRuns()  # type: ignore[assignment]

    monkeypatch.setattr(SecondBuckets, "__init__", counting)
    _Counting.steps = _CountingRuns.pops = 0
    body = lines(attempts({"api": "3."})) + lines(attempts({"api": "3."}, start=T0 + DAY))
    cfg = config()
    if path == "replay":
        result = replay(body, cfg, load_catalog(), horizon=2)
    else:
        loaded = load_config_text(CONFIG, "test.yaml", {})
        result = replay_into_store(body, loaded, MemoryStore(), horizon=2)
    assert result.services["svc"]["combined"]["no_data"] == DAY - 3
    # Three services, a handful of seconds around each change: far fewer than a day.
    assert _Counting.steps < 200, _Counting.steps
    assert _CountingRuns.pops < 200, _CountingRuns.pops


def test_a_gap_in_the_store_is_one_run() -> None:
    """Replayed into a store, the silent day is one no_data run per channel."""
    body = lines(attempts({"api": "3."})) + lines(attempts({"api": "3."}, start=T0 + DAY))
    loaded = load_config_text(CONFIG, "test.yaml", {})
    store = MemoryStore()
    replay_into_store(body, loaded, store, horizon=2)
    runs = [(r.channel, r.verdict, r.seconds) for r in store.runs("svc", None, T0, T0 + DAY + 3)]
    assert ("api", "no_data", DAY - 3) in runs
    assert ("combined", "no_data", DAY - 3) in runs


def _reader_answer(line: bytes) -> object:
    reader = LineReader(Classifier(config().services, load_catalog(), horizon=1).check)
    try:
        return list(reader.runs([line]))
    except ReplayError as exc:
        return str(exc)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            b'{"service": "svc", "channel": "api", "target": "t", "prober": "p", '
            b'"started_at": "2026-11-21T10:00:00.250Z", "outcome": "ok", "outcome": "timeout"}\n',
            id="outcome-twice",
        ),
        pytest.param(
            b'{"service": "svc", "service": "bare", "channel": "api", "target": "t", '
            b'"prober": "p", "started_at": "2026-11-21T10:00:00.250Z", "outcome": "ok"}\n',
            id="service-twice",
        ),
        pytest.param(
            b'{"service": "svc", "channel": "api", "target": "t", "prober": "p", '
            b'"started_at": "2026-11-21T10:00:00.250Z", "started_at": "2026-11-21T11:00:00Z", '
            b'"outcome": "ok"}\n',
            id="started-at-twice",
        ),
    ],
)
def test_duplicate_keys_are_refused_by_both_readers(
    workdir: Path, capsys: pytest.CaptureFixture[str], line: bytes
) -> None:
    """A key given twice in one line is bad input; the fast and full readers agree on it."""
    compact = json.dumps(json.loads(line)).encode()  # (the last value kept: one key)
    assert b"duplicate" not in compact
    expected = _reader_answer(line)
    assert isinstance(expected, str)
    assert "duplicate key" in expected
    assert _reader_answer(line.replace(b'": "', b'":"')) == expected
    code, _, err = _replay_cli(workdir, line, capsys)
    assert code == 2
    assert err.startswith("attempts.jsonl:1: ")
    assert "duplicate key (a line gives each field once)" in err


def test_lower_case_t_and_z_are_read(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """RFC 3339 §5.6 allows ``t`` and ``z``: such a log replays like its upper-case twin."""
    upper = b"".join(lines(attempts({"api": "20. 70x 130."})))
    lower = upper.replace(b"T10:", b"t10:").replace(b'Z"', b'z"')
    assert lower != upper
    _, expected, _ = _replay_cli(workdir, upper, capsys)
    code, out, err = _replay_cli(workdir, lower, capsys)
    assert code == 0, err
    assert json.loads(out) == json.loads(expected)
    assert json.loads(out)["incidents"]


def test_a_day_long_degraded_window_holds_runs_not_seconds() -> None:
    """The degraded window keeps its bad and unobserved seconds as runs."""
    thresholds = Thresholds.from_config(
        ClassifierConfig(degraded_window=DAY, degraded_min_seconds=10_000, degraded_ratio=0.9)
    )
    machine = ServiceMachine("svc", thresholds)
    second = T0
    for _ in range(500):
        for verdict, count in (
            (Verdict.PARTIAL, 30),
            (Verdict.AVAILABLE, 50),
            (Verdict.NO_DATA, 20),
        ):
            machine.step_many(second, count, verdict, 1 if verdict is Verdict.PARTIAL else 0, [])
            second += count
    assert machine.bad.count == 500 * 30
    assert len(machine.bad.runs) == 500
    assert (machine.unobserved.count, len(machine.unobserved.runs)) == (500 * 20, 500)


def _peak(window: str) -> int:
    text = CONFIG.replace(
        "  - name: bare\n", f"  - name: bare\n    classifier: {{degraded_window: {window}}}\n"
    )
    body = lines(attempts({"api": "10. " * 50 + "2x 8. " * 200}, service="bare"))
    tracemalloc.start()
    try:
        replay(body, config(text), load_catalog(), horizon=2)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_degraded_window_memory_does_not_follow_its_length() -> None:
    """A day-long degraded window costs about what a five-minute one does."""
    short, long = _peak("300s"), _peak("1d")
    assert long < short * 1.5 + 64 * 1024, (short, long)


def test_a_version_1_snapshot_is_read() -> None:
    """A classifier state saved per second (before runs) restores to the same window."""
    machine = ServiceMachine("svc", Thresholds.from_config(ClassifierConfig()))
    machine.restore(
        {
            "version": 1,
            "service": "svc",
            "last_second": T0 + 9,
            "streak": [None, 0, 0, 0],
            "window": {
                "floor": T0,
                "bad": [[T0 + 2, 1], [T0 + 3, 1], [T0 + 4, 2], [T0 + 8, 1]],
                "unobserved": [T0 + 5, T0 + 6],
            },
            "incident": None,
            "restored": None,
        }
    )
    assert machine.bad.to_json() == [[T0 + 2, T0 + 3, 1], [T0 + 4, T0 + 4, 2], [T0 + 8, T0 + 8, 1]]
    assert (machine.bad.count, machine.unobserved.count) == (4, 2)
    assert machine.snapshot()["version"] == 2


def _readline_lines(data: bytes, limit: int) -> tuple[list[bytes], str | None]:
    """The lines (and the error of the first over-long one) as reading line by line gives."""
    handle = io.BytesIO(data)
    lines: list[bytes] = []
    while line := handle.readline(limit + 1):
        if len(line) > limit and not (len(line) == limit + 1 and line.endswith(b"\n")):
            return lines, f"{len(lines) + 1}: line is longer than {limit} bytes"
        lines.append(line)
    return lines, None


def _block_lines(data: bytes, limit: int, block: int) -> tuple[list[bytes], str | None]:
    lines: list[bytes] = []
    try:
        for line in chunk_lines(bounded_chunks(io.BytesIO(data).read, limit, block)):
            lines.append(line)
    except ReplayError as exc:
        return lines, str(exc)
    return lines, None


@given(
    data=st.lists(st.sampled_from([b"a", b"bb", b"\n", b"\r", b"cccccc"]), max_size=60).map(
        b"".join
    ),
    limit=st.integers(1, 12),
    block=st.integers(1, 16),
)
def test_block_reading_gives_the_lines_of_reading_line_by_line(
    data: bytes, limit: int, block: int
) -> None:
    """Lines read a block at a time are those of readline, newlines and errors included."""
    assert _block_lines(data, limit, block) == _readline_lines(data, limit)
