"""The Slack channel (``type: slack``, an incoming webhook): a fallback text and blocks."""

from __future__ import annotations

from typing import Any

from config.model import SlackNotify
from incidents.outbox import Notification
from notify.sender import HttpSender, Sender, SenderContext
from notify.text import detail_lines, headline


def slack_body(note: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message: a fallback text and blocks with the essentials."""
    document = note.document
    title = headline(document)
    fields = [{"type": "mrkdwn", "text": line} for line in detail_lines(document)[:10]]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "fields": fields},
    ]
    page_links = document.get("links") or {}
    if page_links.get("incident"):
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"<{page_links['incident']}|incident> · "
                        f"<{page_links['evidence']}|evidence> · key {note.key}",
                    }
                ],
            }
        )
    return {"text": title, "blocks": blocks}


def make_sender(channel: SlackNotify, context: SenderContext) -> Sender:
    """POST the message to the webhook URL (whose path is its secret: never logged)."""
    return HttpSender(
        channel.url, lambda note, _at: slack_body(note), context=context, timeout=channel.timeout
    )
