"""The Kubernetes sidecar example: probes, port, non-root, read-only root, a writable store, a valid config."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from config.durations import parse_duration
from config.model import HttpTarget, SmtpTarget
from tests.support.paths import ROOT

SIDECAR = ROOT / "deploy" / "kubernetes" / "sidecar.yaml"
PORT = 9797


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    """The manifests by kind."""
    with open(SIDECAR, encoding="utf-8") as handle:
        docs = [d for d in yaml.safe_load_all(handle) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one object per kind in this example"
    return by_kind


@pytest.fixture(scope="module")
def pod(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The Deployment's Pod template."""
    template: dict[str, Any] = documents["Deployment"]["spec"]["template"]
    return template


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    """The slawatch container."""
    found: list[dict[str, Any]] = [c for c in pod["spec"]["containers"] if c["name"] == "slawatch"]
    assert len(found) == 1
    return found[0]


@pytest.fixture(scope="module")
def config(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The slawatch config held in the ConfigMap."""
    loaded: dict[str, Any] = yaml.safe_load(documents["ConfigMap"]["data"]["slawatch.yaml"])
    return loaded


def _port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(found)


def test_kinds(documents: dict[str, dict[str, Any]]) -> None:
    """A ConfigMap, a Secret, a volume claim and a Deployment."""
    assert set(documents) == {"ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment"}


def test_image_and_args(container: dict[str, Any]) -> None:
    """The slawatch image runs the daemon on the mounted config."""
    assert container["image"].split(":")[0] == "slawatch"
    assert container["args"] == ["run", "--config", "/etc/slawatch/slawatch.yaml"]


@pytest.mark.parametrize(
    ("probe", "path"),
    [
        pytest.param("livenessProbe", "/healthz", id="liveness"),
        pytest.param("readinessProbe", "/readyz", id="readiness"),
    ],
)
def test_health_probes(container: dict[str, Any], probe: str, path: str) -> None:
    """Liveness asks /healthz and readiness /readyz, on port 9797."""
    http = container[probe]["httpGet"]
    assert http["path"] == path
    assert _port(container, http["port"]) == PORT


def test_container_port(container: dict[str, Any]) -> None:
    """The container declares port 9797."""
    assert [p["containerPort"] for p in container["ports"]] == [PORT]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("prometheus.io/scrape", "true", id="scrape"),
        pytest.param("prometheus.io/port", str(PORT), id="port"),
        pytest.param("prometheus.io/path", "/metrics", id="path"),
    ],
)
def test_scrape_annotations(pod: dict[str, Any], key: str, value: str) -> None:
    """Prometheus' Kubernetes discovery finds /metrics on 9797 (annotations are strings)."""
    assert pod["metadata"]["annotations"][key] == value


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("runAsNonRoot", True, id="non-root"),
        pytest.param("readOnlyRootFilesystem", True, id="read-only-root"),
        pytest.param("allowPrivilegeEscalation", False, id="no-escalation"),
        pytest.param("capabilities", {"drop": ["ALL"]}, id="no-capabilities"),
    ],
)
def test_container_security(container: dict[str, Any], key: str, value: object) -> None:
    """The container runs unprivileged on a read-only root filesystem."""
    assert container["securityContext"][key] == value


def test_pod_non_root(pod: dict[str, Any]) -> None:
    """The Pod as a whole refuses to run as root."""
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_store_on_a_writable_volume(
    pod: dict[str, Any], container: dict[str, Any], config: dict[str, Any]
) -> None:
    """The SQLite store sits on a mounted volume (PVC or emptyDir), not the read-only root."""
    store = PurePosixPath(config["storage"]["path"])
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (mount,) = [
        m
        for m in container["volumeMounts"]
        if store.is_relative_to(m["mountPath"]) and not m.get("readOnly", False)
    ]
    volume = volumes[mount["name"]]
    assert "persistentVolumeClaim" in volume or "emptyDir" in volume


def test_config_mounted_from_configmap(pod: dict[str, Any], container: dict[str, Any]) -> None:
    """/etc/slawatch comes from the ConfigMap holding slawatch.yaml."""
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/slawatch"]
    assert volumes[mount["name"]]["configMap"]["name"] == "slawatch-config"


def test_listens_beyond_loopback_with_a_token(
    config: dict[str, Any], documents: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    """Off loopback the config sets a token, read from the Secret the container loads."""
    assert config["server"]["listen"] == f"0.0.0.0:{PORT}"
    assert re.fullmatch(r"\$\{\w+\}", config["server"]["token"])
    assert {"secretRef": {"name": documents["Secret"]["metadata"]["name"]}} in container["envFrom"]


def test_every_config_variable_is_in_the_secret(documents: dict[str, dict[str, Any]]) -> None:
    """Each ${VAR} of the config is a key of the Secret (an unset variable fails start-up)."""
    text = documents["ConfigMap"]["data"]["slawatch.yaml"]
    wanted = set(re.findall(r"\$\{(\w+)\}", text))
    assert wanted
    assert wanted <= set(documents["Secret"]["stringData"])


def test_grace_period_covers_the_longest_probe(pod: dict[str, Any], config: dict[str, Any]) -> None:
    """The Pod waits for the longest probe timeout plus 2 s before SIGKILL."""
    timeouts = [
        parse_duration(t.get("timeout", default))
        for kind, default in (
            ("api", HttpTarget.model_fields["timeout"].default),
            ("smtp", SmtpTarget.model_fields["timeout"].default),
        )
        for service in config["services"]
        for t in service.get(kind, [])
    ]
    assert pod["spec"]["terminationGracePeriodSeconds"] >= max(timeouts) + 2


def test_config_passes_check_config(
    documents: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``slawatch check-config`` accepts the ConfigMap's config with the Secret's variables set."""
    from slawatch.cli import main

    for key, value in documents["Secret"]["stringData"].items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "slawatch.yaml"
    path.write_text(documents["ConfigMap"]["data"]["slawatch.yaml"], encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
