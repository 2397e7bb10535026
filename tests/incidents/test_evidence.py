"""Evidence round trip: replay an outage into a store, export four formats, verify the chain."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from classifier.verdict import COMBINED
from incidents.evidence import (
    FORMATS,
    GENESIS,
    RECORD_FIELDS_1,
    UNSIGNED_NOTE,
    Chain,
    EvidenceError,
    RecordMerger,
    Slice,
    chain_digest,
    evidence_source,
    slice_records,
    verify,
    write_evidence,
)
from incidents.model import Run
from tests.incidents.incidents_timeline import ENV, OUTAGE, SECRET, T0, write_attempts, write_config
from tests.support.ci_tools import require_tool
from tests.support.cli import run_slawatch

INCIDENT = "bird-20261102T100320Z"
# A time after the replayed log ends.
T_END = T0 + 3600.0


def slawatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess, with the timeline's environment."""
    return run_slawatch(*args, cwd=cwd, env=ENV)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the outage replayed into its store and the bundle exported in every format."""
    folder = tmp_path_factory.mktemp("evidence")
    write_config(folder)
    write_attempts(folder, OUTAGE)
    done = slawatch(
        "replay", "--config", "slawatch.yaml", "--store", "store.db", "attempts.jsonl", cwd=folder
    )
    assert done.returncode == 0, done.stderr
    assert [i["id"] for i in json.loads(done.stdout)["incidents"]] == [INCIDENT]
    for fmt in FORMATS:
        done = slawatch(
            "evidence",
            INCIDENT,
            "--config",
            "slawatch.yaml",
            "--format",
            fmt,
            "-o",
            f"bundle.{fmt}",
            cwd=folder,
        )
        assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.parametrize("fmt", [pytest.param(f, id=f) for f in ("json", "csv")])
def test_exported_bundles_verify(exported: Path, fmt: str) -> None:
    """``evidence verify`` recomputes the chain of the JSON and the CSV and says OK."""
    done = slawatch("evidence", "verify", f"bundle.{fmt}", cwd=exported)
    bundle = json.loads((exported / "bundle.json").read_text())
    head, seal = bundle["chain"]["head"], bundle["seal"]["digest"]
    after = (
        f"every part sealed, seal {seal}; {UNSIGNED_NOTE}"
        if fmt == "json"
        else "(a CSV holds the records only: compare the head with the bundle's chain)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"bundle.{fmt}: OK: 91 records, head {head}" + (
        f"; {after}" if fmt == "json" else f" {after}"
    )


def test_json_records_are_the_seconds_of_the_window(exported: Path) -> None:
    """One record for the steady run-up, then one per unavailable second, with counts and latency."""
    bundle = json.loads((exported / "bundle.json").read_text())
    records = bundle["records"]
    assert bundle["window"] == {
        "from": "2026-11-02T10:02:20Z",
        "to": "2026-11-02T10:04:50Z",
        "seconds": 150,
        "margin_s": 60,
        "until": "restored",
    }
    assert [(r["verdict"], r["seconds"]) for r in records] == [("available", 60)] + [
        ("unavailable", 1)
    ] * 90
    outage = records[1]
    assert (outage["second"], outage["api"], outage["smtp"], outage["ok"], outage["timeout"]) == (
        "2026-11-02T10:03:20Z",
        "unavailable",
        "available",
        1,
        1,
    )
    assert (outage["worst_latency_ms"], records[0]["worst_latency_ms"]) == (10_000, None)
    # A single instance: itself, the one prober expected, in every monitored second.
    assert {(r["probers_reporting"], r["probers_expected"]) for r in records} == {(1, 1)}
    assert bundle["summary"]["unavailable_by_channel"] == {"api": 90, "smtp": 0}
    assert records[0]["digest"] == chain_digest(GENESIS, records[0])


def test_markdown_is_a_ticket_body(exported: Path) -> None:
    """The ticket body names the definition, window, counts, severity, samples, provenance and clocks."""
    text = (exported / "bundle.md").read_text()
    bundle = json.loads((exported / "bundle.json").read_text())
    for expected in (
        '> "Unavailability" means when, in a given second',
        "2026-11-02T10:02:20Z to 2026-11-02T10:04:50Z (150 s",
        "**Unavailable seconds:** 90 (API 90, SMTP 0)",
        "1 (Bird's Critical Issue under bird-email-enterprise)",
        "| 2026-11-02T10:03:20.250Z | api | send | eu-1 | probe | timeout | 504 gateway timeout key=[redacted] | 10.000s |",
        "- Probers: eu-1",
        "- Software: slawatch ",
        f"`{bundle['config_digest']}`",
        "| first_response | 15m | 24x7 | 2026-11-02T10:18:31Z | breached |",
        f"`{bundle['chain']['head']}`",
        "- Evidence seal (SHA-256 over every part of the bundle): `",
        "- **unmonitored** (0 s): slawatch was not running",
    ):
        assert expected in text


@pytest.mark.parametrize("fmt", [pytest.param(f, id=f) for f in FORMATS])
def test_no_secret_in_any_format(exported: Path, fmt: str) -> None:
    """The config's secret values never appear in a bundle."""
    assert SECRET not in (exported / f"bundle.{fmt}").read_text()


def test_one_flipped_byte_is_named(exported: Path, tmp_path: Path) -> None:
    """Changing one count of one record makes verify name that record and exit 1."""
    raw = bytearray((exported / "bundle.json").read_bytes())
    marker = b'"timeout": 1,'
    position = -1
    for _ in range(5):  # the fifth unavailable second: record 6 of 91
        position = raw.index(marker, position + 1)
    raw[position + len(marker) - 2] = ord("2")
    (tmp_path / "tampered.json").write_bytes(bytes(raw))
    done = slawatch("evidence", "verify", "tampered.json", cwd=tmp_path)
    assert done.returncode == 1
    assert "record 6 of 91 (second 2026-11-02T10:03:24Z) was altered" in done.stderr


def test_an_edited_csv_cell_is_named(exported: Path, tmp_path: Path) -> None:
    """Changing a verdict in the CSV is found just the same."""
    lines = (exported / "bundle.csv").read_text().splitlines()
    lines[40] = lines[40].replace("unavailable", "available", 1)
    (tmp_path / "tampered.csv").write_text("\n".join(lines) + "\n")
    result = verify((tmp_path / "tampered.csv").read_text())
    assert (result.ok, result.bad_index, result.bad_second) == (False, 39, "2026-11-02T10:03:58Z")


def test_a_cut_chain_fails_on_the_head() -> None:
    """Dropping the last record of a format 1 JSON bundle no longer matches its head digest."""
    chain = Chain(RECORD_FIELDS_1)
    records = [
        chain.add(
            {
                **dict.fromkeys(RECORD_FIELDS_1, 0),
                "second": f"s{i}",
                "verdict": "available",
                "api": None,
                "smtp": None,
                "worst_latency_ms": None,
            }
        )
        for i in range(3)
    ]
    bundle = {
        "format": "slawatch-evidence/1",
        "records": records[:2],
        "chain": {"head": chain.head},
    }
    result = verify(json.dumps(bundle))
    assert not result.ok
    assert result.bad_index is None
    assert "head digest" in result.reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("{not json", "invalid JSON", id="broken-json"),
        pytest.param('{"records": 3}', "not an evidence bundle", id="json-without-records"),
        pytest.param("# a ticket body\n", "unexpected columns", id="markdown"),
    ],
)
def test_verify_refuses_what_is_not_a_bundle(text: str, message: str) -> None:
    """Only JSON bundles and evidence CSVs can be verified; anything else is bad input."""
    with pytest.raises(EvidenceError, match=message):
        verify(text)


def test_verify_of_markdown_exits_2(exported: Path) -> None:
    """The CLI answers bad input with exit status 2 and one line naming the file."""
    done = slawatch("evidence", "verify", "bundle.md", cwd=exported)
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "bundle.md: neither a JSON bundle nor an evidence CSV (unexpected columns)",
    )


def test_render_refuses_an_unknown_format(exported: Path) -> None:
    """write_evidence() knows exactly the four formats."""
    from config import load_config
    from incidents.sqlite_store import SqliteStore

    loaded = load_config(exported / "slawatch.yaml", ENV)
    with SqliteStore(exported / "store.db") as store:
        source = evidence_source(store, INCIDENT, loaded, now=T_END, version="test")
        assert source is not None
        with pytest.raises(EvidenceError, match="unknown format 'pdf'"):
            write_evidence(io.StringIO(), "pdf", source)


def test_html_is_self_contained(exported: Path) -> None:
    """The printable page loads nothing from elsewhere."""
    text = (exported / "bundle.html").read_text()
    for reference in ("http://", "https://", "src=", "<link", "@import"):
        assert reference not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB or RGBA PNG into rows of pixel bytes (the five PNG filters undone)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8
    assert colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = previous[i]
                c = previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(
            bytes(
                line if bpp == 3 else b"".join(bytes(line[i : i + 3]) for i in range(0, stride, 4))
            )
        )
        previous = line
    return width, height, rows


def _count(rows: list[bytes], colour: tuple[int, int, int]) -> int:
    needle = bytes(colour)
    return sum(sum(1 for i in range(0, len(row), 3) if row[i : i + 3] == needle) for row in rows)


def test_html_timeline_renders_in_chromium(exported: Path, tmp_path: Path) -> None:
    """Headless Chromium draws the page; the PNG has the timeline's red and green strips."""
    chromium = require_tool("chromium")
    shot = tmp_path / "page.png"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1000,600",
            (exported / "bundle.html").resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    width, height, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (1000, 600)
    red, green = _count(rows, (0xD6, 0x27, 0x28)), _count(rows, (0x2C, 0xA0, 0x2C))
    # Two 90-second red strips (service, API) and three green ones fill thousands of pixels.
    assert red > 5_000
    assert green > 5_000


def test_records_break_where_the_vantage_changes() -> None:
    """A fleet's records say how many probers reported, join only seconds alike in that too,
    and leave both empty where no second was pooled."""
    t = 1_790_000_000
    runs = [
        Run("bird", channel, "available", t, t + 9, (1, 0, 0, 0, 0, 0, 0, 0, 0), 0)
        for channel in ("api", COMBINED)
    ]
    pooled = [(t, t + 3, 3, 3), (t + 4, t + 5, 2, 3), (t + 6, t + 8, 3, 3)]
    merger = RecordMerger()
    records = [*merger.add(Slice(t, t + 10, runs, [], pooled)), *merger.finish()]
    assert [(r["seconds"], r["probers_reporting"], r["probers_expected"]) for r in records] == [
        (4, 3, 3),
        (2, 2, 3),
        (3, 3, 3),
        (1, None, None),
    ]
    single = [*slice_records(runs, {}, t - 2, t + 10)]
    assert [(r["seconds"], r["probers_reporting"], r["probers_expected"]) for r in single] == [
        (2, None, None),
        (10, 1, 1),
    ]
