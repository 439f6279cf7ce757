"""Random bearer tokens: made with `secrets`, stored only as a SHA-256 hash.

A token carries 256 bits from the OS CSPRNG, so a plain SHA-256 (no salt, no slow hash) is
enough: nothing about it can be guessed offline, and lookups by hash stay one index probe.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32  # 256 bits


def new_token(prefix: str) -> str:
    """`prefix` + 43 URL-safe characters (256 random bits)."""
    return prefix + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token: what the database stores and looks up."""
    return hashlib.sha256(token.encode()).hexdigest()


def compare_token(*, actual: str, expected_hash: str) -> bool:
    """Constant-time check of a presented token against a stored hash."""
    return secrets.compare_digest(hash_token(actual), expected_hash)
