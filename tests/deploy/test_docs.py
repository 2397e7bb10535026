"""The README covers every deployment asset and the promtool commands."""

from __future__ import annotations

import pytest

from tests.support.paths import ROOT

GUIDE = ROOT / "README.md"
ASSETS = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "deploy").rglob("*")
    if p.is_file() and p.parent.name != "tests"
)


@pytest.mark.parametrize("asset", [pytest.param(a, id=a) for a in ASSETS])
def test_guide_names_asset(asset: str) -> None:
    """Each file under deploy/ is explained in the README."""
    assert asset in GUIDE.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("promtool check rules", id="check"),
        pytest.param("promtool test rules deploy/prometheus/tests/*.yml", id="test"),
    ],
)
def test_guide_shows_promtool(command: str) -> None:
    """The README shows how to check and test the rules."""
    assert command in GUIDE.read_text(encoding="utf-8")
