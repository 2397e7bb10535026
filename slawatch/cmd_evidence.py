"""The ``evidence`` command: an incident's bundle, ``verify`` of one, and ``public-key``."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from config import load_config
from config.durations import parse_duration
from incidents.evidence import (
    DEFAULT_MARGIN_S,
    FORMAT_1,
    FORMATS,
    UNSIGNED_NOTE,
    EvidenceError,
    Verification,
    evidence_source,
    verify,
    write_evidence,
)
from incidents.signing import SigningKeyError, fingerprint, load_public_key, load_signer, public_pem
from probe.clock import SystemClock
from slawatch import __version__
from slawatch.cmd_incidents import add_store_options, open_store
from slawatch.errors import CheckFailed, InputError

VERIFY = "verify"
PUBLIC_KEY = "public-key"


def register(subparsers: Any) -> None:
    """Add ``evidence ID``, ``evidence verify FILE [--key PUB]`` and ``evidence public-key``."""
    parser = subparsers.add_parser(
        "evidence",
        help="an incident's evidence bundle (or 'evidence verify FILE', 'evidence public-key')",
        description=(
            "'evidence ID --config F' writes an incident's evidence bundle; "
            "'evidence verify FILE [--key PUB]' checks the seal (and signature) of a JSON "
            "bundle or the chain of a CSV; 'evidence public-key --config F' prints the "
            "public key of evidence.signing_key."
        ),
    )
    parser.add_argument("target", nargs="+", metavar="ID | verify FILE | public-key")
    parser.add_argument("--format", choices=FORMATS, default="json")
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    parser.add_argument(
        "--margin",
        default=f"{DEFAULT_MARGIN_S}s",
        help=f"seconds shown before the first bad second (default {DEFAULT_MARGIN_S}s)",
    )
    parser.add_argument(
        "--key", help="verify: the signer's public key (PEM file), which the signature must match"
    )
    add_store_options(parser, config_required=False)
    parser.set_defaults(func=evidence)


def evidence(args: argparse.Namespace) -> int:
    """Dispatch between writing a bundle, verifying one and printing the public key."""
    if args.target[0] == VERIFY and len(args.target) == 2:
        return verify_file(args.target[1], args.key)
    if args.target == [PUBLIC_KEY]:
        return print_public_key(args)
    if len(args.target) != 1:
        raise InputError("evidence: give one incident ID, 'verify FILE' or 'public-key'")
    return write_bundle(args)


def write_bundle(args: argparse.Namespace) -> int:
    """Write the bundle of one incident in the chosen format, streaming to ``-o`` or stdout."""
    if args.config is None:
        raise InputError("evidence: --config FILE is required (secrets, digest, definitions)")
    try:
        margin = math.floor(parse_duration(args.margin))
    except ValueError as exc:
        raise InputError(f"--margin: {exc}") from None
    loaded = load_config(args.config)
    signer = load_signer(loaded)
    now = SystemClock().time()
    with open_store(args, loaded) as store:
        source = evidence_source(
            store, args.target[0], loaded, now=now, version=__version__, margin=margin
        )
        if source is None:
            raise InputError(f"no incident {args.target[0]!r} in {store.where}")
        if args.output is None:
            write_evidence(sys.stdout, args.format, source, signer)
            return 0
        try:
            with open(args.output, "w", encoding="utf-8") as out:
                write_evidence(out, args.format, source, signer)
        except OSError as exc:
            raise InputError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    return 0


def print_public_key(args: argparse.Namespace) -> int:
    """Print the public key (PEM) of the config's evidence.signing_key, and its fingerprint."""
    if args.config is None:
        raise InputError("evidence public-key: --config FILE is required")
    loaded = load_config(args.config)
    signer = load_signer(loaded)
    if signer is None:
        raise InputError(f"{loaded.source}: evidence.signing_key: not set (no key signs bundles)")
    sys.stdout.write(public_pem(signer.public))
    print(f"# fingerprint {fingerprint(signer.public)}", file=sys.stderr)
    return 0


def verify_file(path: str, key_path: str | None) -> int:
    """Check a bundle; exit 1 naming the first record or part that does not match."""
    key = None
    if key_path is not None:
        try:
            key = load_public_key(Path(key_path).read_bytes())
        except OSError as exc:
            raise InputError(f"{key_path}: cannot read: {exc.strerror or exc}") from None
        except SigningKeyError as exc:
            raise InputError(f"{key_path}: {exc}") from None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    try:
        result = verify(text, key)
    except EvidenceError as exc:
        raise InputError(f"{path}: {exc}") from None
    if result.bad_index is not None:
        raise CheckFailed(
            f"{path}: FAILED: record {result.bad_index + 1} of {result.records} "
            f"(second {result.bad_second}) was altered: {result.reason}"
        )
    if not result.ok:
        where = f"{result.part}: " if result.part else ""
        raise CheckFailed(f"{path}: FAILED: {where}{result.reason}")
    print(f"{path}: OK: {_ok_line(result, csv=not text.lstrip().startswith('{'))}")
    return 0


def _ok_line(result: Verification, *, csv: bool) -> str:
    records = f"{result.records} records, head {result.head}"
    if csv:
        return f"{records} (a CSV holds the records only: compare the head with the bundle's chain)"
    if result.format == FORMAT_1:
        return (
            f"{records} (format 1: only the per-second records are chained; the rest of "
            "the bundle is not sealed)"
        )
    sealed = f"{records}; every part sealed, seal {result.seal}"
    if not result.signed_by:
        return f"{sealed}; {UNSIGNED_NOTE}"
    if result.key_checked:
        return f"{sealed}; signed by {result.signed_by}, the given key"
    return (
        f"{sealed}; signed by {result.signed_by} (not checked against a key you trust: "
        "add --key PUB)"
    )
