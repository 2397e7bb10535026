"""Benchmark ``slawatch evidence``: the bundle of a 7-day incident seen by 3 probers.

Builds a store as the daemon would leave it after a week-long degradation: a 2-hour hard
API outage, then a 3-second partial burst every minute (one prober of three failing), so
the incident never restores; each channel's runs, and as samples every attempt of each
second its channel was not available (3 a second: the recorder keeps no others). Then, in
a child process each (``--runs`` times), ``slawatch evidence ID --config F -o FILE`` for
JSON and Markdown, reporting wall time, CPU, the child's peak resident memory (its own
VmHWM: a forked child's ru_maxrss would count the parent's pages), the file size, and the
load average.
The budget (docs/performance.md): under 10 s and under 200 MB.

    python bench/evidence_budget.py [--days 7] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import load_average

from classifier.signals import Opened
from classifier.verdict import OUTCOME_INDEX, OUTCOMES
from config import load_config
from incidents.model import Run
from incidents.recorder import Recorder
from incidents.sqlite_store import SqliteStore
from incidents.store import Batch
from probe.attempt import Attempt, Channel, Outcome

START = 1_795_046_400  # 2026-11-19T00:00:00Z
PROBERS = ("eu-1", "us-1", "ap-1")
OUTAGE_S = 7_200
CONFIG = """\
prober: {id: bench-host}
storage: {path: store.db, attempts_per_second: 20}
services:
  - name: sparkpost
    sla: {policy: bird-email-enterprise, calendar: us-eastern}
    api:
      - {name: account, url: "https://api.example.com/v1/account"}
    smtp:
      - {name: inject, host: smtp.example.com}
"""


def _counts(**by_outcome: int) -> tuple[int, ...]:
    counts = [0] * len(OUTCOMES)
    for name, count in by_outcome.items():
        counts[OUTCOME_INDEX[Outcome(name)]] = count
    return tuple(counts)


def kind(offset: int) -> str:
    """What second ``offset`` of the incident was: ``x`` hard outage, ``p`` partial, ``.`` fine."""
    if offset < OUTAGE_S:
        return "x"
    return "p" if offset % 60 < 3 else "."


# Per kind: the API verdict and counts, the SMTP ones, the combined ones.
SHAPES = {
    "x": (("unavailable", _counts(timeout=3)), ("available", _counts(ok=3)), "unavailable"),
    "p": (
        ("partial", _counts(ok=2, server_error=1)),
        ("available", _counts(ok=3)),
        "partial",
    ),
    ".": (("available", _counts(ok=3)), ("available", _counts(ok=3)), "available"),
}


def build_store(folder: Path, days: int) -> tuple[str, int, int]:
    """Write the week into ``folder/store.db``; the incident id, run and sample counts."""
    loaded = load_config(folder / "slawatch.yaml")
    seconds = days * 86_400
    recorder = Recorder.from_config(loaded, source="classifier")
    opened = Opened(
        service="sparkpost",
        incident="sparkpost-20261119T000000Z",
        severity=2,
        provider_severity="Non-Critical Issue",
        started_at=START,
        detected_at=START + 15,
        channels=("api",),
    )
    recorder.signal(opened)
    events = recorder.take().events
    runs: list[Run] = []
    samples: list[Attempt] = []
    run_count = sample_count = 0
    current: dict[str, list[Any]] = {}
    with SqliteStore(folder / "store.db") as store:
        store.commit(Batch(events=events))

        def flush() -> None:
            nonlocal runs, samples
            store.commit(Batch(runs=runs, samples=samples))
            runs, samples = [], []

        for offset in range(seconds):
            second = START + offset
            char = kind(offset)
            (api, api_counts), (smtp, smtp_counts), combined = SHAPES[char]
            combined_counts = tuple(a + b for a, b in zip(api_counts, smtp_counts, strict=True))
            for channel, verdict, counts in (
                ("api", api, api_counts),
                ("smtp", smtp, smtp_counts),
                ("combined", combined, combined_counts),
            ):
                run = current.get(channel)
                if run and run[0] == verdict and run[1] == counts and run[3] == second - 1:
                    run[3] = second
                    continue
                if run:
                    runs.append(Run("sparkpost", channel, run[0], run[2], run[3], run[1]))
                    run_count += 1
                current[channel] = [verdict, counts, second, second]
            if char != ".":
                for index, prober in enumerate(PROBERS):
                    failed = char == "x" or index == 0
                    samples.append(
                        Attempt(
                            "sparkpost",
                            Channel.API,
                            "account",
                            prober,
                            second + 0.1 + index * 0.2,
                            10.0 if char == "x" else 0.35,
                            (Outcome.TIMEOUT if char == "x" else Outcome.SERVER_ERROR)
                            if failed
                            else Outcome.OK,
                            phase="response" if failed else "done",
                            detail=("read timeout" if char == "x" else "HTTP 503")
                            if failed
                            else "HTTP 200",
                            timings={"connect": 0.012, "tls": 0.031, "first_byte": 0.3},
                        )
                    )
                    sample_count += 1
            if len(samples) >= 50_000 or len(runs) >= 50_000:
                flush()
        for channel, run in current.items():
            runs.append(Run("sparkpost", channel, run[0], run[2], run[3], run[1]))
            run_count += 1
        store.commit(
            Batch(
                runs=runs,
                samples=samples,
                high_water={
                    ("sparkpost", c): START + seconds - 1 for c in ("api", "smtp", "combined")
                },
            )
        )
    return opened.incident, run_count, sample_count


# Runs the command line, then reports the process's own peak resident memory (kB).
RUNNER = """
import sys
from slawatch.cli import main
code = main(sys.argv[1:])
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print("peak_kb", peak, file=sys.stderr)
sys.exit(code)
"""


def export_once(command: list[str], output: Path) -> dict[str, Any]:
    """Run one export in a child; its time, CPU, peak memory and output size."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"evidence failed ({done.returncode}): {done.stderr.strip()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kb = int(done.stderr.split("peak_kb")[-1].split()[0])
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "bytes": output.stat().st_size,
        "load_average": load_average(),
    }


def main() -> int:
    """Build the store, export the bundle, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3, help="export this many times per format")
    parser.add_argument("--keep", type=Path, help="build the store here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        where = args.keep or Path(scratch)
        where.mkdir(parents=True, exist_ok=True)
        (where / "slawatch.yaml").write_text(CONFIG, encoding="utf-8")
        print(f"building a store of a {args.days}-day incident ...", file=sys.stderr)
        incident, runs, samples = build_store(where, args.days)
        results: dict[str, Any] = {
            "days": args.days,
            "probers": len(PROBERS),
            "runs": runs,
            "samples": samples,
        }
        for fmt in ("json", "md"):
            output = where / f"bundle.{fmt}"
            command = [
                sys.executable,
                "-c",
                RUNNER,
                "evidence",
                incident,
                "--config",
                str(where / "slawatch.yaml"),
                "--format",
                fmt,
                "-o",
                str(output),
            ]
            runs_of = []
            for number in range(1, max(1, args.runs) + 1):
                print(f"evidence --format {fmt}, run {number} ...", file=sys.stderr)
                runs_of.append(export_once(command, output))
            results[fmt] = {
                "runs": runs_of,
                "median_wall_s": statistics.median(r["wall_s"] for r in runs_of),
            }
            if fmt == "json":
                bundle = json.loads(output.read_text())
                results["records"] = bundle["chain"]["records"]
                results["window_seconds"] = bundle["window"]["seconds"]
                results["summary"] = bundle["summary"]["seconds"]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
