"""Strict readers for DASHVAULT_* environment variables, and first-run secret files.

Settings read the environment only through these helpers so every variable is parsed the same
way and a typo fails loudly instead of falling back silently (see docs/CONFIGURATION.md).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

PREFIX = "DASHVAULT_"


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(PREFIX + name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(PREFIX + name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{PREFIX}{name} must be true or false, not {raw!r}")


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(PREFIX + name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{PREFIX}{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{PREFIX}{name} must be at least {minimum}")
    return value


def envlist(name: str, default: str = "") -> list[str]:
    """A comma-separated list; blanks dropped."""
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


def envsecret(name: str) -> str:
    """A secret from DASHVAULT_NAME or from the file named by DASHVAULT_NAME_FILE."""
    value = envstr(name)
    path = envstr(name + "_FILE")
    if value and path:
        raise ImproperlyConfigured(f"set {PREFIX}{name} or {PREFIX}{name}_FILE, not both")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"cannot read {PREFIX}{name}_FILE: {exc}") from None
    return value


def generated_secret(path: Path, *, nbytes: int = 32) -> str:
    """Read a secret file, creating it with a fresh random value and mode 0600 if missing.

    Used only in embedded mode. O_EXCL makes concurrent first starts agree on one value.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(nbytes) + "\n")
    return path.read_text().strip()
