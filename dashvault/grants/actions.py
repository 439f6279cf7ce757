"""Opening, approving, denying and ending staff access grants; recording what staff view.
Every step is written to the customer's own audit chain (actor: the staff member)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from dashvault import audit
from dashvault.accounts.models import User
from dashvault.grants.models import AccessGrant, Reason
from dashvault.live.publish import recheck
from dashvault.orgs.models import Organization

TICKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:#/-]{0,63}$")


def do_open_grant(
    org: Organization,
    staff: User,
    *,
    reason: str,
    ticket: str,
    minutes: int,
    ip: str | None,
) -> AccessGrant:
    """Open a grant (active at once, or pending when the org requires approval)."""
    errors: dict[str, str] = {}
    if not staff.is_platform_staff:
        errors["staff"] = "Only platform staff open access grants."
    if reason not in Reason.values:
        errors["reason"] = "Choose a reason."
    if not TICKET_RE.match(ticket.strip()):
        errors["ticket"] = "Enter the ticket reference (letters, digits and . _ : # / -)."
    if not 1 <= minutes <= settings.GRANT_MAX_MINUTES:
        errors["minutes"] = f"A grant lasts 1 to {settings.GRANT_MAX_MINUTES} minutes."
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    with transaction.atomic():
        grant = AccessGrant.objects.create(
            org=org, staff=staff, reason=reason, ticket=ticket.strip(), minutes=minutes
        )
        if not org.grant_approval_required:
            grant.starts_at, grant.expires_at = now, now + dt.timedelta(minutes=minutes)
            grant.save(update_fields=["starts_at", "expires_at"])
        audit.record(
            "staff.grant_open" if grant.starts_at else "staff.grant_request",
            org=org,
            actor=staff,
            target=grant,
            ip=ip,
            reason=reason,
            ticket=grant.ticket,
            minutes=minutes,
        )
    return grant


def _lock(grant: AccessGrant) -> None:
    """Re-read the grant under a row lock, inside the caller's transaction, so each decision
    checks the grant as stored: two admins deciding at once (or an admin and the staff member)
    queue, and the second sees the first's decision instead of the state its request loaded."""
    grant.refresh_from_db(from_queryset=AccessGrant.objects.select_for_update())


def do_approve_grant(grant: AccessGrant, *, acting: User, ip: str | None) -> None:
    with transaction.atomic():
        _lock(grant)
        if grant.status != "pending":
            raise ValidationError("Only a pending grant can be approved.")
        now = timezone.now()
        grant.starts_at, grant.expires_at = now, now + dt.timedelta(minutes=grant.minutes)
        grant.approved_by = acting
        grant.save(update_fields=["starts_at", "expires_at", "approved_by"])
        audit.record("staff.grant_approve", org=grant.org_id, actor=acting, target=grant, ip=ip)


def do_deny_grant(grant: AccessGrant, *, acting: User, ip: str | None) -> None:
    with transaction.atomic():
        _lock(grant)
        if grant.status != "pending":
            raise ValidationError("Only a pending grant can be denied.")
        grant.ended_at = timezone.now()
        grant.save(update_fields=["ended_at"])
        audit.record("staff.grant_deny", org=grant.org_id, actor=acting, target=grant, ip=ip)


def do_end_grant(grant: AccessGrant, *, acting: User, ip: str | None) -> None:
    """End an active grant early (the staff member, or an org admin); the staff member's open
    dashboards of the org close at once."""
    with transaction.atomic():
        _lock(grant)
        if grant.status != "active":
            raise ValidationError("Only an active grant can be ended.")
        grant.ended_at = timezone.now()
        grant.save(update_fields=["ended_at"])
        audit.record("staff.grant_end", org=grant.org_id, actor=acting, target=grant, ip=ip)
        recheck(user_ids=[grant.staff_id])


def record_view(grant: AccessGrant, page: str, *, target: object = None, ip: str | None) -> None:
    """Write one staff view (a page or a socket) to the customer's log, marked as staff."""
    audit.record(
        "staff.view",
        org=grant.org_id,
        actor=grant.staff_id,
        actor_kind="staff",
        target=target,  # type: ignore[arg-type]  # a model or None
        ip=ip,
        grant=grant.pk,
        page=page,
    )


def active_grant(staff: User, org_id: Any) -> AccessGrant | None:
    """The staff member's active grant for the org, if any (checked on every request)."""
    now = timezone.now()
    return (
        AccessGrant.objects.filter(
            staff=staff,
            org_id=org_id,
            starts_at__lte=now,
            expires_at__gt=now,
            ended_at__isnull=True,
        )
        .select_related("org")
        .first()
    )


def do_set_approval_required(
    org: Organization, required: bool, *, acting: User, ip: str | None
) -> None:
    with transaction.atomic():
        org.grant_approval_required = required
        org.save(update_fields=["grant_approval_required"])
        audit.record(
            "staff.grant_approval_setting",
            org=org,
            actor=acting,
            target=org,
            ip=ip,
            required=required,
        )
