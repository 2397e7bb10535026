"""Hardening test helpers: small filesystems to fill, and the CLI's peak memory in a child."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.support.ci_tools import missing


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "2m") -> Iterator[Path]:
    """A size-limited tmpfs mounted on ``folder`` for the test, unmounted after it."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        missing("mounting a tmpfs (root and mount(8))")
    folder.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder))
    if done.returncode != 0:
        missing(f"mounting a tmpfs ({done.stderr.strip()})")
    try:
        yield folder
    finally:
        # Lazy: a daemon that failed to stop must not leave the mount behind.
        _run("umount", "-l", str(folder))


def fill(folder: Path, name: str = "filler") -> Path:
    """Write zeros into ``folder`` until its filesystem is full; the filler file."""
    filler = folder / name
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        # Big writes first, then small ones for the last partial blocks.
        for size in (65536, 512):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while os.write(fd, chunk):
                    pass
    finally:
        os.close(fd)
    return filler


_PEAK = (
    "import resource, sys\n"
    "from slawatch.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print('PEAK_KIB', peak, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def cli_with_peak(args: Sequence[str], cwd: Path) -> tuple[int, str, int]:
    """Run ``slawatch ARGS`` in a fresh interpreter: exit status, stderr, peak RSS in KiB."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stderr.splitlines()
    peak = [int(line.split()[1]) for line in lines if line.startswith("PEAK_KIB ")]
    assert peak, done.stderr[-2000:]
    text = "\n".join(line for line in lines if not line.startswith("PEAK_KIB "))
    return done.returncode, text, peak[0]
