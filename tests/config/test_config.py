"""The config loader: defaults, durations, ${VAR} expansion, the catalog, the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import jsonschema
import pytest
import yaml

from config import ConfigError, load_catalog, load_config, load_config_text
from config.durations import format_duration, parse_duration
from config.loader import MAX_CONFIG_BYTES
from config.model import OutcomeName
from probe.attempt import Outcome
from slawatch.cli import main
from tests.support.paths import ROOT

EXAMPLE = ROOT / "config" / "examples" / "slawatch.yaml"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("250ms", 0.25, id="ms"),
        pytest.param("10s", 10.0, id="s"),
        pytest.param("15m", 900.0, id="m"),
        pytest.param("6h", 21600.0, id="h"),
        pytest.param("400d", 400 * 86400.0, id="d"),
        pytest.param("1.5s", 1.5, id="fraction"),
        pytest.param(7, 7.0, id="bare-number"),
    ],
)
def test_durations_parse(text: str | int, seconds: float) -> None:
    """Durations are written with a unit and read as seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0.25, "250ms", id="ms"),
        pytest.param(90.0, "90s", id="s"),
        pytest.param(900.0, "15m", id="m"),
        pytest.param(86400.0, "24h", id="hours-not-days"),
        pytest.param(1.2345, "1.2345s", id="odd"),
    ],
)
def test_durations_format(seconds: float, text: str) -> None:
    """Durations print in their shortest config spelling."""
    assert format_duration(seconds) == text


def test_example_config_is_valid() -> None:
    """The shipped, annotated example passes check-config."""
    loaded = load_config(EXAMPLE)
    assert [s.name for s in loaded.config.services] == ["sparkpost", "megaport-link"]
    assert loaded.secrets == frozenset()
    assert len(loaded.digest) == 64


def test_defaults_fill_everything_but_names() -> None:
    """A minimal service gets every documented default."""
    loaded = load_config_text(
        "services: [{name: a, api: [{name: x, url: 'http://h/'}]}]", "c.yaml", {}
    )
    service = loaded.config.services[0]
    target = service.api[0]
    assert (target.timeout, target.rate, target.connection, target.method) == (
        10.0,
        1.0,
        "fresh",
        "GET",
    )
    assert target.expect_status == list(range(200, 400))
    assert service.counts_as_unavailable == ["timeout", "server_error", "connection_error"]
    assert service.classifier.critical_after == 60.0
    assert service.classifier.reopen_within == 900.0
    assert loaded.config.server.listen == "127.0.0.1:9797"
    assert loaded.config.storage.path == "slawatch.db"


def test_traffic_sources_status_page_and_ingest_keys() -> None:
    """Traffic rules, sources, the status page and ingest bounds load with their defaults."""
    text = """
services:
  - name: a
    traffic:
      - {match: {server.address: api.example.com, url.path: "^/v1/send"}}
      - {match: {server.address: smtp.example.com}, channel: smtp, reply_code: smtp.code}
    status_page: {url: "https://status.example.com", components: [API]}
  - {name: b, sources: [traffic]}
"""
    config = load_config_text(text, "c.yaml", {}).config
    a, b = config.services
    assert a.sources == ["probes", "traffic"]
    assert b.sources == ["traffic"]
    assert (a.traffic[0].channel, a.traffic[0].target, a.traffic[0].reply_code) == (
        "api",
        "traffic",
        None,
    )
    assert a.traffic[1].reply_code == "smtp.code"
    assert a.status_page is not None
    assert (a.status_page.interval, a.status_page.components) == (60.0, ["API"])
    assert b.status_page is None
    ingest = config.ingest
    assert (ingest.max_ahead, ingest.max_behind, ingest.max_body) == (5.0, None, 8 * 1024 * 1024)


def test_env_expansion_records_secrets() -> None:
    """${VAR} is replaced from the environment and the value is remembered as a secret."""
    text = "services: [{name: a, api: [{name: x, url: 'http://h/', headers: {Authorization: 'Bearer ${K}'}}]}]"
    loaded = load_config_text(text, "c.yaml", {"K": "s3cr3t"})
    assert loaded.config.services[0].api[0].headers["Authorization"] == "Bearer s3cr3t"
    # The expanded value, and the credential header as a whole (a config secret).
    assert loaded.secrets == frozenset({"s3cr3t", "Bearer s3cr3t"})


def test_dollar_dollar_is_literal() -> None:
    """``$$`` escapes a dollar sign and expands nothing."""
    text = "services: [{name: a, smtp: [{name: x, host: h, mail_from: 'a$$b@h'}]}]"
    loaded = load_config_text(text, "c.yaml", {})
    assert loaded.config.services[0].smtp[0].mail_from == "a$b@h"


def test_digest_ignores_environment() -> None:
    """The config digest is taken before expansion, so no secret feeds it."""
    text = "services: [{name: a, smtp: [{name: x, host: h, password: '${P}'}]}]"
    one = load_config_text(text, "c.yaml", {"P": "one"})
    two = load_config_text(text, "c.yaml", {"P": "two"})
    assert one.digest == two.digest


def test_secret_str_hides_password() -> None:
    """Passwords are SecretStr: their repr does not show the value."""
    text = "services: [{name: a, smtp: [{name: x, host: h, password: hunter2}]}]"
    loaded = load_config_text(text, "c.yaml", {})
    assert "hunter2" not in repr(loaded.config)


def test_missing_file_is_located(tmp_path: Path) -> None:
    """A missing file is a one-line error naming it."""
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read: No such file"):
        load_config(tmp_path / "nope.yaml")


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    """A config larger than the bound is refused before parsing."""
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_CONFIG_BYTES + 10))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(big)


def test_non_utf8_is_refused(tmp_path: Path) -> None:
    """Binary junk is refused with the byte offset."""
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"services: \xff\xfe")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 10\)"):
        load_config(bad)


def test_outcome_names_match_probe_enum() -> None:
    """config's outcome names and probe's Outcome enum are the same set."""
    assert set(get_args(OutcomeName)) == {o.value for o in Outcome}


def test_catalog_has_every_policy_of_the_design() -> None:
    """The shipped catalog holds every policy id of DESIGN.md §10 and the four calendars."""
    catalog = load_catalog()
    assert set(catalog.policies) == {
        "sendgrid-email-api/free",
        "sendgrid-email-api/essentials",
        "sendgrid-email-api/pro",
        "sendgrid-email-api/premier",
        "sendgrid-marketing-campaigns/free",
        "sendgrid-marketing-campaigns/basic",
        "sendgrid-marketing-campaigns/advanced",
        "bird-email-enterprise",
        "bird-email-premium",
        "megaport",
    }
    assert set(catalog.calendars) == {"24x7", "us-eastern", "us-pacific", "uk"}
    assert catalog.calendars["uk"].holidays is not None
    assert catalog.calendars["uk"].holidays.subdiv == "ENG"
    assert catalog.policies["bird-email-enterprise"].severities[1].name == "Critical Issue"
    assert catalog.policies["megaport"].severities[3].clocks["restore"].target == 48 * 3600


def test_schema_validates_example(capsys: pytest.CaptureFixture[str]) -> None:
    """`slawatch config schema` is a JSON Schema that accepts the example config."""
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    # Editors see YAML dates as strings, so compare in JSON's terms.
    example = json.loads(json.dumps(yaml.safe_load(EXAMPLE.read_text()), default=str))
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"services": [{"name": "a", "apii": []}]}, schema)


def test_check_config_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """check-config prints a one-line summary and exits 0."""
    assert main(["check-config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "OK: 2 services, 2 API targets, 1 SMTP target, 1 control check, 1 notify channel" in out


def test_catalog_command_lists_clocks(capsys: pytest.CaptureFixture[str]) -> None:
    """`slawatch catalog` shows policies with severities and clock targets."""
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out
    assert "megaport" in out
    assert "Severity 1" in out
    assert "15m (24x7)" in out
    assert "48h (business hours)" in out


def test_catalog_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`slawatch catalog --format json` is machine-readable."""
    assert main(["catalog", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (
        data["policies"]["sendgrid-email-api/essentials"]["severities"]["1"]["clocks"][
            "first_response"
        ]["target"]
        == 10800.0
    )


def test_no_traceback_in_subprocess(tmp_path: Path) -> None:
    """The installed command reports a bad config in one line, never a traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "services:\n  - name: a\n    api: [{name: x, url: 'http://h/', timeout: soon}]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "slawatch.cli", "check-config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        f"{bad}: services[0].api[0].timeout: invalid duration 'soon' (expected e.g. 250ms, 10s, 15m)\n"
    )
    assert "Traceback" not in proc.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version."""
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("slawatch 0.")
