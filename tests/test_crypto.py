"""Envelope encryption: round trips, and a loud failure for every wrong key or moved blob."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from django.core.management import call_command

from dashvault.lib import crypto
from dashvault.orgs import keys
from dashvault.orgs.models import DataKey


@pytest.fixture
def keyring_file(tmp_path: Path, settings):
    path = tmp_path / "keys" / "master.keys"
    settings.MASTER_KEYS = ""
    settings.MASTER_KEYS_FILE = str(path)
    keys.forget_keyring()
    yield path
    keys.forget_keyring()


def seal_secret(org, row_id="r1", text="s3cret-client-secret"):
    return keys.encrypt_field(
        org, table="sso", column="client_secret", row_id=row_id, plaintext=text
    )


def test_a_field_round_trips_and_is_not_stored_in_clear(keyring_file, org_a):
    blob = seal_secret(org_a)
    assert b"s3cret" not in blob
    assert (
        keys.decrypt_field(org_a, table="sso", column="client_secret", row_id="r1", blob=blob)
        == "s3cret-client-secret"
    )


def test_the_keyring_file_is_created_owner_only(keyring_file, org_a):
    seal_secret(org_a)
    assert stat.S_IMODE(keyring_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(keyring_file.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    "where",
    [
        {"table": "other"},
        {"column": "client_id"},
        {"row_id": "r2"},
    ],
)
def test_a_ciphertext_moved_to_another_place_does_not_open(keyring_file, org_a, where):
    blob = seal_secret(org_a)
    place = {"table": "sso", "column": "client_secret", "row_id": "r1", **where}
    with pytest.raises(crypto.DecryptionError):
        keys.decrypt_field(org_a, blob=blob, **place)


def test_a_ciphertext_moved_to_another_org_does_not_open(keyring_file, org_a, org_b):
    blob = seal_secret(org_a)
    seal_secret(org_b)  # org B has its own data key
    with pytest.raises(crypto.DecryptionError):
        keys.decrypt_field(org_b, table="sso", column="client_secret", row_id="r1", blob=blob)


def test_every_flipped_byte_is_caught(keyring_file, org_a):
    blob = seal_secret(org_a)
    for index in range(len(blob)):
        altered = bytearray(blob)
        altered[index] ^= 0x01
        with pytest.raises(crypto.DecryptionError):
            keys.decrypt_field(
                org_a, table="sso", column="client_secret", row_id="r1", blob=bytes(altered)
            )


def test_a_truncated_ciphertext_is_refused(keyring_file, org_a):
    blob = seal_secret(org_a)
    with pytest.raises(crypto.DecryptionError):
        keys.decrypt_field(org_a, table="sso", column="client_secret", row_id="r1", blob=blob[:-1])


def test_a_different_master_key_cannot_unwrap_data_keys(keyring_file, org_a, settings):
    blob = seal_secret(org_a)
    settings.MASTER_KEYS = crypto.Keyring({1: crypto.new_key()}).dumps()
    keys.forget_keyring()
    with pytest.raises(crypto.DecryptionError):
        keys.decrypt_field(org_a, table="sso", column="client_secret", row_id="r1", blob=blob)


def test_data_keys_are_stored_only_wrapped(keyring_file, org_a):
    seal_secret(org_a)
    stored = DataKey.objects.get(org=org_a)
    ring = keys.keyring()
    material = crypto.unwrap_data_key(ring, bytes(stored.wrapped), org_a.pk, stored.version)
    assert material not in bytes(stored.wrapped)
    assert len(material) == 32


def test_keys_rotate_rewraps_every_data_key_and_old_fields_still_open(
    keyring_file, org_a, org_b, capsys
):
    blob_a, blob_b = seal_secret(org_a), seal_secret(org_b)
    before = {k.org_id: bytes(k.wrapped) for k in DataKey.objects.all()}

    call_command("keys", "rotate")

    assert (
        "Master key version 2 is now current; re-wrapped 2 data key(s)" in capsys.readouterr().out
    )
    ring = crypto.Keyring.loads(keyring_file.read_text())
    assert sorted(ring.keys) == [1, 2]
    for stored in DataKey.objects.all():
        assert stored.master_version == 2
        assert bytes(stored.wrapped) != before[stored.org_id]
        assert crypto.key_version(bytes(stored.wrapped)) == 2
    assert keys.decrypt_field(org_a, table="sso", column="client_secret", row_id="r1", blob=blob_a)
    assert keys.decrypt_field(org_b, table="sso", column="client_secret", row_id="r1", blob=blob_b)
    # After rotation, data keys no longer need master key 1.
    only_new = crypto.Keyring({2: ring.keys[2]})
    for stored in DataKey.objects.all():
        crypto.unwrap_data_key(only_new, bytes(stored.wrapped), stored.org_id, stored.version)


def test_rotation_refuses_inline_keys(settings, db):
    from django.core.management.base import CommandError

    settings.MASTER_KEYS = crypto.Keyring({1: crypto.new_key()}).dumps()
    keys.forget_keyring()
    with pytest.raises(CommandError, match="DASHVAULT_MASTER_KEYS_FILE"):
        call_command("keys", "rotate")
    keys.forget_keyring()


@pytest.mark.parametrize(
    "text",
    ["", "1:notbase64!", "0:" + "A" * 44, "1:" + "QUJD", "x:" + "A" * 44],
)
def test_a_malformed_keyring_is_refused(text):
    with pytest.raises(crypto.KeyringError):
        crypto.Keyring.loads(text)


def test_a_keyring_with_a_repeated_version_is_refused():
    line = crypto.Keyring({1: crypto.new_key()}).dumps()
    with pytest.raises(crypto.KeyringError):
        crypto.Keyring.loads(line + line)


def test_totp_seeds_are_stored_encrypted(keyring_file, viewer_a):
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = generate_totp_secret()
    TOTP.activate(viewer_a, secret)
    stored = Authenticator.objects.get(user=viewer_a).data
    assert secret not in str(stored)
    assert keys.decrypt_platform("mfa-secrets", stored["secret"]) == secret
    with pytest.raises(crypto.DecryptionError):
        keys.decrypt_platform("mfa-secrets", secret)  # a plaintext value is refused, not passed on


def test_a_rotation_by_another_process_is_picked_up(keyring_file, org_a):
    blob = seal_secret(org_a)
    keys.keyring()  # this process has the old keyring cached
    rotated = crypto.Keyring.loads(keyring_file.read_text()).with_new_key()
    crypto.write_keyring(keyring_file, rotated)  # as `keys rotate` elsewhere would, then...
    stored = DataKey.objects.get(org=org_a)
    material = crypto.unwrap_data_key(rotated, bytes(stored.wrapped), org_a.pk, stored.version)
    stored.wrapped = crypto.wrap_data_key(rotated, material, org_a.pk, stored.version)
    stored.save()
    assert keys.decrypt_field(org_a, table="sso", column="client_secret", row_id="r1", blob=blob)
