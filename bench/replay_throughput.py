"""Benchmark ``slawatch replay``: a month of 1 Hz attempts for one service on two channels.

Writes the attempt log to a temporary directory, replays it in a child process (``--runs``
times) and reports attempts per second (wall and CPU) and the child's peak resident memory
for each run, then the best and the median run by wall time.

``--log steady`` (the default) writes every attempt with the same duration, so a steady
hour is the same lines with the stamp changing; ``--log varied`` gives each attempt its own
duration and lets the two channels finish in either order within a second, as a live
prober's log is written: no two seconds are alike byte for byte.

    python bench/replay_throughput.py [--days 30] [--runs 3] [--log steady|varied] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

START = 1_795_046_400  # 2026-11-19T00:00:00Z
CONFIG = """\
services:
  - name: sparkpost
    sla: {policy: bird-email-enterprise, calendar: us-eastern}
"""


def outcome(second: int, channel: str) -> str:
    """A month with realistic trouble: a daily 90 s API outage, SMTP blips, stray 4xx and 429."""
    of_day = second % 86400
    if channel == "api" and 36000 <= of_day < 36090:
        return "timeout"
    if channel == "smtp" and of_day % 7200 < 3:
        return "server_error"
    if second % 997 == 0:
        return "client_error"
    if second % 1009 == 0:
        return "rate_limited"
    return "ok"


def generate(path: Path, days: int, varied: bool = False) -> int:
    """Write the log in the canonical form ``slawatch probe`` writes; return the line count."""
    count = 0
    rng = random.Random(1)  # noqa: S311  (a reproducible log, not a secret)
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as out:
        for second in range(START, START + days * 86400):
            stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            lines = []
            for channel, target, frac in (("api", "account", "250"), ("smtp", "inject", "750")):
                record = {
                    "service": "sparkpost",
                    "channel": channel,
                    "target": target,
                    "prober": "eu-1",
                    "started_at": f"{stamp}.{frac}Z",
                    "outcome": outcome(second, channel),
                    "duration_s": round(rng.uniform(0.02, 0.4), 6) if varied else 0.084213,
                }
                lines.append(json.dumps(record))
            if varied and rng.random() < 0.5:
                lines.reverse()
            out.write("\n".join(lines) + "\n")
            count += 2
    return count


def replay_once(command: list[str], lines: int) -> dict[str, Any]:
    """Run the replay child once; its throughput, peak memory and report summary."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"replay failed ({done.returncode}): {done.stderr.strip()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = json.loads(done.stdout)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "attempts_per_s_wall": round(lines / wall),
        "attempts_per_s_cpu": round(lines / cpu),
        # The largest of any child so far: every run replays the same log.
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
        "incidents": len(report["incidents"]),
        "combined": report["services"]["sparkpost"]["combined"],
    }


def main() -> int:
    """Generate, replay, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=1, help="replay the log this many times")
    parser.add_argument("--log", choices=["steady", "varied"], default="steady")
    parser.add_argument("--keep", type=Path, help="write the log and config here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        where = args.keep or Path(scratch)
        where.mkdir(parents=True, exist_ok=True)
        log, config = where / "attempts.jsonl", where / "slawatch.yaml"
        config.write_text(CONFIG, encoding="utf-8")
        print(f"generating {args.days} days of attempts ...", file=sys.stderr)
        lines = generate(log, args.days, varied=args.log == "varied")
        size = log.stat().st_size
        command = [
            sys.executable,
            "-m",
            "slawatch.cli",
            "replay",
            "--config",
            str(config),
            str(log),
        ]
        runs = []
        for number in range(1, max(1, args.runs) + 1):
            print(f"replay run {number} ...", file=sys.stderr)
            runs.append(replay_once(command, lines))
    summary: dict[str, Any] = {
        "days": args.days,
        "log": args.log,
        "attempts": lines,
        "log_bytes": size,
    }
    if len(runs) == 1:
        summary.update(runs[0])
    else:
        median = statistics.median(r["wall_s"] for r in runs)
        summary["runs"] = runs
        summary["best"] = min(runs, key=lambda r: r["wall_s"])
        summary["median_wall_s"] = median
        summary["median_attempts_per_s_wall"] = round(lines / median)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
