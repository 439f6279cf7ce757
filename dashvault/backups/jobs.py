"""The periodic backup: every settings.BACKUP_EVERY_HOURS hours, then the retention prune."""

from __future__ import annotations

import logging

from django.conf import settings
from huey import crontab

from dashvault.backups import pruning, snapshot
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
