"""A logging filter that keeps secrets and personal data out of log lines.

Django logs every 4xx answer with its path ("Not Found: /kiosk/<token>"), and a kiosk link's
token is the one secret allowed in a URL (DESIGN §4): such lines must not carry it. Nor may any
line carry an e-mail address, a bearer or basic credential or a `password=`-style secret,
whatever library wrote it. The filter rewrites the formatted message (and traceback) of every
record passing the handler it is attached to.
"""

from __future__ import annotations

import logging
import re

SECRET_PATTERNS = (
    (re.compile(r"/kiosk/[^/\s\"'?]+"), "/kiosk/[redacted]"),
    # key=value secrets and bearer or basic credentials, however a library prints them.
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|client_secret|token|api_key)"
            r"([\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+"
        ),
        r"\1\2[redacted]",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"\bdv[kp]_[A-Za-z0-9_-]+"), "[redacted token]"),
    # Personal data: an e-mail address anywhere in a line (a library's message, an error).
    (
        re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),
        "[redacted e-mail]",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters print exc_text when it is set: the traceback, redacted the same way.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class DropRefusals(logging.Filter):
    """Drops django.request's line for each 429 answer: a blocked address may send thousands a
    second, and each block is already audited once (policy.guard)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != 429
