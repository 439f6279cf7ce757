"""Changes to dashboards: each writes its audit entry in the same transaction."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from dashvault import audit
from dashvault.accounts.models import Role, User
from dashvault.dashboards.models import Dashboard
from dashvault.orgs.models import Group, Organization


def do_create_dashboard(
    org: Organization, title: str, *, acting: User, ip: str | None
) -> Dashboard:
    """Create a dashboard in `org`, the acting editor's organization.

    An editor sees only what their groups grant, so a new dashboard is granted to the
    creator's groups; an admin's is granted to none (admins see all, and grant it on a
    group's page).
    """
    groups = list(Group.objects.filter(org=org, members=acting))
    if acting.role != Role.ADMIN and not groups:
        raise ValidationError(
            "You are in no group, so you could not see a new dashboard. Ask an admin to add you."
        )
    with transaction.atomic():
        dashboard = Dashboard.objects.create(org=org, title=title.strip())
        if acting.role != Role.ADMIN:
            for group in groups:
                group.dashboards.add(dashboard)
        audit.record("dashboard.create", org=org, actor=acting, target=dashboard, ip=ip)
    return dashboard
