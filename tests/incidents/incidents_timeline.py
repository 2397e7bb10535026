"""Scripted timelines for the incidents tests: the tests' one notation, as attempt log lines.

A timeline (``tests.support.timeline``) is the service ``bird``'s API, one character a
second: each of the second's outcomes is one attempt of the ``send`` target (two in a
partial second), and SMTP's ``inject`` target answers once in every second that has
attempts. So ``x`` is an API timeout (HTTP 504, carrying the secret) beside a working SMTP,
and the service is unavailable. Run as ``python -m tests.incidents.incidents_timeline`` it
is the writer process of the crash tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from probe.attempt import Outcome
from tests.support.timeline import BUSINESS_T0 as T0
from tests.support.timeline import SECONDS, expand

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

OUTAGE = expand("200. 90x 150.")
# What an API attempt of each outcome took and said.
API_ANSWERS: dict[Outcome, tuple[float, str]] = {
    Outcome.OK: (0.12, "200"),
    Outcome.TIMEOUT: (10.0, f"504 gateway timeout key={SECRET}"),
    Outcome.SERVER_ERROR: (0.3, "503 service unavailable"),
    Outcome.CLIENT_ERROR: (0.1, "404 not found"),
    Outcome.RATE_LIMITED: (0.1, "429 too many requests"),
    Outcome.PROBE_ERROR: (0.0, "bug in the probe"),
}


def write_config(folder: Path, text: str = CONFIG) -> Path:
    """Write a config file into ``folder`` and return its path."""
    path = folder / "slawatch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _line(
    channel: str, target: str, at: float, outcome: str, *, duration: float, detail: str
) -> str:
    record = {"service": "bird", "channel": channel, "target": target}
    return json.dumps(record | _fields(at, outcome, duration, detail))


def _fields(at: float, outcome: str, duration: float, detail: str) -> dict[str, object]:
    return {
        "prober": "eu-1",
        "started_at": _stamp(at),
        "outcome": outcome,
        "duration_s": duration,
        "detail": detail,
    }


def _stamp(at: float) -> str:
    whole = int(at)
    millis = round((at - whole) * 1000)
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def attempt_lines(timeline: str, start: int = T0) -> list[str]:
    """Attempt log lines (in start order) for a timeline of second characters."""
    lines: list[str] = []
    for offset, char in enumerate(expand(timeline)):
        second, seen = start + offset, SECONDS[char]
        if seen.control_failed:
            record = {"service": "_control", "channel": "control", "target": "gw"}
            lines.append(json.dumps(record | _fields(second + 0.1, "timeout", 1.0, "")))
        for index, outcome in enumerate(seen.outcomes):
            duration, detail = API_ANSWERS[outcome]
            at = second + 0.25 + 0.5 * index
            lines.append(_line("api", "send", at, outcome, duration=duration, detail=detail))
            if index == 0:
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

    timeline = expand(timeline)
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


def writer_command(config: Path, store: Path, timeline: str, *options: str) -> list[str]:
    """The command line of the writer process (run it in :data:`ROOT`)."""
    return [sys.executable, "-m", __name__, str(config), str(store), timeline, *options]


def main(argv: list[str]) -> None:
    """``python -m tests.incidents.incidents_timeline CONFIG STORE TIMELINE [--delay S] [--stop FILE]``."""
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
