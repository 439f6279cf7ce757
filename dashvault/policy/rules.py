"""Policy decisions: pure questions about what a principal may do. Each condition on its line."""

from __future__ import annotations

from django.db.models import QuerySet

from dashvault.accounts.models import Role
from dashvault.dashboards.models import Dashboard
from dashvault.policy.principal import KioskPrincipal, Principal


def is_org_admin(principal: Principal | KioskPrincipal) -> bool:
    return principal.is_member and principal.role == Role.ADMIN


def can_edit_dashboards(principal: Principal | KioskPrincipal) -> bool:
    return principal.is_member and principal.role in (Role.ADMIN, Role.EDITOR)


def visible_dashboards(principal: Principal | KioskPrincipal) -> QuerySet[Dashboard]:
    """Dashboards the principal may view: all of the org's for admins, else the union of the
    dashboards granted to the principal's groups; for a kiosk link, the link's dashboards; for
    staff inside an active access grant, all of the org's (they can never edit).
    Always filtered by the principal's org."""
    if isinstance(principal, KioskPrincipal):
        return Dashboard.objects.filter(
            org=principal.org,
            kiosk_entries__link=principal.link,
            kiosk_entries__org=principal.org,
        )
    if principal.kind == "grant" and principal.org is not None:
        return Dashboard.objects.filter(org=principal.org)  # view only: not a member
    if not principal.is_member:
        return Dashboard.objects.none()
    dashboards = Dashboard.objects.filter(org=principal.org)
    if principal.role == Role.ADMIN:
        return dashboards
    granted = dashboards.filter(
        granted_to__members=principal.user,
        granted_to__org=principal.org,
    )
    return dashboards.filter(id__in=granted.values("id"))
