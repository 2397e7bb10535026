"""A fleet of three `slawatch run` processes on one PostgreSQL: pooling, evidence, clock skew.

Each location probes its own loopback provider. Every scenario checks that the pooled
verdicts are contiguous, that there is exactly one incident starting at the fault's first
second, and that each notification reached the sink with exactly one idempotency key.
Waits are on real time: the processes under test run on it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from config.timetext import parse_time
from incidents.evidence import verify
from tests.support.cli import run_slawatch
from tests.support.daemon import wait_for, write_config
from tests.support.fleet import Fleet, finish, now, running_fleet
from tests.support.postgres import PgCluster
from tests.support.servers import free_port

pytestmark = pytest.mark.slow


def test_one_location_is_partial_all_three_is_one_incident(
    tmp_path: Path, postgres: PgCluster
) -> None:
    """Seen by 1 of 3 locations: partial, no incident; by all 3: one incident, 3 probers a second."""
    with running_fleet(tmp_path, postgres) as fleet:
        fleet.leader()
        time.sleep(3)
        one = fleet.set_down(0)
        time.sleep(10)
        fault_at = fleet.set_down()
        time.sleep(11)
        healed = now()
        finish(fleet)
        verdicts = fleet.verdicts()
        assert {verdicts[s] for s in range(int(one) + 2, int(fault_at) - 1)} == {"partial"}
        assert {verdicts[s] for s in range(int(fault_at) + 2, int(healed) - 1)} == {"unavailable"}
        fleet.check_invariants(fault_at)
        window = f"second BETWEEN {int(fault_at)} AND {int(healed)}"
        reporting = fleet.sql(f"SELECT cardinality(reporting) FROM pooled_seconds WHERE {window}")  # noqa: S608  (integers)
        assert {int(n) for (n,) in reporting} == {3}
        _check_evidence(fleet, incident_id=fleet.incidents()[0][0])


def _check_evidence(fleet: Fleet, incident_id: str) -> None:
    """Any member's bundle names the three vantage points, verifies, and says so in Markdown."""
    member = fleet.members[-1]
    status, raw = member.get(f"/api/v1/incidents/{incident_id}/evidence?format=json")
    assert status == 200
    assert verify(raw.decode()).ok
    bundle = json.loads(raw)
    vantage = bundle["vantage"]
    assert vantage["probers"] == [{"id": f"loc{i}", "group": f"loc{i}"} for i in (1, 2, 3)]
    # Every prober's sample failures, with their replies and timings, as on one instance.
    samples = bundle["samples"]
    assert {s["prober"] for s in samples} == {"loc1", "loc2", "loc3"}
    assert bundle["probers"] == ["loc1", "loc2", "loc3"]
    assert all(s["outcome"] != "ok" and s["detail"] and s["duration_s"] >= 0 for s in samples)
    started = fleet_second(bundle["incident"]["started_at"])
    assert any(fleet_second(s["started_at"]) == started for s in samples)
    assert vantage["incident"]["locations_reporting"] == {"min": 3, "max": 3}
    # Members join one after another: the last runs of the window expect all three.
    assert vantage["seconds"][-1]["probers_expected"] == 3
    # Every record says from how many probers its seconds were judged.
    restored = fleet_second(bundle["incident"]["restored_at"])
    spans = [
        (r, fleet_second(r["second"]))
        for r in bundle["records"]
        if started <= fleet_second(r["second"]) < restored
    ]
    assert spans
    assert {(r["probers_reporting"], r["probers_expected"]) for r, _ in spans} == {(3, 3)}
    assert bundle["records"][-1]["probers_expected"] == 3
    status, csv_text = member.get(f"/api/v1/incidents/{incident_id}/evidence?format=csv")
    assert csv_text.decode().splitlines()[0].endswith(",probers_reporting,probers_expected,digest")
    assert verify(csv_text.decode()).head == bundle["chain"]["head"]
    status, md = member.get(f"/api/v1/incidents/{incident_id}/evidence?format=md")
    text = md.decode()
    assert "**Seen from:** 3 locations and 3 probers in every second of the incident" in text
    assert "## Sample failures" in text
    assert "| loc1 (loc1) | probe |" in text


def fleet_second(text: str) -> int:
    """The second an RFC 3339 time of a bundle falls in."""
    return int(parse_time(text))


def test_a_prober_whose_clock_is_off_is_set_aside(tmp_path: Path, postgres: PgCluster) -> None:
    """A clock 2 s off: set aside and flagged unhealthy; one 100 ms off: judged as usual."""
    with running_fleet(tmp_path, postgres, skews={1: 0.1, 2: 2.0}) as fleet:
        fleet.leader()

        def measured() -> dict[str, float] | None:
            probers = fleet.member("loc1").json("/api/v1/cluster")["probers"]
            offsets = {p["id"]: p["clock_offset_s"] for p in probers}
            return offsets if None not in offsets.values() and len(offsets) == 3 else None

        offsets = wait_for(measured, 15, "three clock offsets")
        assert abs(offsets["loc3"] - 2.0) < 0.2
        assert abs(offsets["loc2"] - 0.1) < 0.1
        assert abs(offsets["loc1"]) < 0.1
        time.sleep(2)
        fault_at = fleet.set_down()
        time.sleep(11)
        healed = now()
        finish(fleet)
        rows = fleet.sql(
            "SELECT reporting, set_aside FROM pooled_seconds "  # noqa: S608  (integers)
            f"WHERE second BETWEEN {int(fault_at)} AND {int(healed)}"
        )
        assert {tuple(r) for r in rows} == {("{loc1,loc2}", "{loc3}")}
        fleet.check_invariants(fault_at)
        flagged = [n for n in fleet.prober_notes() if n["check"] == "clock_offset"]
        assert [n["id"] for n in flagged] == ["loc3"]
        assert "clock offset +2.0" in flagged[0]["detail"]
        shown = fleet.member("loc1").json("/api/v1/probers")["probers"]
        assert [p["id"] for p in shown] == ["loc1", "loc2", "loc3"]
        assert [p["healthy"] for p in shown] == [True, True, False]
        page = fleet.member("loc1").get("/")[1].decode()
        assert all(f'data-prober="{p}"' in page for p in ("loc1", "loc2", "loc3"))


def test_a_member_judging_by_other_rules_is_refused(tmp_path: Path, postgres: PgCluster) -> None:
    """A member whose classifier differs from the live members' exits 2 with one line."""
    with running_fleet(tmp_path, postgres, count=1) as fleet:
        fleet.leader()
        config = yaml.safe_load((fleet.members[0].folder / "slawatch.yaml").read_text())
        config["prober"] = {"id": "odd", "group": "odd"}
        config["server"]["listen"] = f"127.0.0.1:{free_port()}"
        config["services"][0]["classifier"]["critical_after"] = "30s"
        home = tmp_path / "odd"
        home.mkdir()
        write_config(home, config)
        done = run_slawatch("run", "--config", "slawatch.yaml", cwd=home, timeout=60)
        assert done.returncode == 2, done.stderr
        (line,) = [x for x in done.stderr.splitlines() if "judges by other rules" in x]
        assert line.startswith(
            "slawatch.yaml: prober 'odd' judges by other rules than live member 'loc1'"
        )
