"""The ``replay`` command: judge an attempt log (JSON Lines) as the daemon would, and report."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from classifier.engine import default_horizon
from classifier.replay import (
    ReplayError,
    ReplayResult,
    bounded_chunks,
    replay,
    result_json,
    result_text,
)
from config import LoadedConfig, load_config
from incidents.memory_store import MemoryStore
from incidents.recorder import Recorder, replay_clocks, replay_into_store
from incidents.sqlite_store import SqliteStore
from incidents.store import StoreError
from slawatch.errors import InputError

STDIN = "-"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``replay`` command."""
    parser = subparsers.add_parser(
        "replay",
        help="judge an attempt log (JSON Lines) by the contract, second by second",
        description=(
            "Read attempts as JSON Lines (one attempt a line; '-' for stdin), judge every "
            "second as the daemon would, and print verdict counts and incidents."
        ),
    )
    parser.add_argument("--config", required=True, help="the slawatch config file")
    parser.add_argument(
        "attempts", metavar="ATTEMPTS.jsonl", help="the attempt log, or - for stdin"
    )
    parser.add_argument("--format", choices=["json", "text"], default="json")
    parser.add_argument(
        "--store", help="also persist verdict runs, evidence and incidents into this store file"
    )
    parser.add_argument(
        "--horizon",
        type=_seconds,
        default=None,
        help="seconds after its end by which a second's attempts are all in the log "
        "(default: the longest configured timeout + 1; 11 when none is configured)",
    )
    parser.set_defaults(func=run_replay)


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


@contextmanager
def _open(path: str) -> Iterator[BinaryIO]:
    if path == STDIN:
        yield sys.stdin.buffer
        return
    try:
        handle = open(path, "rb", buffering=1 << 20)  # noqa: SIM115  (closed below)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        yield handle


def _replay_into(
    chunks: Iterable[bytes], loaded: LoadedConfig, path: str, horizon: int
) -> tuple[ReplayResult, dict[str, dict[str, Any]]]:
    try:
        with SqliteStore(path) as store:
            result = replay_into_store(chunks, loaded, store, horizon=horizon)
            return result, replay_clocks(store, result.incidents, _end(result))
    except StoreError as exc:
        raise InputError(str(exc)) from None


def _replay_in_memory(
    chunks: Iterable[bytes], loaded: LoadedConfig, horizon: int
) -> tuple[ReplayResult, dict[str, dict[str, Any]]]:
    """The fast replay; its signals become incident events too, for their SLA clocks."""
    recorder = Recorder.from_config(loaded, source="replay", samples_per_second=0)
    result = replay(
        chunks, loaded.config, loaded.catalog, horizon=horizon, on_signal=recorder.signal
    )
    store = MemoryStore()
    store.commit(recorder.take())
    return result, replay_clocks(store, result.incidents, _end(result))


def _end(result: ReplayResult) -> float:
    """The end of the replayed span: the clocks are shown as they stood then."""
    return 0.0 if result.last_second is None else float(result.last_second + 1)


def run_replay(args: argparse.Namespace) -> int:
    """Replay the log and print the JSON report or the text summary."""
    loaded = load_config(args.config)
    horizon = default_horizon(loaded.config) if args.horizon is None else args.horizon
    name = "<stdin>" if args.attempts == STDIN else args.attempts
    with _open(args.attempts) as handle:
        # read1: what is there (a pipe need not fill a whole block before replay starts).
        chunks = bounded_chunks(getattr(handle, "read1", handle.read))
        try:
            if args.store is None:
                result, clocks = _replay_in_memory(chunks, loaded, horizon)
            else:
                result, clocks = _replay_into(chunks, loaded, args.store, horizon)
        except ReplayError as exc:
            raise InputError(f"{name}:{exc.line}: {exc.message}") from None
        except OSError as exc:
            raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if args.format == "json":
        sys.stdout.write(json.dumps(result_json(result, clocks), indent=2) + "\n")
    else:
        sys.stdout.write(result_text(result) + "\n")
    return 0
