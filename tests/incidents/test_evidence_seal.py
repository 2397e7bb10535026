"""Evidence a provider cannot pick apart: every part sealed, a signature, honest windows.

Each test drives the real command line (or the HTTP API) on a store built by replaying a
scripted timeline, then edits the bundle the way a disputing provider might.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry

from config import load_config
from incidents.evidence import (
    FORMAT_3,
    GENESIS,
    RECORD_FIELDS_1,
    RECORD_FIELDS_3,
    Chain,
    part_digest,
    seal_digest,
    verify,
)
from incidents.sqlite_store import SqliteStore
from probe.clock import ManualClock
from slawatch.daemon import Daemon
from slawatch.web import make_app
from tests.incidents.incidents_timeline import CONFIG, ENV, OUTAGE, T0, write_attempts, write_config
from tests.support.cli import run_slawatch

INCIDENT = "bird-20261102T100320Z"
# The replaying host's own prober id: it made no attempt, so no bundle may name it.
SIGNED_CONFIG = CONFIG.replace(
    "prober: {id: eu-1}", "prober: {id: replayer}\nevidence: {signing_key: evidence.key}"
)
UNSIGNED_CONFIG = CONFIG.replace("prober: {id: eu-1}", "prober: {id: replayer}")


def slawatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess, with the timeline's environment."""
    return run_slawatch(*args, cwd=cwd, env=ENV)


def _write_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


def _public(key: Ed25519PrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def _replayed(folder: Path, timeline: str, config: str) -> Path:
    write_config(folder, config)
    write_attempts(folder, timeline)
    done = slawatch(
        "replay", "--config", "slawatch.yaml", "--store", "store.db", "attempts.jsonl", cwd=folder
    )
    assert done.returncode == 0, done.stderr
    return folder


def _export(folder: Path, incident: str, fmt: str = "json", name: str = "") -> Path:
    out = name or f"bundle.{fmt}"
    done = slawatch(
        "evidence", incident, "--config", "slawatch.yaml", "--format", fmt, "-o", out, cwd=folder
    )
    assert done.returncode == 0, done.stderr
    return folder / out


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A replayed outage whose config signs bundles; bundle.json is signed, pub.pem its key."""
    folder = tmp_path_factory.mktemp("signed")
    key = _write_key(folder / "evidence.key")
    _public(key, folder / "pub.pem")
    _replayed(folder, OUTAGE, SIGNED_CONFIG)
    _export(folder, INCIDENT)
    return folder


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same outage without a signing key; bundle.json is sealed but not signed."""
    folder = tmp_path_factory.mktemp("unsigned")
    _replayed(folder, OUTAGE, UNSIGNED_CONFIG)
    _export(folder, INCIDENT)
    return folder


def _edited(source: Path, edit: Callable[[dict[str, Any]], None], target: Path) -> Path:
    bundle = json.loads(source.read_text())
    edit(bundle)
    target.write_text(json.dumps(bundle, indent=2))
    return target


def _drop_last_record(bundle: dict[str, Any]) -> None:
    bundle["records"].pop()
    bundle["chain"]["head"] = bundle["records"][-1]["digest"]
    bundle["chain"]["records"] -= 1


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(bundle: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = bundle
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        pytest.param(
            _set("summary.unavailable_seconds", 9),
            "summary: part 'summary' does not match",
            id="summary-count",
        ),
        pytest.param(_set("incident.severity", 2), "incident: part 'incident'", id="severity"),
        pytest.param(
            _set("incident.started_at", "2026-11-02T10:03:50Z"),
            "incident: part 'incident'",
            id="started-at",
        ),
        pytest.param(
            _set("incident.restored_at", "2026-11-02T10:04:00Z"),
            "incident: part 'incident'",
            id="restored-at",
        ),
        pytest.param(
            _set("window.from", "2026-11-02T10:03:20Z"), "window: part 'window'", id="window"
        ),
        pytest.param(
            _set("definition.counts_as_unavailable", ["timeout"]),
            "definition: part 'definition'",
            id="definition",
        ),
        pytest.param(_set("clocks.first_response.state", "met"), "clocks: part", id="clocks"),
        pytest.param(
            _set("events.0.at", "2026-11-02T10:30:00Z"), "events: part 'events'", id="events"
        ),
        pytest.param(_set("samples.0.detail", "200 ok"), "samples: part 'samples'", id="samples"),
        pytest.param(_set("probers", ["eu-1", "us-1"]), "probers: part 'probers'", id="probers"),
        pytest.param(
            _drop_last_record,
            "chain: part 'chain' does not match its seal digest",
            id="last-record-dropped-head-fixed",
        ),
        pytest.param(
            lambda b: b["records"].pop(),
            "chain: the chain says 91 records, the bundle has 90",
            id="last-record-dropped",
        ),
        pytest.param(
            _set("remark", "agreed by both sides"),
            "remark: part 'remark' is not sealed (it was added)",
            id="part-added",
        ),
        pytest.param(
            lambda b: b.pop("clocks"), "clocks: part 'clocks' is sealed but missing", id="removed"
        ),
    ],
)
def test_every_part_is_sealed(
    unsigned: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None], named: str
) -> None:
    """Any edit to a part that states a fact makes verify exit 1 naming that part."""
    bundle = _edited(unsigned / "bundle.json", edit, tmp_path / "edited.json")
    done = slawatch("evidence", "verify", str(bundle), cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert f"edited.json: FAILED: {named}" in done.stderr


def _recompute_seal(bundle: dict[str, Any]) -> None:
    """What a forger does: change a count, then recompute every digest of the seal."""
    bundle["summary"]["unavailable_seconds"] = 9
    parts = bundle["seal"]["parts"]
    for name, value in bundle.items():
        if name not in ("records", "seal"):
            parts[name] = part_digest(value)
    bundle["seal"]["digest"] = seal_digest(parts)


def test_a_recomputed_seal_passes_only_without_a_signature(unsigned: Path, tmp_path: Path) -> None:
    """Unsigned, a forger who recomputes the seal goes unnoticed, and verify says so plainly."""
    bundle = _edited(unsigned / "bundle.json", _recompute_seal, tmp_path / "forged.json")
    done = slawatch("evidence", "verify", str(bundle), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "not signed: the seal shows any edit that leaves the digests as they were" in done.stdout
    assert "compare the seal digest with the one quoted in the ticket" in done.stdout


def test_a_recomputed_seal_breaks_the_signature(signed: Path, tmp_path: Path) -> None:
    """Signed, the same forgery fails: the signature covers the seal digest."""
    bundle = _edited(signed / "bundle.json", _recompute_seal, tmp_path / "forged.json")
    done = slawatch("evidence", "verify", str(bundle), "--key", str(signed / "pub.pem"), cwd=signed)
    assert (done.returncode, done.stderr.strip()) == (
        1,
        f"{bundle}: FAILED: seal: the signature does not match the seal",
    )


def test_public_key_is_printed(signed: Path) -> None:
    """``evidence public-key`` prints the PEM public key of evidence.signing_key."""
    done = slawatch("evidence", "public-key", "--config", "slawatch.yaml", cwd=signed)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (signed / "pub.pem").read_text()
    assert done.stderr.startswith("# fingerprint sha256:")


def test_signed_bundle_verifies_against_the_key(signed: Path) -> None:
    """With --key, verify checks the signature against that key and says so."""
    done = slawatch("evidence", "verify", "bundle.json", "--key", "pub.pem", cwd=signed)
    bundle = json.loads((signed / "bundle.json").read_text())
    fingerprint = bundle["seal"]["signature"]["key_fingerprint"]
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"signed by {fingerprint}, the given key")


def test_signed_bundle_without_a_key_is_not_trusted_blindly(signed: Path) -> None:
    """Without --key the embedded key is checked, and verify says that proves no origin."""
    done = slawatch("evidence", "verify", "bundle.json", cwd=signed)
    assert done.returncode == 0, done.stderr
    assert "(not checked against a key you trust: add --key PUB)" in done.stdout


def test_another_key_is_refused(signed: Path, tmp_path: Path) -> None:
    """A bundle signed by one key does not verify against another."""
    other = _public(Ed25519PrivateKey.generate(), tmp_path / "other.pem")
    done = slawatch("evidence", "verify", "bundle.json", "--key", str(other), cwd=signed)
    assert done.returncode == 1
    assert "FAILED: seal: signed by another key (sha256:" in done.stderr


def test_unsigned_bundle_fails_when_a_key_is_expected(unsigned: Path, signed: Path) -> None:
    """Asking for a signature of an unsigned bundle is a failed check."""
    done = slawatch(
        "evidence", "verify", "bundle.json", "--key", str(signed / "pub.pem"), cwd=unsigned
    )
    assert (done.returncode, done.stderr.strip()) == (
        1,
        "bundle.json: FAILED: seal: the bundle is not signed",
    )


def test_the_private_key_never_leaves(signed: Path) -> None:
    """No format of a signed bundle, nor the public-key output, holds the private key."""
    pem = (signed / "evidence.key").read_text()
    body = "".join(pem.splitlines()[1:-1])
    outputs = [_export(signed, INCIDENT, fmt, f"leak.{fmt}").read_text() for fmt in ("json", "md")]
    done = slawatch("evidence", "public-key", "--config", "slawatch.yaml", cwd=signed)
    for text in (*outputs, done.stdout, done.stderr):
        assert body not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "cannot read", id="missing"),
        pytest.param(
            b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n",
            "not an unencrypted Ed25519 private key in PEM",
            id="garbage",
        ),
    ],
)
def test_a_bad_signing_key_is_a_located_error(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    """check-config and evidence refuse an unusable key: one line, exit 2, no key bytes."""
    write_config(tmp_path, SIGNED_CONFIG)
    if content is not None:
        (tmp_path / "evidence.key").write_bytes(content)
    for args in (
        ("check-config", "slawatch.yaml"),
        ("evidence", "public-key", "--config", "slawatch.yaml"),
    ):
        done = slawatch(*args, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith("slawatch.yaml: evidence.signing_key: ")
        assert message in done.stderr
        assert "c2VjcmV0LWJ5dGVz" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_format_1_bundles_still_verify(tmp_path: Path) -> None:
    """A bundle of the previous format verifies, and verify says only its records are chained."""
    chain = Chain(RECORD_FIELDS_1)
    zero = dict.fromkeys(RECORD_FIELDS_1, 0)
    records = [
        chain.add(
            {**zero, "second": f"2026-11-02T10:00:0{i}Z", "verdict": "available", "api": None}
            | {"smtp": None, "worst_latency_ms": None}
        )
        for i in range(3)
    ]
    bundle = {"format": "slawatch-evidence/1", "chain": {"head": chain.head}, "records": records}
    (tmp_path / "old.json").write_text(json.dumps(bundle))
    done = slawatch("evidence", "verify", "old.json", cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (
        0,
        f"old.json: OK: 3 records, head {chain.head} (format 1: only the per-second records "
        "are chained; the rest of the bundle is not sealed)",
    )
    assert chain.head != GENESIS


def _as_format_3(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle as a slawatch of format 3 wrote it: no vantage columns, sealed again."""
    chain = Chain(RECORD_FIELDS_3)
    old = dict(bundle)
    old["format"] = FORMAT_3
    old["records"] = [chain.add(record) for record in bundle["records"]]
    old["chain"] = chain.to_json()
    parts = {
        name: part_digest(value) for name, value in old.items() if name not in ("records", "seal")
    }
    old["seal"] = {**bundle["seal"], "parts": parts, "digest": seal_digest(parts)}
    return old


def test_format_3_bundles_and_csvs_still_verify(unsigned: Path, tmp_path: Path) -> None:
    """Bundles and CSVs written before the vantage columns verify as format 3; an edit still shows."""
    old = _as_format_3(json.loads((unsigned / "bundle.json").read_text()))
    assert "probers_reporting" not in old["records"][0]
    (tmp_path / "old.json").write_text(json.dumps(old))
    done = slawatch("evidence", "verify", "old.json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert verify(json.dumps(old)).format == FORMAT_3
    header = ",".join((*RECORD_FIELDS_3, "digest"))
    rows = [
        ",".join("" if r[n] is None else str(r[n]) for n in (*RECORD_FIELDS_3, "digest"))
        for r in old["records"]
    ]
    result = verify("\n".join([header, *rows]) + "\n")
    assert (result.ok, result.format, result.head) == (True, FORMAT_3, old["chain"]["head"])
    old["records"][1]["timeout"] += 1
    (tmp_path / "old.json").write_text(json.dumps(old))
    done = slawatch("evidence", "verify", "old.json", cwd=tmp_path)
    assert done.returncode == 1
    assert "record 2 of 91" in done.stderr


def test_probers_are_only_those_that_made_attempts(unsigned: Path) -> None:
    """A replay-built bundle names the log's prober, not the replaying host's id."""
    bundle = json.loads((unsigned / "bundle.json").read_text())
    assert bundle["probers"] == ["eu-1"]
    assert "replayer" not in (unsigned / "bundle.json").read_text()


def test_seconds_before_the_first_monitored_one_are_unmonitored(tmp_path: Path) -> None:
    """An outage from the log's first second: the margin before it is unmonitored, not no_data."""
    _replayed(tmp_path, "x" * 90 + "." * 150, UNSIGNED_CONFIG)
    incident = "bird-20261102T100000Z"
    bundle = json.loads(_export(tmp_path, incident).read_text())
    first = bundle["records"][0]
    assert (first["verdict"], first["seconds"], first["api"], first["smtp"]) == (
        "unmonitored",
        60,
        None,
        None,
    )
    # One instance: itself where it was monitoring, nobody where it was not.
    assert (first["probers_reporting"], first["probers_expected"]) == (None, None)
    assert {(r["probers_reporting"], r["probers_expected"]) for r in bundle["records"][1:]} == {
        (1, 1)
    }
    assert bundle["summary"]["seconds"]["unmonitored"] == 60
    assert bundle["summary"]["seconds"]["no_data"] == 0
    text = _export(tmp_path, incident, "md").read_text()
    assert "unmonitored seconds: 60" in text
    assert "- **unmonitored** (60 s): slawatch was not running: nothing was observed" in text
    assert "- **no_data** (0 s): monitored, but no attempt was made" in text
    page = _export(tmp_path, incident, "html").read_text()
    assert 'class="unmonitored"' in page
    assert "unmonitored: slawatch was not running" in page


def test_a_stale_open_incident_ends_at_the_last_monitored_second(tmp_path: Path) -> None:
    """Exported weeks after its data ended, an open incident's window stops where data does."""
    _replayed(tmp_path, "." * 30 + "x" * 300, UNSIGNED_CONFIG)
    incident = "bird-20261102T100030Z"
    path = _export(tmp_path, incident)
    bundle = json.loads(path.read_text())
    assert bundle["incident"]["restored_at"] is None
    assert bundle["window"] == {
        "from": "2026-11-02T09:59:30Z",
        "to": "2026-11-02T10:05:30Z",
        "seconds": 360,
        "margin_s": 60,
        "until": "last monitored second",
    }
    assert [(r["verdict"], r["seconds"]) for r in bundle["records"][:2]] == [
        ("unmonitored", 30),
        ("available", 30),
    ]
    assert len(bundle["records"]) == 302
    assert path.stat().st_size < 400_000
    assert slawatch("evidence", "verify", str(path), cwd=tmp_path).returncode == 0


async def test_api_serves_the_signed_bundle(signed: Path, tmp_path: Path) -> None:
    """GET /api/v1/incidents/{id}/evidence returns a bundle signed by the configured key."""
    loaded = load_config(signed / "slawatch.yaml", ENV)
    store = SqliteStore(signed / "store.db")
    core = Daemon(loaded, clock=ManualClock(T0 + 3600), registry=CollectorRegistry(), store=store)
    await core.open_store()
    client = TestClient(TestServer(make_app(core)))
    await client.start_server()
    try:
        response = await client.get(f"/api/v1/incidents/{INCIDENT}/evidence?format=json")
        assert response.status == 200
        (tmp_path / "api.json").write_text(await response.text())
    finally:
        await client.close()
        await core.probing.stop()
        core.writer.close()
        store.close()
    done = slawatch(
        "evidence", "verify", "api.json", "--key", str(signed / "pub.pem"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("the given key")


def _unchanged(bundle: dict[str, Any]) -> None:
    """No edit: the bundle is only parsed and written again."""


def test_unchanged_bundle_copies_verify(unsigned: Path, tmp_path: Path) -> None:
    """Re-serialising a bundle (other spacing, same values) keeps it verifiable."""
    bundle = _edited(unsigned / "bundle.json", _unchanged, tmp_path / "same.json")
    assert slawatch("evidence", "verify", str(bundle), cwd=tmp_path).returncode == 0
