"""Replay timelines, one character a second, against the incident signals DESIGN.md §5 defines.

Timelines are in the tests' one notation (``tests.support.timeline``): ``.`` available,
``x`` unavailable (timeouts), ``s`` server errors, ``p`` partial (one of two targets
failing), ``c`` 4xx, ``r`` 429, ``e`` probe_error, ``?`` no data, ``i`` inconclusive (the
prober's control probe failed); ``"30. 90x"`` is 30 dots then 90 x's. Times in the expected
events are seconds from the start of the timeline, as ``(kind, severity, at, detected_at)``:
``at`` is ``started_at`` for ``opened``, ``upgraded`` (to ``severity``) and ``reopened``, and
``restored_at`` for ``restored``.
"""

from __future__ import annotations

import pytest

from classifier.signals import Opened, Restored, Upgraded
from tests.classifier.classifier_timelines import attempts, run
from tests.support.timeline import events

TIMELINES = [
    pytest.param("svc", {"api": "600."}, [], id="clean-run"),
    pytest.param(
        "svc",
        {"api": "30. 90x 120."},
        [("opened", 2, 30, 40), ("upgraded", 1, 30, 90), ("restored", 1, 120, 240)],
        id="hard-outage-early-opens-at-10th-second",
    ),
    pytest.param(
        "svc",
        {"api": "300. 90x 120."},
        [("opened", 2, 300, 315), ("upgraded", 1, 300, 360), ("restored", 1, 390, 510)],
        id="hard-outage-full-window-opens-at-15th-second",
    ),
    pytest.param(
        "svc",
        {"api": "250. 90x 120."},
        [("opened", 2, 250, 264), ("upgraded", 1, 250, 310), ("restored", 1, 340, 460)],
        id="hard-outage-264-observed-needs-ceil-13.2",
    ),
    pytest.param(
        "svc",
        {"api": "50. 3x 100. 3x 100. 3x 44."},
        [],
        id="short-blips-never-10-in-300",
    ),
    pytest.param(
        "svc",
        {"api": "50. 3x 50. 3x 50. 3x 50. 3x 150."},
        [("opened", 2, 50, 211), ("restored", 2, 212, 332)],
        id="repeated-blips-reach-11-of-211",
    ),
    pytest.param(
        "svc",
        {"api": "30. 200p 150."},
        [("opened", 2, 30, 40), ("restored", 2, 230, 350)],
        id="partial-seconds-degraded-never-critical",
    ),
    pytest.param("svc", {"api": "30. 100c 100r 30."}, [], id="4xx-and-429-only"),
    pytest.param("svc", {"api": "30. 100e 30."}, [], id="probe-errors-are-no-data"),
    pytest.param(
        "stage",
        {"api": "30. 90x 120."},
        [("opened", 3, 30, 40), ("restored", 3, 120, 240)],
        id="staging-is-severity-3-never-upgraded",
    ),
    pytest.param(
        "svc",
        {"api": "320.", "smtp": "100. 90s 130."},
        [("opened", 2, 100, 110), ("upgraded", 1, 100, 160), ("restored", 1, 190, 310)],
        id="smtp-down-api-up-service-unavailable",
    ),
    pytest.param(
        "svc",
        {"api": "30. 40x 3? 30x 130."},
        [("opened", 2, 30, 40), ("upgraded", 1, 30, 93), ("restored", 1, 103, 223)],
        id="3s-gap-streak-continues",
    ),
    pytest.param(
        "svc",
        {"api": "30. 40x 10? 30x 130."},
        [("opened", 2, 30, 40), ("restored", 2, 110, 230)],
        id="10s-gap-streak-breaks",
    ),
    pytest.param("svc", {"api": "30. 100i 30."}, [], id="control-failure-inconclusive"),
    pytest.param(
        "svc",
        {"api@p1": "30. 100i 30.", "api@p2": "160."},
        [],
        id="control-failure-sets-aside-only-that-prober",
    ),
    pytest.param(
        "svc",
        {"api": "30. 20x 60. 20x 60. 20x 130."},
        [("opened", 2, 30, 40), ("restored", 2, 210, 330)],
        id="flapping-shorter-than-recover-after-one-incident",
    ),
    pytest.param(
        "svc",
        {"api": "30. 20x 130. 20x 130."},
        [
            ("opened", 2, 30, 40),
            ("restored", 2, 50, 170),
            ("reopened", 2, 180, 190),
            ("restored", 2, 200, 320),
        ],
        id="new-outage-within-15min-reopens",
    ),
    pytest.param(
        "svc",
        {"api": "30. 20x 900. 20x 130."},
        [
            ("opened", 2, 30, 40),
            ("restored", 2, 50, 170),
            ("reopened", 2, 950, 965),
            ("restored", 2, 970, 1090),
        ],
        id="new-outage-exactly-15min-after-restore-reopens",
    ),
    pytest.param(
        "svc",
        {"api": "30. 20x 901. 20x 130."},
        [
            ("opened", 2, 30, 40),
            ("restored", 2, 50, 170),
            ("opened", 2, 951, 966),
            ("restored", 2, 971, 1091),
        ],
        id="new-outage-after-15min-new-incident",
    ),
    pytest.param(
        "svc",
        {"api@p1": "260.", "api@p2": "30. 100x 130."},
        [("opened", 2, 30, 40), ("restored", 2, 130, 250)],
        id="two-probers-one-failing-partial",
    ),
    pytest.param(
        "svc",
        {"api": "30. 200x 10."},
        [("opened", 2, 30, 40), ("upgraded", 1, 30, 90)],
        id="still-open-at-end-of-input",
    ),
]


@pytest.mark.parametrize(("service", "streams", "expected"), TIMELINES)
def test_timeline_signals(
    service: str, streams: dict[str, str], expected: list[tuple[object, ...]]
) -> None:
    """Each timeline yields exactly the expected open/upgrade/restore/reopen signals."""
    result, signals = run(attempts(streams, service=service))
    assert events(signals) == expected
    assert len(result.incidents) == sum(1 for e in expected if e[0] == "opened")


COUNTS = [
    pytest.param(
        {"api": "30. 100c 100r 30."},
        {"api": {"available": 260}, "combined": {"available": 260}},
        id="4xx-and-429-are-available",
    ),
    pytest.param(
        {"api": "10. 5e 5? 10."},
        {"api": {"available": 20, "no_data": 10}, "combined": {"available": 20, "no_data": 10}},
        id="probe-error-is-no-data",
    ),
    pytest.param(
        {"api": "10. 5i 10."},
        {
            "api": {"available": 20, "inconclusive": 5},
            "combined": {"available": 20, "inconclusive": 5},
        },
        id="control-failure-is-inconclusive",
    ),
    pytest.param(
        {"api@p1": "5i 5.", "api@p2": "5x 5."},
        {"api": {"available": 5, "unavailable": 5}, "combined": {"available": 5, "unavailable": 5}},
        id="other-prober-still-judged",
    ),
    pytest.param(
        {"api": "5p 5x 5."},
        {
            "api": {"partial": 5, "unavailable": 5, "available": 5},
            "combined": {"partial": 5, "unavailable": 5, "available": 5},
        },
        id="partial-and-unavailable",
    ),
    pytest.param(
        {"api": "5. 5x 5? 5.", "smtp": "5x 5p 5? 5?"},
        {
            "api": {"available": 10, "unavailable": 5, "no_data": 5},
            "smtp": {"unavailable": 5, "partial": 5, "no_data": 10},
            "combined": {"unavailable": 10, "available": 5, "no_data": 5},
        },
        id="combined-and-or",
    ),
    pytest.param(
        {"api": "5. 5?", "smtp": "5? 5i"},
        {
            "api": {"available": 5, "no_data": 5},
            "smtp": {"no_data": 5, "inconclusive": 5},
            "combined": {"available": 5, "inconclusive": 5},
        },
        id="inconclusive-beats-no-data-in-combined",
    ),
]


@pytest.mark.parametrize(("streams", "expected"), COUNTS)
def test_timeline_verdict_counts(
    streams: dict[str, str], expected: dict[str, dict[str, int]]
) -> None:
    """Per-channel and combined verdict counts follow the per-second rule and the and/or."""
    result, _ = run(attempts(streams))
    totals = result.services["svc"]
    for channel, counts in expected.items():
        assert {k: v for k, v in totals[channel].items() if v} == counts, channel


def test_signal_fields_of_a_hard_outage() -> None:
    """Signals carry the provider's severity names, the channels and deterministic ids."""
    _, signals = run(attempts({"api": "320.", "smtp": "100. 90x 130."}))
    opened, upgraded, restored = signals
    assert isinstance(opened, Opened)
    assert opened.provider_severity == "Non-Critical Issue"
    assert opened.incident == "svc-20261121T100140Z"
    assert opened.channels == ("smtp",)
    assert isinstance(upgraded, Upgraded)
    assert (upgraded.from_severity, upgraded.provider_severity) == (2, "Critical Issue")
    assert isinstance(restored, Restored)
    assert (restored.incident, restored.severity) == (opened.incident, 1)


@pytest.mark.parametrize(
    ("service", "names"),
    [
        pytest.param("svc", ("Non-Critical Issue", "Critical Issue"), id="bird"),
        pytest.param("bare", ("Severity 2", "Severity 1"), id="no-policy-fallback"),
    ],
)
def test_provider_severity_names(service: str, names: tuple[str, str]) -> None:
    """Severity names come from the service's policy, or read "Severity N" without one."""
    _, signals = run(attempts({"api": "30. 90x 120."}, service=service))
    opened, upgraded = signals[0], signals[1]
    assert isinstance(opened, Opened)
    assert isinstance(upgraded, Upgraded)
    assert (opened.provider_severity, upgraded.provider_severity) == names


def test_staging_uses_general_issue_name() -> None:
    """A non-production service opens at severity 3 with the policy's own name for it."""
    _, signals = run(attempts({"api": "30. 90x 120."}, service="stage"))
    assert isinstance(signals[0], Opened)
    assert (signals[0].severity, signals[0].provider_severity) == (3, "General Issue")
