"""The docs (README.md and docs/) cover every deployment asset; the README stays a front door."""

from __future__ import annotations

import pytest
import yaml

from tests.support.paths import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS = ROOT / "mkdocs.yml"
README_MAX_LINES = 250
ASSETS = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "deploy").rglob("*")
    if p.is_file() and p.parent.name != "tests"
)


def docs_text() -> str:
    """README.md and every page under docs/, as one text."""
    pages = [README, *sorted(DOCS.rglob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def nav_pages(node: object) -> set[str]:
    """Every page file named in an mkdocs ``nav`` (nested lists and titled entries)."""
    if isinstance(node, str):
        return {node}
    if isinstance(node, list):
        return set().union(*(nav_pages(item) for item in node))
    if isinstance(node, dict):
        return set().union(*(nav_pages(value) for value in node.values()))
    return set()


@pytest.mark.parametrize("asset", [pytest.param(a, id=a) for a in ASSETS])
def test_docs_name_asset(asset: str) -> None:
    """Each file under deploy/ is explained somewhere in the docs."""
    assert asset in docs_text()


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("promtool check rules", id="check"),
        pytest.param("promtool test rules deploy/prometheus/tests/*.yml", id="test"),
    ],
)
def test_docs_show_promtool(command: str) -> None:
    """The docs show how to check and test the rules."""
    assert command in docs_text()


def test_readme_is_a_front_door() -> None:
    """README.md stays short and keeps the two-command quick start."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "make run" in text
    assert "make test" in text


def test_every_page_is_in_the_nav() -> None:
    """Every page under docs/ is reachable from the mkdocs.yml nav, and the nav names no other."""
    config = yaml.safe_load(MKDOCS.read_text(encoding="utf-8"))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages
    assert nav_pages(config["nav"]) == pages
