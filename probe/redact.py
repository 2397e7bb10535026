"""Keep secrets out of attempt details: every known secret is replaced before text leaves."""

from __future__ import annotations

import re
from collections.abc import Iterable

from config.model import Config, HttpTarget

REDACTED = "[redacted]"
# Longest detail an attempt carries: details are evidence snippets, not logs.
MAX_DETAIL = 240
# Header names whose values are credentials even when not taken from the environment.
_SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|passw|cookie|session|signature", re.I)
# ``scheme://user:password@host``: the password part of a URL in an exception text.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^/\s@]+@", re.I)


class Redactor:
    """Replaces known secret values (longest first) and URL passwords in a text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """The text with every secret replaced and cut to ``MAX_DETAIL`` characters."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", text)
        text = " ".join(text.split())
        if len(text) > MAX_DETAIL:
            text = text[: MAX_DETAIL - 1] + "…"
        return text


def config_secrets(config: Config) -> set[str]:
    """Secret values a config holds itself: sensitive header values and SMTP passwords."""
    found: set[str] = set()
    for service in config.services:
        for target in service.api:
            found.update(_header_secrets(target))
        for smtp in service.smtp:
            if smtp.password is not None:
                found.add(smtp.password.get_secret_value())
    return found


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
