"""Per-organization field encryption on top of lib.crypto, and master-key rotation.

Later issues store SSO client secrets and integration credentials with `encrypt_field` /
`decrypt_field`. Plaintext exists only in memory, only inside the call that needs it.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path

from django.conf import settings
from django.db import transaction

from dashvault.lib import crypto
from dashvault.orgs.models import DataKey, Organization

_keyring_lock = threading.Lock()
_keyring_cache: dict[str, crypto.Keyring] = {}


def keyring() -> crypto.Keyring:
    """The master keyring from DASHVAULT_MASTER_KEYS or its file (created in embedded mode)."""
    source = settings.MASTER_KEYS or settings.MASTER_KEYS_FILE
    with _keyring_lock:
        if source not in _keyring_cache:
            if settings.MASTER_KEYS:
                _keyring_cache[source] = crypto.Keyring.loads(settings.MASTER_KEYS)
            elif settings.EMBEDDED:
                path = Path(settings.MASTER_KEYS_FILE)
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                _keyring_cache[source] = crypto.load_or_create_keyring(path)
            else:
                _keyring_cache[source] = crypto.Keyring.loads(
                    Path(settings.MASTER_KEYS_FILE).read_text()
                )
        return _keyring_cache[source]


def _ring_with(version: int) -> crypto.Keyring:
    """The keyring, reloaded once if it lacks `version` (a `keys rotate` run by another
    process since this one loaded it)."""
    ring = keyring()
    if version not in ring.keys:
        forget_keyring()
        ring = keyring()
    return ring


def forget_keyring() -> None:
    """Drop the cached keyring (after rotation, or when tests change settings)."""
    with _keyring_lock:
        _keyring_cache.clear()


def _current_data_key(org: Organization) -> tuple[int, bytes]:
    key = DataKey.objects.filter(org=org).order_by("-version").first()
    if key is None:
        with transaction.atomic():
            # Row lock on the org so two first writers do not both create version 1.
            Organization.objects.select_for_update().get(pk=org.pk)
            key = DataKey.objects.filter(org=org).order_by("-version").first()
            if key is None:
                ring = keyring()
                material = crypto.new_key()
                key = DataKey.objects.create(
                    org=org,
                    version=1,
                    wrapped=crypto.wrap_data_key(ring, material, org.pk, 1),
                    master_version=ring.current_version,
                )
                return 1, material
    wrapped = bytes(key.wrapped)
    ring = _ring_with(crypto.key_version(wrapped))
    return key.version, crypto.unwrap_data_key(ring, wrapped, org.pk, key.version)


def encrypt_field(
    org: Organization, *, table: str, column: str, row_id: object, plaintext: str
) -> bytes:
    """Seal `plaintext` with the org's data key, bound to org, table, column and row."""
    version, key = _current_data_key(org)
    aad = crypto.field_aad(org.pk, table, column, row_id)
    return crypto.seal(key, version, plaintext.encode(), aad)


def decrypt_field(
    org: Organization, *, table: str, column: str, row_id: object, blob: bytes
) -> str:
    """Open a field sealed by `encrypt_field`. Raises crypto.DecryptionError if the blob was
    altered, moved to another org/table/column/row, or the key does not match."""
    version = crypto.key_version(bytes(blob))
    try:
        stored = DataKey.objects.get(org=org, version=version)
    except DataKey.DoesNotExist:
        raise crypto.DecryptionError("no data key of that version for this organization") from None
    wrapped = bytes(stored.wrapped)
    ring = _ring_with(crypto.key_version(wrapped))
    key = crypto.unwrap_data_key(ring, wrapped, org.pk, version)
    aad = crypto.field_aad(org.pk, table, column, row_id)
    return crypto.open_sealed(key, bytes(blob), aad).decode()


PLATFORM_PREFIX = "dv1:"


def encrypt_platform(purpose: str, plaintext: str) -> str:
    """Seal a secret that belongs to no organization (MFA seeds of staff and members alike)
    under a key derived from the current master key; returns printable text."""
    ring = keyring()
    key = crypto.derive_key(ring.key(ring.current_version), purpose)
    blob = crypto.seal(key, ring.current_version, plaintext.encode(), purpose.encode())
    return PLATFORM_PREFIX + base64.b64encode(blob).decode()


def decrypt_platform(purpose: str, text: str) -> str:
    """Open `encrypt_platform` output; raises crypto.DecryptionError for anything else."""
    if not text.startswith(PLATFORM_PREFIX):
        raise crypto.DecryptionError("not an encrypted value")
    try:
        blob = base64.b64decode(text[len(PLATFORM_PREFIX) :], validate=True)
    except ValueError:
        raise crypto.DecryptionError("not an encrypted value") from None
    version = crypto.key_version(blob)
    key = crypto.derive_key(_ring_with(version).key(version), purpose)
    return crypto.open_sealed(key, blob, purpose.encode()).decode()


def rotate_master_key() -> tuple[int, int]:
    """Add a new master key version and re-wrap every data key under it.

    Returns (new master version, data keys re-wrapped). The keyring file is written before the
    database changes, and old versions stay in it, so a crash at any point leaves every data
    key readable (old backups keep needing old versions too). Inline keys cannot be rotated
    here: the operator adds a key to DASHVAULT_MASTER_KEYS and runs this with a key file.
    """
    if settings.MASTER_KEYS:
        raise crypto.KeyringError(
            "master keys come from DASHVAULT_MASTER_KEYS; use DASHVAULT_MASTER_KEYS_FILE to rotate"
        )
    old = keyring()
    new = old.with_new_key()
    crypto.write_keyring(Path(settings.MASTER_KEYS_FILE), new)
    forget_keyring()
    count = 0
    with transaction.atomic():
        for stored in DataKey.objects.select_for_update().order_by("pk"):
            material = crypto.unwrap_data_key(
                new, bytes(stored.wrapped), stored.org_id, stored.version
            )
            stored.wrapped = crypto.wrap_data_key(new, material, stored.org_id, stored.version)
            stored.master_version = new.current_version
            stored.save(update_fields=["wrapped", "master_version"])
            count += 1
    return new.current_version, count
