"""Envelope encryption on AES-256-GCM (the `cryptography` package).

Two layers:
- a *keyring* of versioned master keys (held outside the database: a file or an env var);
- per-organization *data keys*, stored in the database wrapped (encrypted) by a master key.

Every ciphertext carries the version of the key that sealed it, and every seal binds
associated data (AAD) naming exactly where the ciphertext belongs. Opening with the wrong key,
or a ciphertext copied to another org, table, column or row, raises DecryptionError: there is
no silent fallback that returns garbage or the ciphertext itself.
"""

from __future__ import annotations

import base64
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96-bit random nonces: safe for far more messages than one key will seal
FORMAT = b"\x01"  # leading byte so the layout can change later
HEADER = struct.Struct(">cI")  # format byte, key version


class DecryptionError(Exception):
    """Raised for any ciphertext that does not open: wrong key, moved, truncated or altered."""


class KeyringError(Exception):
    """The master keyring is missing, malformed or lacks a needed version."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, version: int, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate `plaintext`, bound to `aad`, under `key` (tagged `version`)."""
    nonce = os.urandom(NONCE_BYTES)
    return HEADER.pack(FORMAT, version) + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def key_version(blob: bytes) -> int:
    """The key version a ciphertext was sealed with; raises DecryptionError if malformed."""
    if len(blob) < HEADER.size + NONCE_BYTES + 16:
        raise DecryptionError("ciphertext too short")
    fmt, version = HEADER.unpack_from(blob)
    if fmt != FORMAT:
        raise DecryptionError("unknown ciphertext format")
    return int(version)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a `seal` output; raises DecryptionError unless key, blob and aad all match."""
    key_version(blob)
    nonce = blob[HEADER.size : HEADER.size + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[HEADER.size + NONCE_BYTES :], aad)
    except InvalidTag:
        raise DecryptionError("ciphertext does not open with this key and context") from None


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 256-bit key for one purpose (e.g. "mfa-secrets"), derived from a master key by HKDF.

    For secrets that belong to no organization; a derived key never wraps anything else.
    """
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode()
    ).derive(master)


def field_aad(org_id: object, table: str, column: str, row_id: object) -> bytes:
    """AAD binding a field ciphertext to its org, table, column and row."""
    return f"field|{org_id}|{table}|{column}|{row_id}".encode()


def data_key_aad(org_id: object, version: int) -> bytes:
    """AAD binding a wrapped data key to its org and data-key version."""
    return f"datakey|{org_id}|{version}".encode()


@dataclass(frozen=True)
class Keyring:
    """Versioned master keys; the highest version wraps new data keys."""

    keys: dict[int, bytes]

    @property
    def current_version(self) -> int:
        return max(self.keys)

    def key(self, version: int) -> bytes:
        try:
            return self.keys[version]
        except KeyError:
            raise KeyringError(f"master key version {version} is not in the keyring") from None

    def with_new_key(self) -> Keyring:
        return Keyring({**self.keys, self.current_version + 1: new_key()})

    def dumps(self) -> str:
        """One `version:base64key` line per key: the keyring file format."""
        return "".join(
            f"{v}:{base64.b64encode(k).decode()}\n" for v, k in sorted(self.keys.items())
        )

    @classmethod
    def loads(cls, text: str) -> Keyring:
        keys: dict[int, bytes] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            version_text, sep, key_text = line.partition(":")
            try:
                version = int(version_text)
                key = base64.b64decode(key_text, validate=True)
            except ValueError:
                raise KeyringError(f"keyring line {number} is not VERSION:BASE64KEY") from None
            if not sep or version < 1 or len(key) != KEY_BYTES or version in keys:
                raise KeyringError(f"keyring line {number} is not a new 32-byte key version")
            keys[version] = key
        if not keys:
            raise KeyringError("the keyring holds no key")
        return cls(keys)


def write_keyring(path: Path, keyring: Keyring) -> None:
    """Replace the keyring file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(keyring.dumps())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_or_create_keyring(path: Path) -> Keyring:
    """Embedded mode: the keyring file, created with one fresh key (mode 0600) on first run."""
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(Keyring({1: new_key()}).dumps())
    return Keyring.loads(path.read_text())


def wrap_data_key(keyring: Keyring, data_key: bytes, org_id: object, version: int) -> bytes:
    """Encrypt an org data key under the current master key."""
    return seal(
        keyring.key(keyring.current_version),
        keyring.current_version,
        data_key,
        data_key_aad(org_id, version),
    )


def unwrap_data_key(keyring: Keyring, wrapped: bytes, org_id: object, version: int) -> bytes:
    """Decrypt a wrapped org data key; raises DecryptionError or KeyringError."""
    master_version = key_version(wrapped)
    return open_sealed(keyring.key(master_version), wrapped, data_key_aad(org_id, version))
