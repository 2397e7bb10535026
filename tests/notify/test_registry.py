"""Every notification channel type of the config has a sender in the registry, and only those."""

from __future__ import annotations

from typing import get_args

from config.model import NotifyChannel
from notify.registry import SENDERS


def _types() -> set[str]:
    union = get_args(NotifyChannel)[0]
    return {get_args(model.model_fields["type"].annotation)[0] for model in get_args(union)}


def test_registry_covers_every_channel_type() -> None:
    """Adding a channel model without its module (or the reverse) fails here."""
    assert set(SENDERS) == _types()
