"""Applying the retention rules to the backup target."""

from __future__ import annotations

import datetime as dt
import time

from django.conf import settings

from dashvault.backups import retention, snapshot, targets


def rules() -> retention.Rules:
    return retention.Rules(
        hours=settings.BACKUP_KEEP_HOURS,
        days=settings.BACKUP_KEEP_DAILY,
        weeks=settings.BACKUP_KEEP_WEEKLY,
        months=settings.BACKUP_KEEP_MONTHLY,
    )


def plan(now: dt.datetime | None = None) -> list[tuple[snapshot.Backup, str | None]]:
    """Every complete backup, oldest first, with the rule that keeps it (None: to delete)."""
    now = now or dt.datetime.now(dt.UTC)
    found = snapshot.backups()
    kept = retention.keep((b.created_at for b in found), now, rules())
    return [(b, kept.get(b.created_at)) for b in found]


def prune(now: dt.datetime | None = None) -> tuple[list[snapshot.Backup], list[str]]:
    """Delete the backups no rule keeps, and leftovers of backups that never completed;
    returns the deleted backups, and why any other could not go yet (S3 Object Lock)."""
    deleted, held = [], []
    for backup, rule in plan(now):
        if rule is None:
            try:
                snapshot.delete(backup)
            except snapshot.BackupError as exc:
                held.append(f"{backup.file}: {exc}")  # locked: a later prune deletes it
            else:
                deleted.append(backup)
    for place, name in snapshot.leftovers():
        try:
            place.delete(name)
        except snapshot.BackupError as exc:
            held.append(f"{name}: {exc}")
    targets.current().incomplete_uploads(older_than=time.time() - snapshot.LEFTOVER_AGE)
    return deleted, held
