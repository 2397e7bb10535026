"""Channel type → the module that sends it: the one table a new notification channel joins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.model import NotifyChannel
from notify import alertmanager, email, pagerduty, slack, webhook
from notify.sender import Sender, SenderContext

# Every ``type`` of the NotifyChannel union (a test holds the two to the same set).
SENDERS: dict[str, Callable[[Any, SenderContext], Sender]] = {
    "webhook": webhook.make_sender,
    "slack": slack.make_sender,
    "pagerduty": pagerduty.make_sender,
    "alertmanager": alertmanager.make_sender,
    "email": email.make_sender,
}


def make_sender(channel: NotifyChannel, context: SenderContext) -> Sender:
    """The sender of one configured channel."""
    return SENDERS[channel.type](channel, context)
