"""DESIGN's two ambiguous readings, as settled in docs/contract.md, through ``slawatch replay``.

1. A new condition reopens the restored incident when its *first bad second*
   (``started_at``) is within ``reopen_within`` of ``restored_at``, however late it is
   detected.
2. A control probe whose attempts in a second were all ``probe_error`` tells nothing about
   the prober's network: that prober's attempts are judged as usual.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.timetext import format_time
from probe.attempt import Attempt, Channel, Outcome
from slawatch.cli import main
from tests.classifier.classifier_timelines import T0, attempts, lines
from tests.support.timeline import expand

# Only the critical condition opens (a degraded one would need 1000 bad seconds), so an
# outage is detected 60 s after its first bad second; reopen_within is 150 s.
CONFIG = """
services:
  - name: svc
    classifier: {degraded_min_seconds: 1000, reopen_within: 150s}
"""


def _replay(tmp_path: Path, body: bytes, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    (tmp_path / "slawatch.yaml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "attempts.jsonl").write_bytes(body)
    code = main(
        ["replay", "--config", str(tmp_path / "slawatch.yaml"), str(tmp_path / "attempts.jsonl")]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    report: dict[str, object] = json.loads(out.out)
    return report


@pytest.mark.parametrize(
    ("quiet", "reopened"),
    [
        # Restored at T0+70 (detected at T0+190). The second outage starts at T0+200:
        # 130 s after restored_at, within 150 s, though detected at T0+260 (190 s after).
        pytest.param(10, True, id="started-within-detected-after"),
        # Starting at T0+230, 160 s after restored_at: a new incident.
        pytest.param(40, False, id="started-after"),
    ],
)
def test_reopen_is_judged_by_the_first_bad_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], quiet: int, reopened: bool
) -> None:
    """reopen_within is measured from restored_at to the new condition's started_at."""
    timeline = f"70x 120. {quiet}. 70x 130."
    report = _replay(tmp_path, b"".join(lines(attempts({"api": timeline}))), capsys)
    incidents = report["incidents"]
    assert isinstance(incidents, list)
    first = incidents[0]
    second_start = format_time(T0 + 190 + quiet)
    if reopened:
        assert len(incidents) == 1
        assert first["reopened_at"] == [format_time(T0 + 190 + quiet + 60)]
    else:
        assert [i["started_at"] for i in incidents] == [format_time(T0), second_start]
        assert first["reopened_at"] == []


def _control(second: int, outcome: Outcome) -> Attempt:
    return Attempt("_control", Channel.CONTROL, "gw", "p1", second + 0.1, 0.01, outcome)


@pytest.mark.parametrize(
    ("control", "verdict"),
    [
        pytest.param(Outcome.PROBE_ERROR, "unavailable", id="probe-error-tells-nothing"),
        pytest.param(Outcome.TIMEOUT, "inconclusive", id="failed-control-sets-aside"),
        pytest.param(Outcome.OK, "unavailable", id="ok-control"),
    ],
)
def test_a_control_of_only_probe_errors_tells_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], control: Outcome, verdict: str
) -> None:
    """Control attempts that were all probe_error leave the prober's attempts judged."""
    seconds = len(expand("10x"))
    items = [_control(T0 + s, control) for s in range(seconds)]
    items += attempts({"api": "10x"})
    items.sort(key=lambda a: a.started_at)
    report = _replay(tmp_path, b"".join(lines(items)), capsys)
    services = report["services"]
    assert isinstance(services, dict)
    counts = services["svc"]["combined"]
    assert counts[verdict] == seconds
