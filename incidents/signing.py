"""Ed25519 signatures of evidence seals: sign with a private key, check against a public one.

Keys are PEM text (PKCS #8 private keys, SubjectPublicKeyInfo public keys, as
``openssl genpkey -algorithm ed25519`` and ``openssl pkey -pubout`` write them). Errors
name what is wrong with a key, never its bytes.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config import ConfigError, LoadedConfig

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

# ``cryptography`` is imported where a key is used, not here: every command loads this
# module, and the library adds about 7 MB to a process that never signs.

ALGORITHM = "ed25519"


class SigningKeyError(ValueError):
    """Key text that is not a usable Ed25519 key (the message never quotes the key)."""


def _raw(public: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415  (see above)

    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public: Ed25519PublicKey) -> str:
    """``sha256:`` and the hex SHA-256 of the raw 32-byte public key: a name to compare."""
    return "sha256:" + hashlib.sha256(_raw(public)).hexdigest()


def public_pem(public: Ed25519PublicKey) -> str:
    """The public key as PEM (SubjectPublicKeyInfo), the form ``verify --key`` reads."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415  (see above)

    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@dataclass(frozen=True)
class Signer:
    """A private key that signs seal digests."""

    key: Ed25519PrivateKey

    @classmethod
    def from_pem(cls, data: bytes) -> Signer:
        """The signer of a PEM private key; SigningKeyError if it is not an Ed25519 one."""
        from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415  (see above)
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
            Ed25519PrivateKey,
        )

        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise SigningKeyError(
                "not an unencrypted Ed25519 private key in PEM "
                "(make one with: openssl genpkey -algorithm ed25519)"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError("the private key is not an Ed25519 key")
        return cls(key)

    @property
    def public(self) -> Ed25519PublicKey:
        """The matching public key."""
        return self.key.public_key()

    def sign(self, message: str) -> dict[str, str]:
        """The signature block of ``message``: algorithm, public key, fingerprint, value."""
        signature = self.key.sign(message.encode("utf-8"))
        return {
            "algorithm": ALGORITHM,
            "public_key": base64.b64encode(_raw(self.public)).decode("ascii"),
            "key_fingerprint": fingerprint(self.public),
            "value": base64.b64encode(signature).decode("ascii"),
        }


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM, or from the base64 of its 32 raw bytes."""
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415  (see above)
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PublicKey,
    )

    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningKeyError("not an Ed25519 public key (PEM, or base64 of 32 bytes)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("the public key is not an Ed25519 key")
    return key


def check_signature(block: object, message: str, trusted: Ed25519PublicKey | None) -> str:
    """Why the signature block does not sign ``message`` ("" when it does).

    With ``trusted``, the block must be by that key; without, it is checked against the
    public key it carries (which proves only that the bundle was not edited since signing
    by whoever holds that key).
    """
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415  (see above)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PublicKey,
    )

    if not isinstance(block, dict) or block.get("algorithm") != ALGORITHM:
        return f"the signature is not an {ALGORITHM} signature block"
    try:
        embedded = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(str(block.get("public_key", "")), validate=True)
        )
        value = base64.b64decode(str(block.get("value", "")), validate=True)
    except ValueError:
        return "the signature block is malformed"
    key = trusted or embedded
    if trusted is not None and _raw(trusted) != _raw(embedded):
        return (
            f"signed by another key ({fingerprint(embedded)}), not by the given one "
            f"({fingerprint(trusted)})"
        )
    try:
        key.verify(value, message.encode("utf-8"))
    except InvalidSignature:
        return "the signature does not match the seal"
    return ""


def load_signer(loaded: LoadedConfig) -> Signer | None:
    """The signer of the config's ``evidence.signing_key`` (None when it names none).

    A located ConfigError when the file cannot be read or holds no Ed25519 key; the
    message names the file, never what is in it.
    """
    name = loaded.config.evidence.signing_key
    if name is None:
        return None
    path = loaded.path(name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            loaded.source, "evidence.signing_key", f"cannot read {path}: {exc.strerror or exc}"
        ) from None
    try:
        return Signer.from_pem(data)
    except SigningKeyError as exc:
        raise ConfigError(loaded.source, "evidence.signing_key", f"{path}: {exc}") from None
