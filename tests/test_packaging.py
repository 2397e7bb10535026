"""The Dockerfile's install steps work: build a wheel, install it into a fresh venv, run it."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from tests.support.cli import unmeasured_env
from tests.support.paths import ROOT


def test_wheel_installs_into_fresh_venv(tmp_path: Path) -> None:
    """The wheel carries the catalog and the example, its console script runs, psycopg loads."""
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        # pip runs none of our code: measuring it would only slow it down.
        env=unmeasured_env(),
    )
    wheel = next(dist.glob("slawatch-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # The same two steps as the Dockerfile: the locked runtime set, then the wheel alone.
    for args in (["-r", str(ROOT / "requirements.lock")], ["--no-deps", str(wheel)]):
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
            check=True,
            capture_output=True,
            cwd=tmp_path,
        )
    version = subprocess.run(
        [env_dir / "bin" / "slawatch", "--version"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert version.stdout.startswith("slawatch 0.")
    example = subprocess.run(
        [
            python,
            "-c",
            "import importlib.resources as r; print((r.files('config') / 'catalog' / 'bird.yaml').is_file())",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert example.stdout.strip() == "True"
    catalog = subprocess.run(
        [env_dir / "bin" / "slawatch", "catalog"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "bird-email-enterprise" in catalog.stdout
    # The locked set holds the PostgreSQL extra: the image can run as a fleet member.
    driver = subprocess.run(
        [python, "-c", "import psycopg; print(psycopg.pq.version() >= 150000)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert driver.stdout.strip() == "True"
