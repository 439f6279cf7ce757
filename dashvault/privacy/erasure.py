"""Erasing a person and deleting an organization (GDPR), and re-applying both after restores.

A person's erasure deletes their account row and with it, by cascade, everything that names
them: e-mail addresses, SSO links (with the identity provider's claims and tokens), MFA
devices, sessions (ended in the store first) and group memberships. Dashboards they made stay
with the org; API tokens and kiosk links they created keep working and forget their creator;
audit entries keep the id, which now points at nothing. An org's deletion removes the org and
everything it owns, its data keys included (see backups.escrow for why old backups can no
longer open its encrypted fields).

Order, for every erasure: the ledger entry first (fsynced), then the database change with its
audit entry in one transaction. A crash in between leaves an entry that the next restore or
`serve` start carries out: never an erasure the ledger forgot.

On SQLite, deleted rows are zeroed (PRAGMA secure_delete in settings) and the WAL is
checkpointed and truncated afterwards, so the erased bytes are gone from the files too.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from pathlib import Path

from allauth.usersessions.models import UserSession
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from dashvault import audit
from dashvault.accounts.models import User
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.jobs.queue import enqueue
from dashvault.live.publish import recheck
from dashvault.orgs.models import Organization
from dashvault.privacy import ledger

logger = logging.getLogger(__name__)


def erase_person(person: User, *, acting: User, ip: str | None) -> None:
    """An org admin erases a member of their org (the caller checked the access)."""
    if person.pk == acting.pk:
        raise ValidationError(
            "You cannot erase yourself: another admin can, or delete the organization."
        )
    if person.is_platform_staff or person.org_id is None:
        raise ValidationError("Platform staff accounts are not erased here.")
    ledger.append("person", person.pk, person.org_id)
    with transaction.atomic():
        audit.record("person.erase", org=person.org_id, actor=acting, target=person, ip=ip)
        _erase_people([person.pk])
    _after_erasure()


def delete_org(org: Organization, *, acting: User | None, ip: str | None) -> None:
    """Delete an org with everything it owns (its admin, or an operator's command)."""
    ledger.append("org", org.pk, org.pk)
    with transaction.atomic():
        # The org's own chain keeps this entry: audit rows outlive their org.
        audit.record("org.delete", org=org.pk, actor=acting, target=org, ip=ip)
        _delete_orgs([org.pk])
    _after_erasure(keys_changed=True)


def reapply(entries: Iterable[ledger.Erasure]) -> tuple[int, int]:
    """Carry out again every ledger entry the database still contradicts (after a restore,
    or a crash between ledger and commit); returns (people erased, orgs deleted)."""
    entries = list(entries)
    people = {uuid.UUID(e.id) for e in entries if e.kind == "person"}
    orgs = {uuid.UUID(e.id) for e in entries if e.kind == "org"}
    with transaction.atomic():
        org_ids = list(Organization.objects.filter(pk__in=orgs).values_list("pk", flat=True))
        person_ids = list(User.objects.filter(pk__in=people).values_list("pk", flat=True))
        if not (org_ids or person_ids):
            return 0, 0
        _delete_orgs(org_ids)
        _erase_people(person_ids)
        audit.record("erasure.reapply", people=len(person_ids), orgs=len(org_ids))
    _after_erasure(keys_changed=bool(org_ids))
    logger.warning(
        "privacy: re-applied the erasure ledger: %d person(s) erased, %d org(s) deleted",
        len(person_ids),
        len(org_ids),
    )
    return len(person_ids), len(org_ids)


def _erase_people(ids: list[uuid.UUID]) -> None:
    if not ids:
        return
    addresses = list(User.objects.filter(pk__in=ids).values_list("email", flat=True))
    transaction.on_commit(lambda: _scrub_outbox(addresses), robust=True)
    for session in UserSession.objects.filter(user_id__in=ids):
        session.end()  # out of the session store (and cache), not only the tracking row
    # The rest goes by the foreign keys: CASCADE for what names them, SET_NULL for what the
    # org keeps (tokens, kiosk links, approvals, the break-glass choice).
    User.objects.filter(pk__in=ids).delete()


def _delete_orgs(ids: list[uuid.UUID]) -> None:
    if not ids:
        return
    dashboards = list(Dashboard.objects.filter(org_id__in=ids).values_list("pk", flat=True))
    _erase_people(list(User.objects.filter(org_id__in=ids).values_list("pk", flat=True)))
    Widget.objects.filter(org_id__in=ids).delete()  # Widget.metric is PROTECT
    Organization.objects.filter(pk__in=ids).delete()
    recheck(dashboard_ids=dashboards)  # open TVs find nothing and close


def _scrub_outbox(addresses: list[str]) -> None:
    """Embedded mode writes mail (invitations, set-password links) to files: those naming an
    erased person go with them."""
    folder = getattr(settings, "EMAIL_FILE_PATH", None)
    if not folder or not addresses:
        return
    for path in Path(folder).glob("*"):
        try:
            text = path.read_text(errors="replace").lower()
        except OSError:
            continue
        if any(address.lower() in text for address in addresses):
            path.unlink(missing_ok=True)


def _after_erasure(*, keys_changed: bool = False) -> None:
    from dashvault.backups.jobs import mirror_erasures

    transaction.on_commit(_truncate_wal, robust=True)
    # The ledger's copy on the backup target is brought up to date here, by the process that
    # wrote the entry (in scale-out a worker would only mirror its own host's ledger); the
    # job retries when the target does not answer now, and rewrites the escrow.
    transaction.on_commit(_mirror_now, robust=True)
    enqueue(mirror_erasures, keys_changed)


def _mirror_now() -> None:
    from dashvault.backups import targets

    try:
        ledger.mirror(targets.current())
    except Exception as exc:  # the target's own errors; the queued job tries again
        logger.warning("privacy: the ledger's copy on the backup target waits: %s", exc)


def _truncate_wal() -> None:
    """Old copies of the erased rows' pages sit in SQLite's WAL until a checkpoint: write them
    into the (zeroed) database now and empty the WAL. Readers still busy may defer it; a later
    checkpoint then does it."""
    if connection.vendor != "sqlite":
        return
    try:
        with connection.cursor() as cursor:
            busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except DatabaseError as exc:
        logger.warning("privacy: WAL checkpoint after an erasure deferred: %s", exc)
        return
    if busy:  # readers still held old pages: the next checkpoint (on restart) truncates
        logger.warning("privacy: WAL checkpoint after an erasure was busy; it truncates later")
