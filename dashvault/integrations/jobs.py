"""The integrations' jobs: a sync of one integration, and the periodic pick of due ones.

Both are idempotent: a sync claims its integration with a conditional UPDATE (a second one
running at the same time does nothing), and the periodic job moves each due integration's
next run forward as it queues it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone
from huey import crontab

from dashvault.integrations import sync
from dashvault.integrations.connectors.session import SyncError
from dashvault.integrations.models import Integration, SyncRun
from dashvault.jobs.queue import huey

logger = logging.getLogger(__name__)


@huey.task()
def sync_integration(integration_id: str, full: bool = False) -> None:
    sync.run(integration_id, full=full)


@huey.task()
def test_with_stored_credential(
    integration_id: str, kind: str, config: dict[str, Any], ca_pem: str
) -> dict[str, Any]:
    """A connection test of an existing integration whose form left the secret empty: the
    stored credential is opened here, in a job, as for a sync (never in a web request).
    Returns the preview's fields, or {"error": sentence}."""
    try:
        integration = Integration.objects.select_related("org").get(pk=integration_id)
        preview = sync.preview(
            kind=kind,
            config=config,
            secret=sync.stored_secret(integration),
            ca_pem=ca_pem,
            allow_http=integration.allow_http,
            time_zone=integration.org.time_zone,
        )
    except SyncError as exc:
        return {"error": str(exc)}
    except Exception:
        logger.exception("integrations: connection test of %s failed", integration_id)
        return {"error": sync.UNEXPECTED_TEST}
    return {"records": preview.records, "rows": preview.rows, "skipped": preview.skipped}


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


RUNS_KEPT = dt.timedelta(days=90)


@huey.periodic_task(crontab(minute="17", hour="3"))
def prune_sync_runs() -> int:
    """Delete run records older than RUNS_KEPT (daily); returns how many. The latest run of
    each integration stays whatever its age, so its page always shows how it last went."""
    latest = SyncRun.objects.filter(integration=OuterRef("integration")).order_by("-started_at")
    old = SyncRun.objects.filter(started_at__lt=timezone.now() - RUNS_KEPT).exclude(
        pk=Subquery(latest.values("pk")[:1])
    )
    return int(old.delete()[0])
