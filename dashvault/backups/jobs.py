"""The periodic backup: every settings.BACKUP_EVERY_HOURS hours, then the retention prune."""

from __future__ import annotations

import logging

from django.conf import settings
from huey import crontab

from dashvault.backups import pruning, snapshot, status
from dashvault.jobs.queue import huey

logger = logging.getLogger(__name__)


def _every() -> str:
    hours = max(1, min(24, int(settings.BACKUP_EVERY_HOURS)))
    return f"*/{hours}" if hours < 24 else "0"


@huey.periodic_task(crontab(minute="7", hour=_every()))
def scheduled_backup() -> None:
    """Skipped (with a log line) when no backup key is configured."""
    if not settings.BACKUP_RECIPIENT:
        logger.warning("backups: no DASHVAULT_BACKUP_RECIPIENT, so no scheduled backup")
        return
    try:
        backup = snapshot.create()
    except snapshot.BackupError as exc:
        logger.error("backups: the scheduled backup failed: %s", exc)
        return
    logger.info("backups: %s written (%d bytes)", backup.file, backup.size)
    pruning.prune()


@huey.periodic_task(crontab(minute="37"))
def check_backup_age() -> bool:
    """Hourly: an error line in the log while no good backup is younger than twice the
    interval (the staff page shows the same); returns whether backups are stale."""
    current = status.status()
    if current.stale:
        since = (
            "none was ever made"
            if current.last is None
            else f"the last good one is {current.hours_since:.0f} hours old"
        )
        logger.error(
            "backups: ALERT no good backup within %d hours: %s",
            2 * settings.BACKUP_EVERY_HOURS,
            since,
        )
    return current.stale
