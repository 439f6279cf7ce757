"""Running an integration's sync, and trying its settings before they are saved.

Security contract: the credential is opened (orgs.keys.decrypt_field) only here, inside the
run, and lives in memory for its length; errors are sentences without it. A sync stores all
of its records in one transaction (metrics.ingest.do_ingest) or none: a failure part way
leaves the metric as it was and the cursor where it was, and the next run tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dashvault.integrations import mapping
from dashvault.integrations.connectors import for_kind
from dashvault.integrations.connectors.session import Session, SyncError
from dashvault.integrations.models import Integration, SyncRun
from dashvault.lib import http
from dashvault.metrics.ingest import UnknownMetrics, do_ingest
from dashvault.orgs.keys import decrypt_field, encrypt_field

logger = logging.getLogger(__name__)
CLAIM_EXPIRES = dt.timedelta(hours=1)  # a claim older than this was a crashed run
MAX_RECORDS = 1_000_000  # one sync holds its records in memory, and stores them at once
STATE_LENGTH = 200  # Integration.state
PREVIEW_ROWS = 10
UNEXPECTED = "An unexpected error stopped the sync; the operators have the details."
UNEXPECTED_TEST = "An unexpected error stopped the test; the operators have the details."


def seal_credential(integration: Integration, secret: str) -> bytes:
    return encrypt_field(
        integration.org,
        table="integrations_integration",
        column="credential",
        row_id=integration.pk,
        plaintext=secret,
    )


def stored_secret(integration: Integration) -> str:
    """The integration's credential, opened: only for a sync or a connection test."""
    if not integration.credential:
        return ""
    return decrypt_field(
        integration.org,
        table="integrations_integration",
        column="credential",
        row_id=integration.pk,
        blob=bytes(integration.credential),
    )


def policy_for(*, allow_http: bool, ca_pem: str) -> http.Policy:
    return http.Policy(
        allow_http=allow_http,
        allowed_networks=tuple(settings.OUTBOUND_ALLOWED_NETWORKS),
        ca_pem=ca_pem,
    )


def session_for(
    kind: str,
    config: dict[str, Any],
    secret: str,
    policy: http.Policy,
    sleep: Callable[[float], None] | None = None,
) -> Session:
    connector = for_kind(kind)
    shaped = getattr(connector, "session_config", lambda c: c)(config)
    return Session(config=shaped, secret=secret, policy=policy, sleep=sleep)


def run(
    integration_id: uuid.UUID | str,
    *,
    full: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> SyncRun | None:
    """Sync one integration now; None when another run holds it (or it is gone)."""
    now = timezone.now()
    claimed = (
        Integration.objects.filter(pk=integration_id)
        .filter(Q(running_since__isnull=True) | Q(running_since__lt=now - CLAIM_EXPIRES))
        .update(running_since=now)
    )
    if not claimed:
        return None
    integration = Integration.objects.select_related("org", "metric").get(pk=integration_id)
    record = SyncRun.objects.create(
        org=integration.org, integration=integration, started_at=now, full=full
    )
    try:
        stored = _sync(integration, full, sleep, claimed_at=now)
    except SyncError as exc:
        _finish(integration, record, error=str(exc))
    except UnknownMetrics:
        _finish(integration, record, error="The integration's metric no longer exists.")
    except Exception:
        logger.exception("integrations: sync of %s failed", integration.pk)
        _finish(integration, record, error=UNEXPECTED)
    else:
        _finish(integration, record, stored=stored)
    return record


def _sync(
    integration: Integration,
    full: bool,
    sleep: Callable[[float], None] | None,
    *,
    claimed_at: dt.datetime,
) -> int:
    policy = policy_for(allow_http=integration.allow_http, ca_pem=integration.ca_pem)
    session = session_for(
        integration.kind, integration.config, stored_secret(integration), policy, sleep
    )
    session.state = "" if full else integration.state
    connector = for_kind(integration.kind)
    records: list[dict[str, Any]] = []
    for page in connector.fetch(session, session.config, full):
        records.extend(page)
        if len(records) > MAX_RECORDS:
            raise SyncError(f"More than {MAX_RECORDS:,} records in one sync: stopped.")
    if len(session.state) > STATE_LENGTH:
        raise SyncError("The incremental field's values are too long to resume from.")
    mapped = mapping.points(
        records,
        integration.config.get("mapping") or {},
        integration.metric.key,
        id_prefix=f"{integration.pk}:",
        tz=ZoneInfo(integration.org.time_zone),
    )
    with transaction.atomic():
        # Still this run's claim? (A run that outlived CLAIM_EXPIRES was taken over: it
        # must store nothing.)
        owned = Integration.objects.filter(pk=integration.pk, running_since=claimed_at)
        if not owned.update(state=session.state):
            raise SyncError("Another run took this integration over; this one stored nothing.")
        stored = do_ingest(integration.org, mapped.points) if mapped.points else 0
    return stored


def _finish(integration: Integration, record: SyncRun, *, stored: int = 0, error: str = "") -> None:
    now = timezone.now()
    record.finished_at, record.ok, record.records, record.error = (
        now,
        not error,
        stored,
        error[:300],
    )
    record.save(update_fields=["finished_at", "ok", "records", "error"])
    changes: dict[str, Any] = {
        "running_since": None,
        "last_run_at": now,
        "next_run_at": now + dt.timedelta(minutes=integration.every_minutes),
    }
    if error:
        changes["failures"] = integration.failures + 1
    else:
        changes["failures"], changes["last_ok_at"] = 0, now
    # Only while the claim is still this run's: a newer run's claim and outcome stay.
    Integration.objects.filter(pk=integration.pk, running_since=record.started_at).update(**changes)


@dataclass
class Preview:
    records: int  # on the first page
    rows: list[dict[str, Any]]  # the first PREVIEW_ROWS data points they map to
    skipped: int


def preview(
    *,
    kind: str,
    config: dict[str, Any],
    secret: str,
    ca_pem: str = "",
    allow_http: bool = False,
    metric_key: str = "preview",
    time_zone: str = "UTC",
) -> Preview:
    """The first page of records and what it maps to, without storing anything (the "test
    connection" button). Raises SyncError with a sentence for people."""
    policy = policy_for(allow_http=allow_http, ca_pem=ca_pem)
    session = session_for(kind, config, secret, policy, sleep=lambda _seconds: None)
    pages = for_kind(kind).fetch(session, session.config, True)
    try:
        first: list[dict[str, Any]] = next(pages, [])
    finally:
        pages.close()
    mapped = mapping.points(first, config.get("mapping") or {}, metric_key, tz=ZoneInfo(time_zone))
    rows = [
        {
            "time": p.ts.isoformat(timespec="seconds"),
            "value": p.value,
            "dimension": p.dimension,
            "id": p.external_id or "",
        }
        for p in mapped.points[:PREVIEW_ROWS]
    ]
    return Preview(len(first), rows, mapped.skipped)
