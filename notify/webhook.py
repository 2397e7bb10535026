"""The generic webhook channel (``type: webhook``): the document as JSON, signed when asked."""

from __future__ import annotations

from typing import Any

from config.model import WebhookNotify
from config.timetext import format_time
from incidents.outbox import Notification
from notify.sender import HttpSender, Sender, SenderContext


def webhook_body(note: Notification, *, sent_at: float) -> dict[str, Any]:
    """The generic webhook JSON of DESIGN.md §10: the document stamped with ``sent_at``."""
    return {**note.document, "sent_at": format_time(sent_at)}


def make_sender(channel: WebhookNotify, context: SenderContext) -> Sender:
    """POST the document; ``X-Slawatch-Signature`` when the channel has a ``secret``."""
    return HttpSender(
        channel.url,
        lambda note, at: webhook_body(note, sent_at=at),
        context=context,
        timeout=channel.timeout,
        secret=None if channel.secret is None else channel.secret.get_secret_value(),
    )
