"""Process tuning of `slawatch run`: uvloop unless told otherwise, a larger first GC generation, frozen start-up objects."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from slawatch.cli import main
from slawatch.runtime import GC_THRESHOLDS, freeze_gc, loop_factory, tune_gc


@pytest.fixture
def without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvloop cannot be imported (as on a platform without its wheels)."""
    monkeypatch.setitem(sys.modules, "uvloop", None)


@pytest.fixture
def gc_restored() -> Iterator[None]:
    """The collector's thresholds and frozen set as they were, after the test."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_auto_is_uvloop_where_installed() -> None:
    """--event-loop auto (the default) runs on uvloop when it is installed."""
    factory = loop_factory("auto")
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
        assert loop.run_until_complete(asyncio.sleep(0, result=42)) == 42
    finally:
        loop.close()


def test_asyncio_switches_uvloop_off() -> None:
    """--event-loop asyncio keeps asyncio's own loop."""
    assert loop_factory("asyncio") is None


@pytest.mark.usefixtures("without_uvloop")
def test_auto_falls_back_without_uvloop() -> None:
    """Without uvloop, auto is asyncio's loop, and asking for uvloop is an error."""
    assert loop_factory("auto") is None
    with pytest.raises(ImportError):
        loop_factory("uvloop")


@pytest.mark.usefixtures("without_uvloop")
def test_run_asking_for_missing_uvloop_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`slawatch run --event-loop uvloop` without uvloop: one line and exit status 2."""
    config = tmp_path / "slawatch.yaml"
    config.write_text(f"storage: {{path: {tmp_path / 'store.db'}}}\n")
    assert main(["run", "--config", str(config), "--event-loop", "uvloop"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--event-loop uvloop: uvloop is not installed")
    assert len(err.splitlines()) == 1


@pytest.mark.usefixtures("gc_restored")
def test_gc_is_tuned_and_start_up_frozen() -> None:
    """tune_gc sets the thresholds; freeze_gc moves what exists out of the collector's reach."""
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() == 0
    freeze_gc()
    assert gc.get_freeze_count() > 0
