"""Scripted timelines for the incidents tests: one character a second, as attempt log lines."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# 2026-11-02T10:00:00Z, a Monday in US Eastern business hours.
T0 = 1_793_613_600

CONFIG = """\
prober: {id: eu-1}
storage: {path: store.db, attempts_per_second: 5}
services:
  - name: bird
    sla: {policy: bird-email-enterprise, calendar: us-eastern, commitment: 99.9, update_every: 1h}
    api:
      - {name: send, url: "https://api.example.com/v1/send", headers: {Authorization: "${BIRD_KEY}"}}
    smtp:
      - {name: inject, host: smtp.example.com}
"""
SECRET = "sk-live-0123456789abcdef"
ENV = {"BIRD_KEY": SECRET}

# Second characters: what the API and SMTP probes saw in that second.
#   .  both ok            x  API timed out (HTTP 504, carrying the secret), SMTP ok
#   X  both failed        p  API: one timeout and one ok        ?  no attempts at all
OUTAGE = "." * 200 + "x" * 90 + "." * 150


def write_config(folder: Path, text: str = CONFIG) -> Path:
    """Write a config file into ``folder`` and return its path."""
    path = folder / "slawatch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _line(
    channel: str, target: str, at: float, outcome: str, *, duration: float, detail: str
) -> str:
    record = {
        "service": "bird",
        "channel": channel,
        "target": target,
        "prober": "eu-1",
        "started_at": _stamp(at),
        "outcome": outcome,
        "duration_s": duration,
        "detail": detail,
    }
    return json.dumps(record)


def _stamp(at: float) -> str:
    whole = int(at)
    millis = round((at - whole) * 1000)
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def attempt_lines(timeline: str, start: int = T0) -> list[str]:
    """Attempt log lines (in start order) for a timeline of second characters."""
    lines: list[str] = []
    for offset, char in enumerate(timeline):
        second = start + offset
        if char == "?":
            continue
        if char in "xXp":
            lines.append(
                _line(
                    "api",
                    "send",
                    second + 0.25,
                    "timeout",
                    duration=10.0,
                    detail=f"504 gateway timeout key={SECRET}",
                )
            )
        else:
            lines.append(_line("api", "send", second + 0.25, "ok", duration=0.12, detail="200"))
        if char == "p":
            lines.append(_line("api", "send", second + 0.75, "ok", duration=0.2, detail="200"))
        if char == "X":
            lines.append(
                _line(
                    "smtp",
                    "inject",
                    second + 0.5,
                    "server_error",
                    duration=0.5,
                    detail="421 4.3.0 try later",
                )
            )
        else:
            lines.append(
                _line("smtp", "inject", second + 0.5, "ok", duration=0.05, detail="250 ok")
            )
    return lines


def write_attempts(
    folder: Path, timeline: str, start: int = T0, name: str = "attempts.jsonl"
) -> Path:
    """Write the attempt log of a timeline and return its path."""
    path = folder / name
    path.write_text("\n".join(attempt_lines(timeline, start)) + "\n", encoding="utf-8")
    return path


def write_stream(
    config: Path, store: Path, timeline: str, *, delay: float, stop: Path | None
) -> None:
    """Judge a timeline second by second as the daemon does, committing once per second.

    Resumes from what the store holds (classifier snapshot, runs, high-water marks), so a
    writer killed part-way and started again continues where its last commit ended. With
    ``stop``, it goes on with available seconds after the timeline until that file exists.
    """
    from classifier.engine import Classifier
    from config import load_config
    from incidents.recorder import Recorder
    from incidents.sqlite_store import SqliteStore
    from probe.attempt import attempt_from_json

    loaded = load_config(config, ENV)
    classifier = Classifier.from_config(loaded.config, loaded.catalog, horizon=0)
    recorder = Recorder.from_config(loaded)
    with SqliteStore(store) as db:
        state = db.classifier_state()
        if state is not None:
            classifier.restore(state)
        recorder.resume(db)
        first = T0 if state is None else int(state["next_second"])
        second = first
        while True:
            offset = second - T0
            if offset < len(timeline):
                char = timeline[offset]
            elif stop is not None and not stop.exists() and offset < 100_000:
                char = "."
            else:
                break
            for line in attempt_lines(char, second):
                attempt = attempt_from_json(json.loads(line))
                classifier.add(attempt)
                recorder.attempt(attempt)
            found = classifier.advance(second + 1)
            recorder.record(found.verdicts, found.signals, now=second + 1)
            db.commit(recorder.take(classifier.snapshot()))
            print(f"committed {second}", flush=True)
            second += 1
            if delay:
                time.sleep(delay)


def main(argv: list[str]) -> None:
    """``python incidents_timeline.py CONFIG STORE TIMELINE [--delay S] [--stop FILE]``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("store", type=Path)
    parser.add_argument("timeline")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--stop", type=Path)
    args = parser.parse_args(argv)
    write_stream(args.config, args.store, args.timeline, delay=args.delay, stop=args.stop)


if __name__ == "__main__":
    main(sys.argv[1:])
