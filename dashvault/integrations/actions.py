"""Changes to integrations, each audited in its own transaction (ids only: never the
credential, the address or anything the records hold)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from dashvault import audit
from dashvault.integrations import sync
from dashvault.integrations.models import Integration
from dashvault.jobs.queue import enqueue
from dashvault.lib import http
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Organization


def do_create_integration(
    org: Organization,
    *,
    acting: Any,
    ip: str | None,
    name: str,
    kind: str,
    metric: Metric,
    config: dict[str, Any],
    secret: str,
    ca_pem: str = "",
    every_minutes: int = 15,
) -> Integration:
    """A new integration of `org` feeding `metric` (of the same org: callers pass one from
    access_metric). Its first sync is due at once."""
    if metric.org_id != org.pk:
        raise ValueError("the metric belongs to another organization")
    with transaction.atomic():
        integration = Integration(
            org=org,
            name=name,
            kind=kind,
            metric=metric,
            config=config,
            ca_pem=ca_pem,
            every_minutes=every_minutes,
            next_run_at=timezone.now(),
        )
        if secret:
            integration.credential = sync.seal_credential(integration, secret)
        integration.save()
        audit.record(
            "integration.create", org=org, actor=acting, target=integration, ip=ip, kind=kind
        )
    return integration


def do_update_integration(
    integration: Integration,
    *,
    acting: Any,
    ip: str | None,
    name: str,
    metric: Metric,
    config: dict[str, Any],
    secret: str | None,
    ca_pem: str,
    every_minutes: int,
    enabled: bool,
) -> Integration:
    """Change an integration's settings; `secret` None keeps the stored credential, "" clears
    it. A changed address or way of reading starts the next sync from scratch."""
    if metric.org_id != integration.org_id:
        raise ValueError("the metric belongs to another organization")
    with transaction.atomic():
        # The row as it is now (a sync or staff may have changed it since it was read): only
        # the fields the admin sets are written.
        current = Integration.objects.select_for_update().get(pk=integration.pk)
        fields = ["name", "metric", "config", "ca_pem", "every_minutes", "enabled"]
        source_changed = config != current.config or metric.pk != current.metric_id
        integration.name, integration.metric, integration.config = name, metric, config
        integration.ca_pem, integration.every_minutes = ca_pem, every_minutes
        integration.enabled = enabled
        if source_changed:
            integration.state = ""
            fields.append("state")
        if current.allow_http and _host(config) != _host(current.config):
            # Staff's plain-HTTP exception was for the service the customer named, not for
            # whatever address the integration is pointed at next.
            integration.allow_http = False
            fields.append("allow_http")
        if secret is not None:
            integration.credential = sync.seal_credential(integration, secret) if secret else b""
            fields.append("credential")
        integration.save(update_fields=fields)
        audit.record(
            "integration.update",
            org=integration.org_id,
            actor=acting,
            target=integration,
            ip=ip,
            credential_changed=secret is not None,
            enabled=enabled,
        )
    return integration


def do_delete_integration(integration: Integration, *, acting: Any, ip: str | None) -> None:
    """Delete the integration and its run history; the points it stored stay in the metric."""
    with transaction.atomic():
        audit.record(
            "integration.delete", org=integration.org_id, actor=acting, target=integration, ip=ip
        )
        integration.delete()


def do_request_sync(
    integration: Integration, *, acting: Any, ip: str | None, full: bool = False
) -> None:
    """Queue a sync now ("sync now"; `full`: from scratch, ignoring the incremental cursor)."""
    from dashvault.integrations.jobs import sync_integration

    with transaction.atomic():
        audit.record(
            "integration.sync_request",
            org=integration.org_id,
            actor=acting,
            target=integration,
            ip=ip,
            full=full,
        )
        enqueue(sync_integration, str(integration.pk), full)


def do_set_http_exception(
    integration: Integration, *, acting: Any, ip: str | None, allow: bool
) -> None:
    """Platform staff, at the customer's request: allow plain HTTP for this one integration
    (or take it back). Written to the customer's audit log, and shown on their page."""
    with transaction.atomic():
        Integration.objects.filter(pk=integration.pk).update(allow_http=allow)
        integration.allow_http = allow
        audit.record(
            "integration.http_exception",
            org=integration.org_id,
            actor=acting,
            target=integration,
            ip=ip,
            allow=allow,
        )


def _host(config: dict[str, Any]) -> str:
    return http.origin(str(config.get("url", "")))[1]
