"""The systemd unit: hardened, reloads on SIGHUP, waits out the longest probe on stop."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from config.durations import parse_duration
from config.model import HttpTarget, SmtpTarget
from tests.support.ci_tools import require_tool
from tests.support.paths import ROOT

UNIT = ROOT / "deploy" / "systemd" / "slawatch.service"
EXEC = "/usr/local/bin/slawatch"
# systemd-analyze security scores exposure 0-100 (shown as 0.0-10.0); 2.0 is well inside "OK".
MAX_EXPOSURE = 20


def _parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values in order (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if header := re.fullmatch(r"\[(\w+)\]", line):
            current = sections.setdefault(header.group(1), {})
            continue
        key, sep, value = line.partition("=")
        assert current is not None, f"key outside a section: {line}"
        assert sep, f"not a key=value line: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    """The unit file, parsed."""
    return _parse_unit(UNIT.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        pytest.param(
            "Service", "ExecStart", f"{EXEC} run --config /etc/slawatch/slawatch.yaml", id="exec"
        ),
        pytest.param("Service", "ExecReload", "/bin/kill -HUP $MAINPID", id="reload-sighup"),
        pytest.param("Service", "Restart", "on-failure", id="restart"),
        pytest.param("Service", "DynamicUser", "yes", id="dynamic-user"),
        pytest.param("Service", "StateDirectory", "slawatch", id="state-directory"),
        pytest.param("Service", "ProtectSystem", "strict", id="protect-system"),
        pytest.param("Service", "NoNewPrivileges", "yes", id="no-new-privileges"),
        pytest.param("Service", "ProtectHome", "yes", id="protect-home"),
        pytest.param("Service", "PrivateTmp", "yes", id="private-tmp"),
        pytest.param("Service", "CapabilityBoundingSet", "", id="no-capabilities"),
        pytest.param("Install", "WantedBy", "multi-user.target", id="install"),
    ],
)
def test_unit_key(
    unit: dict[str, dict[str, list[str]]], section: str, key: str, value: str
) -> None:
    """The unit sets the key the deployment guide relies on."""
    assert unit[section][key] == [value]


def test_stop_timeout_covers_the_longest_probe(unit: dict[str, dict[str, list[str]]]) -> None:
    """On stop, systemd waits the longest default probe timeout plus 2 s before SIGKILL."""
    longest = max(
        HttpTarget.model_fields["timeout"].default, SmtpTarget.model_fields["timeout"].default
    )
    (timeout,) = unit["Service"]["TimeoutStopSec"]
    assert parse_duration(timeout) >= longest + 2


def test_store_in_the_working_directory(unit: dict[str, dict[str, list[str]]]) -> None:
    """The working directory is the state directory, so the default relative store path is writable."""
    assert unit["Service"]["WorkingDirectory"] == ["/var/lib/slawatch"]


@pytest.fixture
def checkable_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart names an executable that exists here."""
    require_tool("systemd-analyze")
    stub = tmp_path / "slawatch"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    copy = tmp_path / "slawatch.service"
    copy.write_text(UNIT.read_text(encoding="utf-8").replace(EXEC, str(stub)), encoding="utf-8")
    return copy


def test_systemd_analyze_verify(checkable_unit: Path) -> None:
    """``systemd-analyze verify`` accepts the unit without a single warning."""
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(checkable_unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_systemd_analyze_security(checkable_unit: Path) -> None:
    """``systemd-analyze security`` rates the unit's exposure low."""
    result = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            f"--threshold={MAX_EXPOSURE}",
            str(checkable_unit),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
