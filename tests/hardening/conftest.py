"""Hardening tests share the daemon test harness (ProviderThread, Daemon, wait_for)."""

from __future__ import annotations

import sys
from pathlib import Path

DAEMON_TESTS = Path(__file__).resolve().parents[1] / "daemon"
if str(DAEMON_TESTS) not in sys.path:
    sys.path.insert(0, str(DAEMON_TESTS))
