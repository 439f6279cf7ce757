"""Applying the retention rules to the backup folder."""

from __future__ import annotations

import datetime as dt
import shutil

from django.conf import settings

from dashvault.backups import retention, snapshot


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


def prune(now: dt.datetime | None = None) -> list[snapshot.Backup]:
    """Delete the backups no rule keeps, and leftovers of backups that never completed;
    returns the deleted backups."""
    deleted = [backup for backup, rule in plan(now) if rule is None]
    for backup in deleted:
        snapshot.delete(backup)
    for path in snapshot.leftovers():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return deleted
