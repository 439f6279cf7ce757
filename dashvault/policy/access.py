"""`access_*`: the only way a request reaches a tenant-owned object.

Contract for every function here: the lookup is scoped to the principal's organization first,
so another org's object raises Http404 exactly as a missing one does (no names, no counts).
A principal lacking the role for the *kind* of object raises PermissionDenied (403) before any
lookup, so a 403 never reveals whether an object exists.
"""

from __future__ import annotations

import re
import uuid
from typing import Literal

from django.core.exceptions import PermissionDenied
from django.http import Http404

from dashvault.accounts.models import User
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.integrations.models import Integration
from dashvault.kiosk.models import KioskLink
from dashvault.metrics.models import METRIC_KEY_PATTERN, Metric
from dashvault.orgs.models import Group
from dashvault.policy import rules
from dashvault.policy.principal import KioskPrincipal, Principal, TokenPrincipal
from dashvault.sso.models import ClaimMapping, IdentityProvider, Kind

METRIC_KEY_RE = re.compile(METRIC_KEY_PATTERN)


def _uuid(value: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Http404 from None


def require_org_admin(principal: Principal) -> None:
    """Raise PermissionDenied unless the principal administers its organization."""
    if not rules.is_org_admin(principal):
        raise PermissionDenied("Only organization admins can do this.")


def access_dashboard(
    principal: Principal | KioskPrincipal,
    dashboard_id: object,
    *,
    need: Literal["view", "edit"] = "view",
) -> Dashboard:
    """The dashboard if the principal may view it (404 otherwise, also when it exists in this
    org but none of the principal's groups grant it, or a kiosk link does not show it);
    `need="edit"` also requires the editor or admin role (403)."""
    if need == "edit" and not rules.can_edit_dashboards(principal):
        raise PermissionDenied("Only editors and admins can change dashboards.")
    try:
        return rules.visible_dashboards(principal).get(id=_uuid(dashboard_id))
    except Dashboard.DoesNotExist:
        raise Http404 from None


def access_member(principal: Principal, user_id: object) -> User:
    """A user of the principal's org, for an org admin (403 for other roles)."""
    require_org_admin(principal)
    try:
        return User.objects.get(org=principal.org, id=_uuid(user_id))
    except User.DoesNotExist:
        raise Http404 from None


def access_group(principal: Principal, group_id: object) -> Group:
    """A group of the principal's org, for an org admin (403 for other roles)."""
    require_org_admin(principal)
    try:
        return Group.objects.get(org=principal.org, id=_uuid(group_id))
    except Group.DoesNotExist:
        raise Http404 from None


def access_kiosk_link(principal: Principal, link_id: object) -> KioskLink:
    """A kiosk link of the principal's org, for an org admin (403 for other roles)."""
    require_org_admin(principal)
    try:
        return KioskLink.objects.select_related("org").get(org=principal.org, id=_uuid(link_id))
    except KioskLink.DoesNotExist:
        raise Http404 from None


def access_identity_provider(principal: Principal, kind: str) -> IdentityProvider | None:
    """The org's SSO provider of `kind` (None when not set up yet), for an org admin (403);
    an unknown kind is a 404."""
    require_org_admin(principal)
    if kind not in Kind.values:
        raise Http404
    return IdentityProvider.objects.filter(org=principal.org, kind=kind).first()


def access_claim_mapping(principal: Principal, mapping_id: object) -> ClaimMapping:
    """A claim mapping of the principal's org, for an org admin (403 for other roles)."""
    require_org_admin(principal)
    try:
        return ClaimMapping.objects.get(org=principal.org, id=_uuid(mapping_id))
    except ClaimMapping.DoesNotExist:
        raise Http404 from None


def access_integration(
    principal: Principal | TokenPrincipal, integration_id: object
) -> Integration:
    """An integration of the principal's org: for an org admin (403 for other roles), or for
    an API token (its scope checked before, so a 403 never tells whether an id exists).
    Another org's id raises Http404 exactly as an unknown or malformed one does."""
    if not isinstance(principal, TokenPrincipal):
        require_org_admin(principal)
    try:
        return Integration.objects.select_related("metric").get(
            org=principal.org, id=_uuid(integration_id)
        )
    except Integration.DoesNotExist:
        raise Http404 from None


def require_scope(principal: TokenPrincipal, scope: str) -> None:
    """Raise PermissionDenied unless the API token carries `scope`."""
    if scope not in principal.scopes:
        raise PermissionDenied(f"This token lacks the {str(scope)!r} scope.")


def access_metric(principal: Principal | TokenPrincipal, key: str) -> Metric:
    """A metric of the principal's org by key (404 for other orgs' and unknown keys)."""
    if principal.org is None or not METRIC_KEY_RE.fullmatch(key):
        raise Http404
    try:
        return Metric.objects.get(org=principal.org, key=key)
    except Metric.DoesNotExist:
        raise Http404 from None


def access_widget(principal: Principal, dashboard_id: object, widget_id: object) -> Widget:
    """A widget of a dashboard the principal may edit: editor or admin role first (403 for
    viewers, before any lookup), then the dashboard through access_dashboard (404 when it is
    another org's or not granted to the principal's groups), then the widget within that
    dashboard and org (404 for a widget of any other dashboard)."""
    dashboard = access_dashboard(principal, dashboard_id, need="edit")
    try:
        widget = Widget.objects.select_related("metric").get(
            org=principal.org,
            dashboard=dashboard,
            id=_uuid(widget_id),
        )
    except Widget.DoesNotExist:
        raise Http404 from None
    widget.dashboard = dashboard  # the already-checked object: no second lookup
    return widget
