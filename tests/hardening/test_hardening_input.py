"""Bad input: fuzzed configs and replay logs end in one located line and exit 2, never a traceback;
oversized files are refused after reading a bounded amount."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier.replay import MAX_LINE_BYTES
from config.loader import MAX_CONFIG_BYTES
from slawatch.cli import main
from tests.hardening.hardening_helpers import cli_with_peak
from tests.support.paths import ROOT

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Keys of the config and replay formats, so random structures reach the deeper validators.
KEYS = [
    "services", "name", "api", "smtp", "url", "timeout", "sla", "policy", "calendar",
    "server", "listen", "token", "storage", "path", "calendars", "time_zone", "hours",
    "holidays", "add", "remove", "control", "tcp", "notify", "type", "events", "severities",
    "classifier", "critical_after", "max_gap", "prober", "id", "environment", "headers",
    "expect_status", "rate", "connection", "host", "port", "tls", "mode", "counts_as_unavailable",
    "channel", "target", "started_at", "outcome", "duration_s", "detail", "service", "phase",
    "timings", "country", "subdiv",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "mail", "10s", "-1s", "99999999999d", "http://127.0.0.1:1/", "127.0.0.1:99999",
            "megaport", "uk", "24x7", "api", "smtp", "timeout", "ok", "2026-11-21T10:00:00Z",
            "2026-02-30T10:00:00Z", "9999-12-31T23:59:59Z", "${NOPE}", "$$", "webhook", "mon-fri",
            "09:00-17:00", "25:00-26:00", "Europe/Nowhere", "a" * 70,
        ]
    ),
)  # fmt: skip
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=30,
)

SEED_CONFIG: dict[str, Any] = {
    "prober": {"id": "fuzz-1"},
    "server": {"listen": "127.0.0.1:9797", "token": "${FUZZ_TOKEN}"},
    "storage": {"path": "store.db"},
    "calendars": {
        "berlin": {
            "time_zone": "Europe/Berlin",
            "hours": {"mon-fri": "09:00-17:00"},
            "holidays": {"country": "DE", "subdiv": "BE"},
            "add": ["2026-12-24"],
        }
    },
    "control": [{"name": "gateway", "tcp": "127.0.0.1:53"}],
    "services": [
        {
            "name": "sparkpost",
            "environment": "production",
            "sla": {"policy": "bird-email-enterprise", "calendar": "us-eastern"},
            "classifier": {"critical_after": "60s", "max_gap": "5s", "reopen_within": "15m"},
            "counts_as_unavailable": ["timeout", "server_error"],
            "api": [
                {
                    "name": "account",
                    "url": "https://api.example.com/v1/account",
                    "headers": {"Authorization": "${FUZZ_TOKEN}"},
                    "expect_status": [200],
                    "timeout": "10s",
                }
            ],
            "smtp": [
                {
                    "name": "inject",
                    "host": "smtp.example.com",
                    "port": 587,
                    "tls": "starttls",
                    "username": "u",
                    "password": "${FUZZ_TOKEN}",
                    "mail_from": "probe@example.com",
                    "rcpt_to": "probe@sink.example.com",
                }
            ],
        }
    ],
    "notify": [
        {"name": "ops", "type": "webhook", "url": "https://hooks.example.com/x", "severities": [1]}
    ],
}
SEED_TEXT = yaml.safe_dump(SEED_CONFIG, sort_keys=False).encode()
SECRET = "fuzz-secret-value-93"
REPLAY_CONFIG = "services:\n  - name: mail\n"
SEED_LINE = json.dumps(
    {
        "service": "mail",
        "channel": "api",
        "target": "send",
        "prober": "eu-1",
        "started_at": "2026-11-21T10:00:00.250Z",
        "outcome": "timeout",
        "duration_s": 10.0,
        "detail": "read timeout",
    }
).encode()


def _cli(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI in-process: exit status, stdout, stderr (any uncaught exception fails)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def _check_config(path: Path) -> None:
    code, out, err = _cli(["check-config", str(path)])
    if code == 0:
        assert out.startswith(f"{path}: OK")
        return
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{path}:"), err
    assert SECRET not in err


@FUZZ
@given(tree=TREES, as_json=st.booleans())
def test_config_fuzz_random_structures(tmp_path: Path, tree: Any, as_json: bool) -> None:
    """Random YAML and JSON structures: OK, or exit 2 with one line naming the file."""
    path = tmp_path / "fuzz.yaml"
    body = {"services": tree} if isinstance(tree, list) else tree
    text = json.dumps(body) if as_json else yaml.safe_dump(body)
    path.write_text(text)
    _check_config(path)


@st.composite
def _mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "drop-line", "dup-line"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(
                st.sampled_from(
                    [b": ", b"- ", b"{", b"]", b"\t", b"&a ", b"*a", b"!!python/", b"\x00"]
                )
            )
        else:
            lines = bytes(data).split(b"\n")
            index = draw(st.integers(0, len(lines) - 1))
            if kind == "drop-line":
                del lines[index]
            else:
                lines.insert(index, lines[index])
            data = bytearray(b"\n".join(lines))
    return bytes(data)


@FUZZ
@given(text=_mutated(SEED_TEXT))
def test_config_fuzz_mutated_valid_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: bytes
) -> None:
    """A valid file with bytes flipped, cut, inserted, lines dropped or doubled: never a traceback."""
    path = tmp_path / "mutated.yaml"
    path.write_bytes(text)
    monkeypatch.setenv("FUZZ_TOKEN", SECRET)
    _check_config(path)


def _check_replay(folder: Path, log: bytes) -> None:
    config = folder / "replay.yaml"
    config.write_text(REPLAY_CONFIG)
    path = folder / "attempts.jsonl"
    path.write_bytes(log)
    code, out, err = _cli(["replay", "--config", str(config), str(path)])
    if code == 0:
        json.loads(out)
        return
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    # Located: the file and the line number.
    assert lines[0].startswith(f"{path}:"), err
    assert lines[0][len(str(path)) + 1 :].split(":")[0].isdigit(), err


ATTEMPT_LIKE = st.dictionaries(
    st.sampled_from(["service", "channel", "target", "prober", "started_at", "outcome",
                     "duration_s", "detail", "phase", "timings", "extra"]),
    TREES,
    max_size=9,
)  # fmt: skip


@FUZZ
@given(records=st.lists(st.one_of(TREES, ATTEMPT_LIKE), min_size=1, max_size=4))
def test_replay_fuzz_random_structures(tmp_path: Path, records: list[Any]) -> None:
    """Random JSON values as replay lines: a report, or exit 2 naming file and line."""
    log = b"".join(json.dumps(record).encode() + b"\n" for record in records)
    _check_replay(tmp_path, SEED_LINE + b"\n" + log)


@FUZZ
@given(line=_mutated(SEED_LINE))
def test_replay_fuzz_mutated_valid_line(tmp_path: Path, line: bytes) -> None:
    """A valid attempt line mutated (bytes flipped, cut, inserted): never a traceback."""
    _check_replay(tmp_path, SEED_LINE + b"\n" + line + b"\n" + SEED_LINE + b"\n")


def test_ten_megabyte_config_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """A 10 MB config: exit 2 with a clear line, after reading only about MAX_CONFIG_BYTES."""
    small = tmp_path / "small.yaml"
    small.write_text(REPLAY_CONFIG)
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.write(REPLAY_CONFIG.encode())
        for _ in range(10):
            handle.write((b"# " + b"x" * 1021 + b"\n") * 1024)
    code, _, base = cli_with_peak(["check-config", str(small)], ROOT)
    assert code == 0
    code, err, peak = cli_with_peak(["check-config", str(big)], ROOT)
    assert code == 2, err
    assert err.strip() == f"{big}: file is larger than {MAX_CONFIG_BYTES} bytes"
    assert peak - base < 8 * 1024, (peak, base)


def test_hundred_megabyte_replay_line_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """A 100 MB replay line: exit 2 naming file and line, after reading only MAX_LINE_BYTES."""
    config = tmp_path / "replay.yaml"
    config.write_text(REPLAY_CONFIG)
    small = tmp_path / "small.jsonl"
    small.write_bytes(SEED_LINE + b"\n")
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as handle:
        handle.write(SEED_LINE + b"\n" + SEED_LINE[:-1] + b', "detail": "')
        chunk = b"a" * (1 << 20)
        for _ in range(100):
            handle.write(chunk)
        handle.write(b'"}\n')
    code, _, base = cli_with_peak(["replay", "--config", str(config), str(small)], ROOT)
    assert code == 0
    code, err, peak = cli_with_peak(["replay", "--config", str(config), str(big)], ROOT)
    assert code == 2, err
    assert err.strip() == f"{big}:2: line is longer than {MAX_LINE_BYTES} bytes"
    assert peak - base < 16 * 1024, (peak, base)
