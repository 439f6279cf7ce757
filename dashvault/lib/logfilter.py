"""A logging filter that keeps bearer secrets out of log lines.

Django logs every 4xx answer with its path ("Not Found: /kiosk/<token>"), and a kiosk link's
token is the one secret allowed in a URL (DESIGN §4): such lines must not carry it. The filter
rewrites the formatted message of every record passing the handler it is attached to.
"""

from __future__ import annotations

import logging
import re

SECRET_PATTERNS = (
    (re.compile(r"/kiosk/[^/\s\"'?]+"), "/kiosk/[redacted]"),
    (re.compile(r"\bdv[kp]_[A-Za-z0-9_-]+"), "[redacted token]"),
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
