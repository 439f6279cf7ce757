"""Signed checkpoints of the audit chains, kept outside the database.

A checkpoint records every chain's newest (seq, MAC), the time, its number and the SHA-256 of
the previous checkpoint file, signed with Ed25519 (`cryptography`) by a key held outside the
database (settings.AUDIT_SIGNING_KEY_FILE). Files live in settings.AUDIT_CHECKPOINT_DIR,
written atomically under a lock, one per checkpoint: `checkpoint-00000001.json`, ...

Security contract: someone who holds the database and even the audit MAC key can rewrite a
chain so that it verifies on its own, but not the checkpoints: `verify` then finds the chain
disagreeing with a signed (seq, MAC), or ending before one (truncated). A checkpoint file that
was changed, removed from the middle, or not signed by the key fails `load`.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)
NAME = "checkpoint-{:08d}.json"


class CheckpointError(Exception):
    pass


@dataclass(frozen=True)
class Checkpoint:
    number: int
    at: str
    chains: dict[str, dict[str, Any]]  # chain → {"seq": int, "mac": str}
    prev: str
    digest: str  # SHA-256 of this file's bytes


def directory() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_DIR)


def signing_key() -> Ed25519PrivateKey:
    """The Ed25519 key (PEM, PKCS#8); embedded mode makes it on first use, mode 0600."""
    path = Path(settings.AUDIT_SIGNING_KEY_FILE)
    if not path.exists():
        if not settings.EMBEDDED:
            raise CheckpointError(f"the audit signing key {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} is not an Ed25519 private key")
    return key


def public_key() -> Ed25519PublicKey:
    return signing_key().public_key()


def _body(number: int, at: str, chains: dict[str, Any], prev: str) -> bytes:
    return json.dumps(
        {"number": number, "at": at, "chains": chains, "prev": prev},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def load() -> list[Checkpoint]:
    """Every checkpoint, oldest first, each checked: signature, numbering and linkage."""
    folder = directory()
    if not folder.exists():
        return []
    key = public_key()
    result: list[Checkpoint] = []
    previous_digest = ""
    for number, path in enumerate(sorted(folder.glob("checkpoint-*.json")), start=1):
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
            body = _body(data["number"], data["at"], data["chains"], data["prev"])
            key.verify(base64.b64decode(data["sig"]), body)
        except (ValueError, KeyError, TypeError, InvalidSignature) as exc:
            raise CheckpointError(f"{path.name}: not a valid signed checkpoint") from exc
        if data["number"] != number or path.name != NAME.format(number):
            raise CheckpointError(f"{path.name}: checkpoint {number} is missing")
        if data["prev"] != previous_digest:
            raise CheckpointError(f"{path.name}: does not follow the checkpoint before it")
        previous_digest = hashlib.sha256(raw).hexdigest()
        result.append(
            Checkpoint(data["number"], data["at"], data["chains"], data["prev"], previous_digest)
        )
    return result


def write_checkpoint() -> Checkpoint | None:
    """Sign every chain's newest (seq, MAC) into a new checkpoint file; None when nothing
    changed since the last one."""
    from dashvault.audit.models import AuditEntry

    folder = directory()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time, across processes
        existing = load()
        chains: dict[str, dict[str, Any]] = {}
        for chain in AuditEntry.objects.values_list("chain", flat=True).distinct():
            newest = AuditEntry.objects.filter(chain=chain).order_by("-seq").first()
            if newest is not None:
                chains[chain] = {"seq": newest.seq, "mac": newest.mac}
        if existing and existing[-1].chains == chains:
            return None
        number = len(existing) + 1
        at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        prev = existing[-1].digest if existing else ""
        body = _body(number, at, chains, prev)
        sig = base64.b64encode(signing_key().sign(body)).decode()
        raw = json.dumps(
            {"number": number, "at": at, "chains": chains, "prev": prev, "sig": sig},
            sort_keys=True,
            indent=1,
        ).encode()
        path = folder / NAME.format(number)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(raw)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
        return Checkpoint(number, at, chains, prev, hashlib.sha256(raw).hexdigest())


def write_checkpoint_safely() -> None:
    """For on_commit and the periodic writer: a failure is logged, never raised."""
    try:
        write_checkpoint()
    except Exception:
        logger.exception("audit: writing a checkpoint failed")


def signed_heads(checkpoints: list[Checkpoint]) -> dict[str, dict[int, str]]:
    """chain → {seq: MAC} as every checkpoint saw them."""
    heads: dict[str, dict[int, str]] = {}
    for checkpoint in checkpoints:
        for chain, head in checkpoint.chains.items():
            heads.setdefault(chain, {})[int(head["seq"])] = str(head["mac"])
    return heads


HOURLY = 3600.0


def start_hourly() -> threading.Thread:
    """A daemon thread of the server process that writes a checkpoint every hour (when the
    chains moved). Several processes may run one: the lock and the "nothing new" check keep
    that to one checkpoint per change."""

    def run() -> None:
        while True:
            time.sleep(HOURLY)
            write_checkpoint_safely()
            connections.close_all()  # this thread's connections, until the next hour

    thread = threading.Thread(target=run, name="audit-checkpoints", daemon=True)
    thread.start()
    return thread
