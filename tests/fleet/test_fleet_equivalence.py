"""Scenario 9: a fleet's pooled verdicts and incidents equal `slawatch replay` over its attempt logs.

For a random fault schedule across three locations (which location's provider fails,
when, for how long, and how: 503s, timeouts or 429s), three `slawatch run` processes
on a fresh database each write their attempt log (``--attempt-log``). `slawatch replay`
over the union of the three logs, with the same config, must find what the cluster
stored: the verdict counts of every channel and of the service (combined) over the same
span of seconds, and the incidents field for field (id, start, detection, severity
changes, restore). Waits are on real time: the processes under test run on it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from classifier.verdict import VERDICTS
from config.timetext import parse_time
from slawatch.simulator import FAULTS
from tests.support.cli import run_slawatch
from tests.support.daemon import CONFIG
from tests.support.fleet import CLASSIFIER, Fleet, now, running_fleet
from tests.support.postgres import PgCluster

pytestmark = pytest.mark.slow

LOG = "attempts.jsonl"
SERVICE = "mail"
# The fleet tests' short thresholds, with the degraded condition on (4 bad seconds), so
# that incidents open degraded, are upgraded and reopen. Its ratio part stays below 4
# seconds while fewer than 80 seconds are observed: in the cluster's classifier, which
# also saw the seconds before the span (all available), as in the replay of the span.
THRESHOLDS = {"degraded_min_seconds": 4}
# Healthy seconds after the last fault: the classifier's recover_after, plus the slack
# of a fault that ends mid-second and of the last attempts in flight.
TAIL_S = int(CLASSIFIER["recover_after"].rstrip("s")) + 2
# Seconds a member's first published seconds may still be pooled without it (it joins
# while the others are running): the compared span starts after them.
JOIN_SLACK_S = 2


@dataclass(frozen=True)
class Window:
    """A fault: ``gap`` healthy seconds, then ``locations`` fail with ``fault`` for ``seconds``."""

    gap: float
    locations: tuple[int, ...]
    seconds: float
    fault: str


LOCATIONS = [(0,), (1,), (2,), (0, 1), (1, 2), (0, 2), (0, 1, 2)]
schedules = st.lists(
    st.builds(
        Window,
        gap=st.integers(1, 2),
        locations=st.sampled_from(LOCATIONS),
        seconds=st.integers(2, 6),
        fault=st.sampled_from(FAULTS),
    ),
    min_size=1,
    max_size=2,
)
# One schedule always run: an incident (all three fail past critical_after: opened
# degraded, upgraded), then a partial stretch (one location times out) that holds off
# its restore.
INCIDENT = [Window(1, (0, 1, 2), 9.5, "server_error"), Window(1, (1,), 2, "timeout")]


@settings(
    max_examples=2,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@example(schedule=INCIDENT)
@given(schedule=schedules)
def test_the_cluster_judges_as_replay_of_the_union_of_its_logs(
    tmp_path_factory: pytest.TempPathFactory, postgres: PgCluster, schedule: list[Window]
) -> None:
    """Pooled verdict counts and incidents over the span equal replay of the three logs'."""
    folder = tmp_path_factory.mktemp("equivalence")
    with running_fleet(
        folder, postgres, args=("--attempt-log", LOG), classifier=THRESHOLDS
    ) as fleet:
        fleet.leader()
        first = _all_live_from(fleet)
        # The compared span [first, last]. It starts once every member publishes and
        # the finalizer waits for all three (a joining member's first seconds may be
        # pooled without it: they arrive late, a documented difference of the live
        # pool, not the one under test). It ends a second before the wait for its
        # pooling, so members stop only after it is judged, and well before their
        # SIGTERM: the seconds of a stopping member are not part of it either.
        while now() < first + 1:
            time.sleep(0.05)
        _play(fleet, schedule)
        time.sleep(TAIL_S)
        last = math.floor(now()) - 1
        fleet.wait_pooled(last + 1)
        for member in fleet.members:
            assert member.stop() == 0
    cluster = _cluster_counts(fleet, first, last)
    report = _replay(folder, first, last)
    replayed = report["services"][SERVICE]
    assert report["late_attempts"] == {}
    assert {**replayed["channels"], "combined": replayed["combined"]} == cluster, schedule
    assert report["attempts"] == _pooled_attempts(fleet, first, last)
    assert _stored_incidents(folder) == _replayed_incidents(report), schedule
    # Nothing in the span was pooled without one of the three, or arrived late.
    reporting = fleet.sql(
        "SELECT DISTINCT cardinality(reporting) FROM pooled_seconds "  # noqa: S608  (integers)
        f"WHERE second BETWEEN {first} AND {last}"
    )
    assert reporting == [["3"]]
    late = fleet.sql(f"SELECT count(*) FROM late_batches WHERE second >= {first}")  # noqa: S608
    assert late == [["0"]]


def _all_live_from(fleet: Fleet) -> int:
    """The first second of the span: every member has published a while by then."""
    deadline = time.perf_counter() + 15
    while time.perf_counter() < deadline:
        rows = fleet.sql("SELECT prober, min(second) FROM prober_seconds GROUP BY prober")
        if len(rows) == len(fleet.ids):
            return max(int(second) for _, second in rows) + JOIN_SLACK_S
        time.sleep(0.2)
    raise AssertionError("not every member published a second")


def _play(fleet: Fleet, schedule: list[Window]) -> None:
    """Apply each window of the schedule on real time, healing every provider after it."""
    for window in schedule:
        time.sleep(window.gap)
        fleet.set_down(*window.locations, fault=window.fault)
        time.sleep(window.seconds)
        fleet.set_up()


def _cluster_counts(fleet: Fleet, first: int, last: int) -> dict[str, dict[str, int]]:
    """Seconds by channel (and combined) and verdict that the cluster stored in the span."""
    counts: dict[str, dict[str, int]] = {}
    rows = fleet.sql(
        "SELECT channel, greatest(first, "  # noqa: S608  (integers and a test constant)
        f"{first}), least(last, {last}), verdict FROM runs WHERE service = '{SERVICE}' "
        f"AND last >= {first} AND first <= {last}"
    )
    for channel, low, high, verdict in rows:
        seconds = counts.setdefault(channel, dict.fromkeys(VERDICTS, 0))
        seconds[verdict] += int(high) - int(low) + 1
    return counts


def _pooled_attempts(fleet: Fleet, first: int, last: int) -> int:
    """Attempts the cluster judged in the span (every outcome, from the runs' counts)."""
    rows = fleet.sql(
        "SELECT sum(n * (least(last, "  # noqa: S608  (integers and a test constant)
        f"{last}) - greatest(first, {first}) + 1)) FROM runs, unnest(counts) AS n "
        f"WHERE service = '{SERVICE}' AND channel = 'api' AND last >= {first} AND first <= {last}"
    )
    return int(rows[0][0])


def _replay(folder: Path, first: int, last: int) -> dict[str, Any]:
    """`slawatch replay` over the union of the members' logs, the span's seconds, in time order.

    Each log is in the order its attempts finished; the union is merged by launch time
    (the canonical stamp sorts as text), as one prober's log of the same attempts would be.
    """
    lines = []
    for log in sorted(folder.glob(f"*/{LOG}")):
        for line in log.read_text().splitlines():
            stamp = json.loads(line)["started_at"]
            if first <= math.floor(parse_time(stamp)) <= last:
                lines.append((stamp, line))
    union = folder / "union.jsonl"
    union.write_text("".join(line + "\n" for _, line in sorted(lines)))
    done = run_slawatch("replay", "--config", f"loc1/{CONFIG}", union.name, cwd=folder)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


# The fields an incident has both in the store and in a replay report.
COMPARED = (
    "id",
    "service",
    "state",
    "severity",
    "provider_severity",
    "started_at",
    "detected_at",
    "restored_at",
    "reopened_at",
    "channels",
)


def _stored_incidents(folder: Path) -> list[dict[str, Any]]:
    """The incidents in the shared database, as `slawatch incidents list` shows them."""
    done = run_slawatch(
        "incidents", "list", "--state", "all", "--format", "json", "--config",
        f"loc1/{CONFIG}", cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [
        {
            **{key: incident[key] for key in COMPARED},
            "severity_changes": [
                {k: change[k] for k in ("at", "from", "to")}
                for change in incident["severity_changes"]
            ],
        }
        for incident in json.loads(done.stdout)
    ]


def _replayed_incidents(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The incidents of a replay report, with the fields the store has too."""
    return [
        {
            **{key: incident[key] for key in COMPARED},
            "severity_changes": incident["severity_changes"],
        }
        for incident in report["incidents"]
    ]
