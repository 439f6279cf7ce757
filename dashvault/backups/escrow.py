"""The data-key escrow: every org's wrapped data keys, kept beside the backups, not in them.

Backups carry no data keys (snapshot drops them from the copy). The escrow (`datakeys.age`:
the DataKey rows, still wrapped by the master keys, then encrypted to the backup recipient) is
rewritten on the target after every backup and after every org deletion, and a rewritten
escrow leaves no older copy behind (S3 versions included). So once an org is deleted its data
key exists nowhere: its encrypted fields in every older backup can no longer be opened, by
anyone. A restore takes the keys of the orgs it brings back from the current escrow.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pyrage
from django.db import transaction

from dashvault.backups import targets
from dashvault.backups.errors import BackupError
from dashvault.orgs.models import DataKey, Organization

NAME = "datakeys.age"


def write(target: targets.Target, recipient: Any) -> int:
    """Rewrite the escrow from the live database; returns the number of keys in it.

    Refused while an org holds sealed fields but no data key (a database restored by hand,
    without `backup restore`): rewriting then would destroy the keys it still needs."""
    check_writable()
    rows = [
        {
            "org": str(key.org_id),
            "version": key.version,
            "wrapped": base64.b64encode(bytes(key.wrapped)).decode(),
            "master_version": key.master_version,
        }
        for key in DataKey.objects.order_by("org_id", "version")
    ]
    plain = json.dumps({"format": 1, "keys": rows}).encode()
    sink = io.BytesIO()
    pyrage.encrypt_io(io.BytesIO(plain), sink, [recipient])
    target.put_bytes(NAME, sink.getvalue(), lock_until=None)
    return len(rows)


def check_writable() -> None:
    keyless = _sealed_without_key()
    if keyless:
        raise BackupError(
            f"{keyless} org(s) hold encrypted fields but no data key (a database restored "
            f"without `dashvault backup restore`?): {NAME} was left as it is. Run "
            "`dashvault backup restore` to take the keys back from it."
        )


def _sealed_without_key() -> int:
    from dashvault.integrations.models import Integration
    from dashvault.sso.models import IdentityProvider

    sealed = set(Integration.objects.exclude(credential=b"").values_list("org", flat=True))
    sealed |= set(IdentityProvider.objects.exclude(client_secret=b"").values_list("org", flat=True))
    return len(sealed - set(DataKey.objects.values_list("org", flat=True)))


def identities(keys: Any) -> list[Any]:
    """One age identity or several (snapshot.identity_from), as pyrage takes them."""
    return list(keys) if isinstance(keys, list | tuple) else [keys]


def read(target: targets.Target, identity: Any) -> list[dict[str, Any]] | None:
    """The escrowed keys; None when the target has no escrow."""
    sealed = target.get_bytes(NAME)
    if sealed is None:
        return None
    try:
        sink = io.BytesIO()
        pyrage.decrypt_io(io.BytesIO(sealed), sink, identities(identity))
        return list(json.loads(sink.getvalue())["keys"])
    except (pyrage.DecryptError, ValueError, KeyError, TypeError):
        raise BackupError(
            f"{NAME} on {target.describe()} does not decrypt with this key (a different key, "
            "or a damaged file). Nothing was restored."
        ) from None


def reinstate(rows: list[dict[str, Any]]) -> int:
    """Put back the keys of orgs the restored database holds (deleted orgs have none in the
    escrow); returns how many keys were added."""
    present = {str(pk) for pk in Organization.objects.values_list("pk", flat=True)}
    have = {(str(org), version) for org, version in DataKey.objects.values_list("org", "version")}
    added = [
        DataKey(
            org_id=row["org"],
            version=int(row["version"]),
            wrapped=base64.b64decode(row["wrapped"]),
            master_version=int(row["master_version"]),
        )
        for row in rows
        if row["org"] in present and (row["org"], int(row["version"])) not in have
    ]
    with transaction.atomic():
        DataKey.objects.bulk_create(added)
    return len(added)
