"""Imports flow one way (DESIGN.md §2): each package imports only the packages below it,
nothing imports slawatch, no module takes part in an import circle, and the pure packages
load no I/O library."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.support.cli import unmeasured_env
from tests.support.paths import ROOT

# Each package and the packages of ours it may import: config ← probe ← classifier ←
# incidents ← notify ← slawatch, with sla beside the classifier (config ← sla ← incidents).
# No package may import slawatch, the composition root.
ALLOWED: dict[str, frozenset[str]] = {
    "config": frozenset(),
    "probe": frozenset({"config"}),
    "classifier": frozenset({"config", "probe"}),
    "sla": frozenset({"config"}),
    "incidents": frozenset({"config", "probe", "classifier", "sla"}),
    "notify": frozenset({"config", "probe", "classifier", "sla", "incidents"}),
    "slawatch": frozenset({"config", "probe", "classifier", "sla", "incidents", "notify"}),
}
PACKAGES = tuple(ALLOWED)
# The domain packages take time as data and touch no network: importing them (the store
# drivers apart) must load none of these.
PURE = ("config", "classifier", "sla", "incidents")
DRIVERS = frozenset({"incidents.sqlite_store", "incidents.pg_store", "incidents.pg_fleet"})
IO_LIBRARIES = ("aiohttp", "aiosmtplib", "psycopg", "prometheus_client", "sqlite3")


@cache
def modules() -> dict[str, Path]:
    """Every module of our packages: dotted name -> file."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(module: str, name: str, level: int) -> str:
    """The absolute module of a (possibly relative) ``from ... import``."""
    if level == 0:
        return name
    base = module.split(".")
    if modules()[module].name != "__init__.py":
        base.pop()
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


@cache
def imports(module: str) -> frozenset[str]:
    """Our modules that ``module`` imports anywhere in its file (functions included)."""
    known = modules()
    tree = ast.parse(known[module].read_text(encoding="utf-8"), str(known[module]))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = _resolve(module, node.module or "", node.level)
            # `from pkg import sub` imports the module pkg.sub; `from mod import name`, mod.
            targets = [
                f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t.split(".")[0] in ALLOWED)
    return frozenset(found)


def test_every_package_is_found() -> None:
    """The walk sees every package and their modules, so the tests below are not vacuous."""
    tops = {name.split(".")[0] for name in modules()}
    assert tops == set(PACKAGES)
    assert len(modules()) > 40
    assert "config.model" in imports("probe.attempt") | imports("probe.http")


@pytest.mark.parametrize("package", [pytest.param(p, id=p) for p in PACKAGES])
def test_package_imports_only_the_packages_below_it(package: str) -> None:
    """A module imports its own package and those below it; none imports slawatch."""
    wrong = sorted(
        f"{module} imports {target}"
        for module in modules()
        if module.split(".")[0] == package
        for target in imports(module)
        if target.split(".")[0] not in ALLOWED[package] | {package}
    )
    assert wrong == []


def test_imports_name_real_modules() -> None:
    """Every import of our packages names a module that exists (the graph below is whole)."""
    missing = sorted(
        f"{module} imports {target}"
        for module in modules()
        for target in imports(module)
        if target not in modules()
    )
    assert missing == []


def _cycle() -> list[str] | None:
    """One import circle among our modules, as the path around it, or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(module: str) -> list[str] | None:
        path.append(module)
        on_path.add(module)
        for target in sorted(imports(module)):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done and target in modules():
                found = visit(target)
                if found:
                    return found
        path.pop()
        on_path.discard(module)
        done.add(module)
        return None

    for module in sorted(modules()):
        if module not in done:
            found = visit(module)
            if found:
                return found
    return None


def test_module_graph_is_acyclic() -> None:
    """No module imports itself round a circle of others, even inside a function."""
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("package", [pytest.param(p, id=p) for p in PURE])
def test_pure_package_loads_no_io_library(package: str) -> None:
    """Importing every module of a pure package (but a store driver) loads no I/O library."""
    names = [m for m in modules() if m.split(".")[0] == package and m not in DRIVERS]
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {IO_LIBRARIES!r} if m in sys.modules)))\n"
    )
    # Not measured: coverage.py itself loads sqlite3.
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=unmeasured_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
