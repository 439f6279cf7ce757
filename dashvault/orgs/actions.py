"""Changes to organizations and groups: each writes its audit entry in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from dashvault import audit
from dashvault.accounts.actions import do_create_user
from dashvault.accounts.models import Role, User
from dashvault.dashboards.models import Dashboard
from dashvault.live.publish import recheck
from dashvault.metrics.ingest import rebuild_rollups
from dashvault.orgs.models import Group, Organization
from dashvault.policy import ipfilter


def do_create_org(
    name: str, *, admin_email: str, base_url: str, time_zone: str = "UTC"
) -> tuple[Organization, User, str]:
    """Create an organization with its first admin; returns the admin's set-password link."""
    with transaction.atomic():
        org = Organization(name=name.strip(), time_zone=time_zone)
        org.full_clean()
        org.save()
        audit.record("org.create", org=org, target=org)
        admin, link = do_create_user(org, admin_email, Role.ADMIN, acting=None, base_url=base_url)
    return org, admin, link


def do_update_org(
    org: Organization, *, name: str, time_zone: str, require_mfa: bool, acting: User, ip: str | None
) -> None:
    with transaction.atomic():
        moved = time_zone != org.time_zone
        mfa_turned_on = require_mfa and not org.require_mfa
        org.name, org.time_zone, org.require_mfa = name, time_zone, require_mfa
        org.full_clean()
        org.save(update_fields=["name", "time_zone", "require_mfa"])
        if moved:
            # Rollups are per local day: a new time zone moves every day boundary.
            rebuild_rollups(org)
        audit.record(
            "org.update", org=org, actor=acting, target=org, ip=ip, require_mfa=require_mfa
        )
        if mfa_turned_on:
            # Open screens of members without a second factor must go through admission again.
            recheck(user_ids=User.objects.filter(org=org).values_list("id", flat=True))


def do_save_group(
    org: Organization,
    group: Group | None,
    *,
    name: str,
    members: Iterable[User],
    dashboards: Iterable[Dashboard],
    acting: User,
    ip: str | None,
) -> Group:
    """Create (group=None) or update a group with its members and granted dashboards.

    Callers pass members and dashboards already scoped to `org` (forms do, via querysets);
    this checks again so a cross-org object can never be attached.
    """
    members, dashboards = list(members), list(dashboards)
    if any(m.org_id != org.pk for m in members) or any(d.org_id != org.pk for d in dashboards):
        raise ValidationError("Members and dashboards must belong to the organization.")
    try:
        with transaction.atomic():
            created = group is None
            if group is None:
                group = Group(org=org)
            group.name = name.strip()
            group.save()
            group.members.set(members)
            group.dashboards.set(dashboards)
            audit.record(
                "group.create" if created else "group.update",
                org=org,
                actor=acting,
                target=group,
                ip=ip,
                members=len(members),
                dashboards=len(dashboards),
            )
    except IntegrityError:
        raise ValidationError({"name": "A group with this name already exists."}) from None
    return group


def do_delete_group(group: Group, *, acting: User, ip: str | None) -> None:
    with transaction.atomic():
        audit.record("group.delete", org=group.org_id, actor=acting, target=group, ip=ip)
        group.delete()


def do_set_org_networks(
    org: Organization, lines: Iterable[str], *, acting: User | None, ip: str | None
) -> list[str]:
    """Set the org's IP filter (platform staff, or an operator's command); an empty list turns
    it off. Returns the stored, normalized networks; raises ValidationError for a bad entry.

    Every open screen of the org (people's and kiosk TVs') is closed after the commit to
    reconnect through the new filter, and warm reads of its dashboards stop (live.admission).
    """
    try:
        networks = ipfilter.normalize(lines)
    except ValueError as exc:
        raise ValidationError({"networks": str(exc)}) from None
    with transaction.atomic():
        org = Organization.objects.select_for_update().get(pk=org.pk)
        before = len(org.allowed_networks)
        org.allowed_networks = networks
        org.save(update_fields=["allowed_networks"])
        audit.record(
            "org.networks_change",
            org=org,
            actor=acting,
            target=org,
            ip=ip,
            networks=len(networks),
            before=before,
        )
        recheck(dashboard_ids=Dashboard.objects.filter(org=org).values_list("id", flat=True))
    return networks
