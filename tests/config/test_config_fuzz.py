"""Implicit YAML types and impossible dates anywhere in a config: one located line, exit 2.

YAML 1.1 turns unquoted ``2026-02-30`` into a date (or a crash), ``yes`` into a boolean,
``1:30`` into 90 and ``.inf`` into infinity. Every leaf of the shipped example config is
replaced by each such scalar, written unquoted; the loader must accept the file or refuse
it with a ConfigError, never raise anything else. Durations have caps named in the error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import ConfigError, load_config_text
from config.loader import parse_yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "slawatch.yaml"
MARK = "__fuzz__"
# Scalars that YAML resolves to something other than the text written.
SCALARS = (
    "2026-02-30",
    "2026-13-01",
    "2026-12-24",
    "2026-12-24T10:00:00Z",
    "2026-12-24 10:00:00",
    "2001-12-14t21:59:43.10-05:00",
    "yes",
    "off",
    "~",
    "",
    "0o17",
    "0x1F",
    "1:30",
    "1_000",
    ".inf",
    "-.inf",
    ".nan",
    "1e400",
    "-1",
    "3.5",
    "[2026-02-30]",
    "{2026-02-30: x}",
    "{1.5: x}",
    "!!timestamp 2026-02-31",
    "!!binary aGVsbG8=",
)


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list) and node:
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, index))
    else:
        yield path


def _with_mark(tree: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return MARK
    head, *rest = path
    if isinstance(tree, dict):
        return {k: _with_mark(v, tuple(rest)) if k == head else v for k, v in tree.items()}
    return [_with_mark(v, tuple(rest)) if i == head else v for i, v in enumerate(tree)]


BASE = parse_yaml(EXAMPLE.read_text(), str(EXAMPLE))
LEAVES = list(_leaves(BASE))


def _fuzzed(path: tuple[Any, ...], scalar: str) -> str:
    text = yaml.safe_dump(_with_mark(BASE, path), sort_keys=False)
    return text.replace(MARK, scalar)


@pytest.mark.parametrize("scalar", SCALARS)
def test_every_field_takes_any_implicit_scalar(scalar: str) -> None:
    """Each leaf of the example, replaced by the scalar: accepted, or one located line."""
    assert len(LEAVES) > 40
    for path in LEAVES:
        text = _fuzzed(path, scalar)
        try:
            load_config_text(text, "fuzz.yaml", os.environ)
        except ConfigError as exc:
            message = str(exc)
            assert message.startswith("fuzz.yaml"), message
            assert "\n" not in message, message
            assert "Traceback" not in message


def _cli(folder: Path, text: str) -> subprocess.CompletedProcess[str]:
    (folder / "slawatch.yaml").write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "slawatch.cli", "check-config", "slawatch.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "calendars:\n  berlin: {time_zone: Europe/Berlin, add: [2026-02-30]}\n",
            "slawatch.yaml: calendars.berlin.add[0]: must be a valid date or datetime, "
            "day value is outside expected range, got '2026-02-30'",
            id="holiday-feb-30",
        ),
        pytest.param(
            "calendars:\n  berlin: {time_zone: Europe/Berlin, remove: [2026-13-01]}\n",
            "slawatch.yaml: calendars.berlin.remove[0]: must be a valid date or datetime, "
            "month value is outside expected range of 1-12, got '2026-13-01'",
            id="holiday-month-13",
        ),
        pytest.param(
            "services:\n  - name: s\n    sla: {policy: 2026-11-21}\n",
            "slawatch.yaml: services[0].sla.policy: unknown policy '2026-11-21' "
            "(see 'slawatch catalog')",
            id="date-for-a-string",
        ),
        pytest.param(
            "services:\n  - name: s\n    api: [{name: a, url: 2026-11-21T10:00:00Z}]\n",
            "slawatch.yaml: services[0].api[0].url: invalid URL '2026-11-21T10:00:00Z' "
            "(expected http:// or https://host/...)",
            id="timestamp-for-a-url",
        ),
    ],
)
def test_impossible_dates_are_located(tmp_path: Path, text: str, message: str) -> None:
    """check-config answers a date where it cannot be, or cannot exist, with one line and 2."""
    done = _cli(tmp_path, text)
    assert (done.returncode, done.stderr.strip()) == (2, message)


def test_a_date_is_a_fine_name(tmp_path: Path) -> None:
    """An unquoted date where a name is expected is the name it reads as."""
    done = _cli(tmp_path, "prober: {id: 2026-11-21}\nservices: []\n")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("where", "value", "cap"),
    [
        pytest.param("classifier: {degraded_window: %s}", "400d", "1d", id="degraded_window"),
        pytest.param("classifier: {critical_after: %s}", "2h", "1h", id="critical_after"),
        pytest.param("classifier: {recover_after: %s}", "25h", "1d", id="recover_after"),
        pytest.param("classifier: {max_gap: %s}", "90m", "1h", id="max_gap"),
        pytest.param("classifier: {reopen_within: %s}", "8d", "7d", id="reopen_within"),
        pytest.param("sla: {update_every: %s}", "31d", "30d", id="update_every"),
        pytest.param(
            "api: [{name: a, url: 'http://x/', timeout: %s}]", "6m", "5m", id="http-timeout"
        ),
        pytest.param("smtp: [{name: m, host: x, timeout: %s}]", "1h", "5m", id="smtp-timeout"),
    ],
)
def test_durations_are_capped(tmp_path: Path, where: str, value: str, cap: str) -> None:
    """A duration past what makes sense for its key is refused, naming the cap."""
    done = _cli(tmp_path, "services:\n  - name: s\n    " + where % value + "\n")
    assert done.returncode == 2
    key = where.split(":", maxsplit=1)[0]
    assert f": services[0].{key}" in done.stderr
    assert done.stderr.strip().endswith(f"must be at most {cap}, got {value}")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param(
            "storage: {retention_runs: 3651d}\nservices: []\n",
            "storage.retention_runs",
            id="retention",
        ),
        pytest.param(
            "control: [{name: g, tcp: '127.0.0.1:1', timeout: 2m}]\nservices: []\n",
            "control[0].timeout",
            id="control",
        ),
        pytest.param(
            "services: []\nnotify: [{name: n, type: slack, url: 'http://x/', timeout: 1h}]\n",
            "notify[0].timeout",
            id="notify",
        ),
    ],
)
def test_other_durations_are_capped(tmp_path: Path, text: str, key: str) -> None:
    """Retention, control and notification timeouts have caps too."""
    done = _cli(tmp_path, text)
    assert done.returncode == 2
    assert f"slawatch.yaml: {key}: must be at most " in done.stderr


def test_an_infinite_duration_is_refused(tmp_path: Path) -> None:
    """``.inf`` is no duration (it once reached the horizon arithmetic)."""
    done = _cli(
        tmp_path, "services:\n  - name: s\n    api: [{name: a, url: 'http://x/', timeout: .inf}]\n"
    )
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "slawatch.yaml: services[0].api[0].timeout: invalid duration inf (expected e.g. 250ms, 10s, 15m)",
    )
