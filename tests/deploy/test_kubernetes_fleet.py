"""The Kubernetes fleet example: one Deployment per location, one config for all, a valid config."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from config import load_config_text
from config.fleet import judging_digest
from tests.support.paths import ROOT

FLEET = ROOT / "deploy" / "kubernetes" / "fleet.yaml"


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    """The manifests, in file order."""
    with open(FLEET, encoding="utf-8") as handle:
        return [d for d in yaml.safe_load_all(handle) if d]


def _deployments(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == "Deployment"]


def _config_text(documents: list[dict[str, Any]]) -> str:
    (config_map,) = [d for d in documents if d["kind"] == "ConfigMap"]
    text: str = config_map["data"]["slawatch.yaml"]
    return text


def test_three_locations_one_config(documents: list[dict[str, Any]]) -> None:
    """Three Deployments, each of its own location, all mounting the same ConfigMap."""
    deployments = _deployments(documents)
    locations = [
        d["spec"]["template"]["metadata"]["labels"]["slawatch.io/location"] for d in deployments
    ]
    assert locations == ["eu-west", "us-east", "ap-south"]
    for deployment in deployments:
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
        (volume,) = [v for v in spec["template"]["spec"]["volumes"] if v["name"] == "config"]
        assert volume["configMap"]["name"] == "slawatch-fleet-config"


def test_each_pod_names_itself_and_its_location(documents: list[dict[str, Any]]) -> None:
    """The prober id is the Pod's name and the group its location label, both from the API."""
    for deployment in _deployments(documents):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}) for e in container["env"]}
        assert env["SLAWATCH_PROBER"]["fieldPath"] == "metadata.name"
        assert env["REGION"]["fieldPath"] == "metadata.labels['slawatch.io/location']"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_config_is_valid_and_judges_alike_everywhere(documents: list[dict[str, Any]]) -> None:
    """The ConfigMap's config loads in every location, with one judging digest for all."""
    text = _config_text(documents)
    digests = set()
    for location in ("eu-west", "us-east", "ap-south"):
        environ = {
            "SLAWATCH_PROBER": f"slawatch-{location}-7d9f",
            "REGION": location,
            "SLAWATCH_TOKEN": "t",
            "SPARKPOST_API_KEY": "k",
            "PGPASSWORD": "p",
        }
        loaded = load_config_text(text, "slawatch.yaml", environ)
        assert loaded.config.prober.group == location
        assert loaded.config.storage.url is not None
        digests.add(judging_digest(loaded.config))
    assert len(digests) == 1
