"""The e-mail channel (``type: email``): a notification, or a ticket draft with the evidence."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from config import LoadedConfig
from config.model import EmailNotify
from incidents.evidence import render_evidence
from incidents.outbox import Notification
from incidents.signing import load_signer
from incidents.store import IncidentStore
from notify.sender import DeliveryError, PermanentDeliveryError, Sender, SenderContext
from notify.text import detail_lines, headline
from probe.clock import Clock

# (store, incident id) → the incident's Markdown evidence, or None.
Evidence = Callable[[IncidentStore, str], str | None]


def email_subject(note: Notification, *, ticket_draft: bool) -> str:
    """The subject; a ticket draft leads with the provider's own severity name."""
    document = note.document
    incident = document.get("incident")
    if not ticket_draft or incident is None:
        return headline(document)
    return (
        f"{incident['provider_severity']}: {incident['service']} unavailable since "
        f"{incident['started_at']} (incident {incident['id']})"
    )


def email_text(note: Notification) -> str:
    """The plain-text body of an ordinary notification e-mail."""
    return "\n".join([headline(note.document), "", *detail_lines(note.document), ""])


def is_ticket_draft(note: Notification) -> bool:
    """Whether a ``ticket_draft`` channel sends this one as a ticket draft (incident raised)."""
    return note.incident is not None and note.event in ("opened", "upgraded", "reopened")


def markdown_evidence(loaded: Callable[[], LoadedConfig], clock: Clock, version: str) -> Evidence:
    """Ticket-draft bodies: the incident's Markdown evidence as of the time it is sent."""

    def evidence(store: IncidentStore, incident: str) -> str | None:
        config = loaded()
        return render_evidence(
            store,
            incident,
            config,
            "md",
            now=clock.time(),
            version=version,
            signer=load_signer(config),
        )

    return evidence


class EmailSender:
    """Sends a notification, or a ticket draft with the incident's evidence, through SMTP."""

    def __init__(self, channel: EmailNotify, context: SenderContext) -> None:
        self.channel = channel
        self._evidence = context.evidence
        self._tls_context = context.tls_context

    async def message(self, note: Notification, *, sent_at: float) -> EmailMessage:
        """The e-mail of one notification (a ticket draft when the channel asks for one)."""
        channel = self.channel
        draft = channel.ticket_draft and is_ticket_draft(note)
        body = None
        if draft and note.incident is not None:
            body = await self._evidence(note.incident)
        message = EmailMessage()
        message["From"] = channel.from_
        message["To"] = ", ".join(channel.to)
        message["Subject"] = email_subject(note, ticket_draft=body is not None)
        message["Date"] = formatdate(sent_at, usegmt=True)
        # The same Message-ID on every try: mail systems drop the repeats of at-least-once.
        digest = hashlib.sha256(note.key.encode()).hexdigest()[:32]
        message["Message-ID"] = f"<{digest}@slawatch>"
        message["X-Slawatch-Idempotency-Key"] = note.key
        message["X-Slawatch-Event"] = note.event
        message.set_content(body if body is not None else email_text(note))
        return message

    async def send(self, note: Notification, *, sent_at: float) -> None:
        """Hand the message to the relay; a 5xx reply is permanent, the rest retried."""
        channel = self.channel
        message = await self.message(note, sent_at=sent_at)
        try:
            await aiosmtplib.send(
                message,
                hostname=channel.host,
                port=channel.port,
                username=channel.username,
                password=None if channel.password is None else channel.password.get_secret_value(),
                use_tls=channel.tls == "implicit",
                start_tls=channel.tls == "starttls",
                tls_context=self._tls_context,
                timeout=channel.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = {r.code for r in exc.recipients}
            error = f"recipients refused: {', '.join(str(r) for r in exc.recipients)}"
            if all(code >= 500 for code in codes):
                raise PermanentDeliveryError(error) from None
            raise DeliveryError(error) from None
        except aiosmtplib.SMTPResponseException as exc:
            error = f"SMTP {exc.code}: {exc.message}"
            if exc.code >= 500:
                raise PermanentDeliveryError(error) from None
            raise DeliveryError(error) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


def make_sender(channel: EmailNotify, context: SenderContext) -> Sender:
    """Send through the channel's SMTP relay."""
    return EmailSender(channel, context)
