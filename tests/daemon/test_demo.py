"""`slawatch demo` (what `make run` runs) tells the whole story: open, upgrade, restore."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.cli import run_slawatch
from tests.support.servers import free_port


def test_demo_opens_upgrades_and_restores(tmp_path: Path) -> None:
    """At ten times speed the demo prints the incident opening, its upgrade and its restore."""
    port = free_port()
    done = run_slawatch(
        "demo", "--speed", "10", "--listen", f"127.0.0.1:{port}", "--dir", "demo", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    opened = re.search(r"INCIDENT OPENED (\S+): severity 2 \(Non-Critical Issue\)", out)
    assert opened, out
    incident = opened.group(1)
    assert f"INCIDENT UPGRADED {incident}: severity 2 -> 1 (Critical Issue)" in out
    assert f"INCIDENT RESTORED {incident}" in out
    assert out.index("OPENED") < out.index("UPGRADED") < out.index("RESTORED")
    assert f"slawatch evidence {incident} --config demo/slawatch.yaml --format md" in out
    # The evidence command it prints works on the demo's store.
    evidence = run_slawatch(
        "evidence",
        incident,
        "--config",
        "demo/slawatch.yaml",
        "--format",
        "md",
        cwd=tmp_path,
        timeout=60,
    )
    assert evidence.returncode == 0, evidence.stderr
    assert "Critical Issue" in evidence.stdout
