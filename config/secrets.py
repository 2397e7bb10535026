"""Secrets: which values of a config are secret, and the one redactor that keeps them out of text.

Every text that leaves slawatch (log lines, attempt details, stored errors, evidence, API
answers) goes through a :class:`Redactor` built from :func:`config_secrets` plus the values
expanded from the environment, so one marker, ``[redacted]``, stands for every secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from config.model import Config, HttpTarget

REDACTED = "[redacted]"
# Longest attempt detail: details are evidence snippets, not logs.
MAX_DETAIL = 240
# Header names whose values are credentials even when not taken from the environment.
_SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|passw|cookie|session|signature", re.I)
# ``scheme://user:password@host``: the password part of a URL in an exception text.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^/\s@]+@", re.I)
# Notification channel fields that hold credentials.
_NOTIFY_SECRETS = ("secret", "routing_key", "password")


class Redactor:
    """Replaces known secret values (longest first) and URL passwords in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """The text with every secret and URL password replaced by ``[redacted]``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        # Most texts hold no URL with a password (every attempt's detail comes here).
        if "@" not in text:
            return text
        return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", text)

    def detail(self, text: str, limit: int = MAX_DETAIL) -> str:
        """Redacted, on one line, and cut to ``limit`` characters (attempt details, errors)."""
        text = " ".join(self(text).split())
        if len(text) > limit:
            text = text[: limit - 1] + "…"
        return text

    def tree(self, value: Any) -> Any:
        """Every string inside a JSON-like value redacted (keys are ours and kept as they are)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.tree(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.tree(v) for v in value]
        return value


def config_secrets(config: Config) -> set[str]:
    """Secret values a config holds itself: credentials in headers, passwords, tokens, keys."""
    found: set[str] = set()
    for service in config.services:
        for target in service.api:
            found.update(_header_secrets(target))
        for smtp in service.smtp:
            if smtp.password is not None:
                found.add(smtp.password.get_secret_value())
    if config.server.token is not None:
        found.add(config.server.token.get_secret_value())
    if config.storage.url is not None:
        url = config.storage.url.get_secret_value()
        found.add(url)
        password = urlsplit(url).password
        if password:
            found.add(password)
    for channel in config.notify:
        for name in _NOTIFY_SECRETS:
            value = getattr(channel, name, None)
            if value is not None:
                found.add(value.get_secret_value())
    return {s for s in found if s}


def _header_secrets(target: HttpTarget) -> set[str]:
    found: set[str] = set()
    for name, value in target.headers.items():
        if _SENSITIVE_HEADER.search(name):
            found.add(value)
            # "Bearer abc": the token alone may be echoed back, so redact it too.
            scheme, _, token = value.partition(" ")
            if token and scheme.isalpha():
                found.add(token)
    return found
