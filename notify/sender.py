"""What every channel's sender shares: the Sender protocol, its errors, and the HTTP transport.

Errors, classified once::

    2xx                                   delivered
    408, 425, 429, 5xx, timeout, network  failed try, retried (DeliveryError)
    other 3xx/4xx, SMTP 5xx reply         dead at once (PermanentDeliveryError)
    any other exception (a bug of ours)   failed try, retried, logged with its traceback
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from incidents.outbox import Notification

# Receivers' answers are kept in error messages up to this length.
ERROR_TEXT = 200
RETRYABLE_STATUS = frozenset({408, 425, 429})
SIGNATURE_HEADER = "X-Slawatch-Signature"


class DeliveryError(Exception):
    """A try failed in a way a later try may not (timeout, network, 5xx, 429)."""


class PermanentDeliveryError(DeliveryError):
    """A try failed in a way no retry can fix (the receiver refuses the request itself)."""


class Sender(Protocol):
    """Delivers one notification to one channel, or raises DeliveryError."""

    async def send(self, note: Notification, *, sent_at: float) -> None:
        """Deliver ``note``, stamped ``sent_at``."""


@dataclass(frozen=True, slots=True)
class SenderContext:
    """What a channel's sender may use: the worker's HTTP session, TLS, ticket-draft bodies."""

    session: Callable[[], aiohttp.ClientSession]
    # incident id → its Markdown evidence (for e-mail ticket drafts), or None.
    evidence: Callable[[str], Awaitable[str | None]]
    tls_context: ssl.SSLContext | None = None


def signature(secret: str, body: bytes) -> str:
    """The ``X-Slawatch-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HttpSender:
    """POSTs a channel's JSON payload with the notification's ``Idempotency-Key``."""

    def __init__(
        self,
        url: str,
        body: Callable[[Notification, float], Any],
        *,
        context: SenderContext,
        timeout: float,
        secret: str | None = None,
    ) -> None:
        self.url = url
        self._body = body
        self._session = context.session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._secret = secret

    async def send(self, note: Notification, *, sent_at: float) -> None:
        """POST the payload; 2xx delivers, anything else raises (see the module's table)."""
        raw = json.dumps(
            self._body(note, sent_at), ensure_ascii=False, separators=(",", ":")
        ).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": note.key}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret, raw)
        try:
            async with self._session().post(
                self.url, data=raw, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return
                text = (await response.text(errors="replace"))[:ERROR_TEXT].strip()
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Never the URL: a Slack webhook's path is its secret.
            raise DeliveryError(f"{type(exc).__name__}: {exc or 'timed out'}") from None
        message = f"HTTP {response.status}" + (f": {text}" if text else "")
        if response.status >= 500 or response.status in RETRYABLE_STATUS:
            raise DeliveryError(message)
        raise PermanentDeliveryError(message)
