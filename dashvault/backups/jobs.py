"""The periodic backup: every settings.BACKUP_EVERY_HOURS hours, then the retention prune."""

from __future__ import annotations

import logging

from django.conf import settings
from huey import crontab

from dashvault.backups import escrow, pruning, snapshot, status, targets
from dashvault.jobs.queue import huey
from dashvault.privacy import ledger

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
    try:
        _, held = pruning.prune()
    except snapshot.BackupError as exc:
        logger.error("backups: pruning failed: %s", exc)
        return
    for reason in held:
        logger.info("backups: not pruned yet: %s", reason)


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


@huey.task(retries=3, retry_delay=60)
def mirror_erasures(keys_changed: bool) -> None:
    """After an erasure: the ledger's copy on the backup target, and (after an org deletion)
    the data-key escrow without the deleted org's keys. Every backup does both again."""
    target = targets.current()
    try:
        ledger.mirror(target)
        if keys_changed and settings.BACKUP_RECIPIENT:
            escrow.write(target, snapshot.recipient())
    except (snapshot.BackupError, ledger.LedgerError) as exc:
        logger.error("backups: the erasure could not be copied to the backup target: %s", exc)
        raise  # retried; the next backup copies it in any case
