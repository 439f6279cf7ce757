"""The integrations' jobs: a sync of one integration, and the periodic pick of due ones.

Both are idempotent: a sync claims its integration with a conditional UPDATE (a second one
running at the same time does nothing), and the periodic job moves each due integration's
next run forward as it queues it.
"""

from __future__ import annotations

import datetime as dt

from django.db import close_old_connections
from django.db.models import Q
from django.utils import timezone
from huey import crontab

from dashvault.integrations import sync
from dashvault.integrations.models import Integration
from dashvault.jobs.queue import huey


@huey.task()
def sync_integration(integration_id: str, full: bool = False) -> None:
    # Worker threads hold their own connections: fresh ones per job (unless run in the
    # caller, as in tests), closed after it.
    if not huey.immediate:
        close_old_connections()
    try:
        sync.run(integration_id, full=full)
    finally:
        if not huey.immediate:
            close_old_connections()


@huey.periodic_task(crontab(minute="*"))
def queue_due_syncs() -> int:
    """Queue every enabled integration whose next run is due (and not running, or whose run
    crashed: its claim expired); returns how many."""
    now = timezone.now()
    unclaimed = Q(running_since__isnull=True) | Q(running_since__lt=now - sync.CLAIM_EXPIRES)
    due = list(
        Integration.objects.filter(unclaimed, enabled=True, next_run_at__lte=now)
        .values_list("pk", "every_minutes")
        .order_by("next_run_at")[:1000]
    )
    queued = 0
    for pk, every in due:
        moved = Integration.objects.filter(pk=pk, next_run_at__lte=now).update(
            next_run_at=now + dt.timedelta(minutes=every)
        )
        if moved:
            sync_integration(str(pk))
            queued += 1
    return queued
