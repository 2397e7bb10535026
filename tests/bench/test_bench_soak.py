"""The CI-sized soak: `bench/soak.py` for 30 s against 100 faulty targets finds no leak."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import ROOT


@pytest.mark.slow
def test_soak_30s_has_flat_memory_and_descriptors() -> None:
    """A 30 s soak with 503s, hangs, resets and a flapping SMTP target exits 0 (no leak)."""
    command = [sys.executable, str(ROOT / "bench" / "soak.py"), "--seconds", "30"]
    command += ["--targets", "100", "--sample", "5", "--warmup", "10"]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| 30 s |" in done.stdout, done.stdout
    assert "RSS " in done.stdout, done.stdout
