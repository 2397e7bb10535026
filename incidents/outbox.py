"""The notification outbox record: one message for one channel, as the store keeps it.

The store holds the outbox beside the incident log (so a notification is queued in a
transaction of its own store, whoever derived it); ``notify/`` decides what goes in and
delivers it. Keys are idempotency keys: the outbox ignores a key it already holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

OutboxState = Literal["pending", "delivered", "dead"]
OUTBOX_STATES: tuple[OutboxState, ...] = get_args(OutboxState)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one channel, as the outbox keeps it.

    ``document`` is the channel-independent body (the generic webhook JSON without
    ``sent_at``, which is stamped at each try); every channel's payload is built from it.
    """

    key: str
    channel: str
    event: str
    created_at: float
    document: Mapping[str, Any]
    incident: str | None = None
    # Assigned by the store, in enqueue order: the delivery order of each channel.
    seq: int | None = None
    state: OutboxState = "pending"
    # Tries made so far, and when the next may start (a restarted worker waits for it).
    tries: int = 0
    next_at: float | None = None
    last_error: str = ""
    # When it was delivered or dead-lettered.
    done_at: float | None = None
