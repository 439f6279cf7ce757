"""How the backups stand, for platform staff and the log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings

from dashvault.backups import snapshot


@dataclass(frozen=True)
class Status:
    configured: bool  # a recipient key is set
    last: snapshot.Backup | None  # the newest complete backup
    count: int
    stale: bool  # no good backup within twice the interval (while configured)

    @property
    def hours_since(self) -> float | None:
        if self.last is None:
            return None
        return (dt.datetime.now(dt.UTC) - self.last.created_at).total_seconds() / 3600


def status(now: dt.datetime | None = None) -> Status:
    now = now or dt.datetime.now(dt.UTC)
    try:
        found = snapshot.backups()
    except snapshot.BackupError:
        found = []  # the target does not answer: no good backup is known, so stale
    last = found[-1] if found else None
    limit = dt.timedelta(hours=2 * settings.BACKUP_EVERY_HOURS)
    configured = bool(settings.BACKUP_RECIPIENT)
    stale = configured and (last is None or now - last.created_at > limit)
    return Status(configured, last, len(found), stale)
