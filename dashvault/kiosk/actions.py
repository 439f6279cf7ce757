"""Kiosk link lifecycle: create and rotate (the URL shown once), change, revoke. Each change is
audited in the same transaction, and open screens hear of it after the commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from dashvault import audit
from dashvault.accounts.models import User
from dashvault.dashboards.models import Dashboard
from dashvault.kiosk.models import MAX_ROTATION, MIN_ROTATION, KioskEntry, KioskLink
from dashvault.lib.tokens import hash_token, new_token
from dashvault.live.hub import LINK_ENDED, RELOAD
from dashvault.live.publish import end_kiosk_sockets
from dashvault.orgs.models import Organization
from dashvault.policy import ipfilter

TOKEN_PREFIX = "dvk_"  # noqa: S105  (a public marker, not a secret)
SHOWN_PREFIX = len(TOKEN_PREFIX) + 6  # characters of the token the list keeps showing
MAX_DASHBOARDS = 50


def _validate(
    org: Organization,
    dashboards: Sequence[Dashboard],
    rotation_seconds: int,
    expires_at: dt.datetime | None,
    networks: Sequence[str],
    *,
    expiry_changed: bool,
) -> list[str]:
    errors: dict[str, str] = {}
    if not dashboards:
        errors["dashboards"] = "Choose at least one dashboard."
    elif len(dashboards) > MAX_DASHBOARDS:
        errors["dashboards"] = f"At most {MAX_DASHBOARDS} dashboards."
    elif any(d.org_id != org.pk for d in dashboards) or len({d.pk for d in dashboards}) != len(
        dashboards
    ):
        # Forms offer only the org's dashboards; this holds for every other caller too.
        errors["dashboards"] = "Choose each of the organization's dashboards at most once."
    if not MIN_ROTATION <= rotation_seconds <= MAX_ROTATION:
        errors["rotation_seconds"] = (
            f"Show each dashboard for {MIN_ROTATION} to {MAX_ROTATION} seconds."
        )
    if expiry_changed and expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = "The expiry must be in the future."
    try:
        clean = ipfilter.normalize(networks)
    except ValueError as exc:
        errors["networks"] = str(exc)
        clean = []
    if errors:
        raise ValidationError(errors)
    return clean


def _set_dashboards(link: KioskLink, dashboards: Sequence[Dashboard]) -> None:
    KioskEntry.objects.filter(org=link.org_id, link=link).delete()
    KioskEntry.objects.bulk_create(
        KioskEntry(org_id=link.org_id, link=link, dashboard=dashboard, position=position)
        for position, dashboard in enumerate(dashboards)
    )


def do_create_kiosk_link(
    org: Organization,
    *,
    name: str,
    dashboards: Sequence[Dashboard],
    rotation_seconds: int = 30,
    expires_at: dt.datetime | None = None,
    networks: Sequence[str] = (),
    acting: User | None,
    ip: str | None = None,
) -> tuple[KioskLink, str]:
    """Create a link showing `dashboards` in this order; returns the row and its token, which
    is never stored or shown again (only its SHA-256 and a short prefix are kept).

    Security contract: the token has 256 bits from `secrets`; dashboards must be the org's.
    """
    clean = _validate(org, dashboards, rotation_seconds, expires_at, networks, expiry_changed=True)
    secret = new_token(TOKEN_PREFIX)
    with transaction.atomic():
        link = KioskLink.objects.create(
            org=org,
            name=name.strip() or "TV screen",
            token_hash=hash_token(secret),
            prefix=secret[:SHOWN_PREFIX],
            rotation_seconds=rotation_seconds,
            expires_at=expires_at,
            networks=clean,
            created_by=acting,
        )
        _set_dashboards(link, dashboards)
        audit.record(
            "kiosk.create",
            org=org,
            actor=acting,
            target=link,
            ip=ip,
            dashboards=len(dashboards),
            networks=len(clean),
        )
    return link, secret


def do_update_kiosk_link(
    link: KioskLink,
    *,
    name: str,
    dashboards: Sequence[Dashboard],
    rotation_seconds: int,
    expires_at: dt.datetime | None,
    networks: Sequence[str],
    acting: User,
    ip: str | None,
) -> None:
    """Change a link's settings; its open screens reload the page (and meet the new ones)."""
    clean = _validate(
        link.org,
        dashboards,
        rotation_seconds,
        expires_at,
        networks,
        expiry_changed=expires_at != link.expires_at,
    )
    with transaction.atomic():
        link.name = name.strip() or link.name
        link.rotation_seconds = rotation_seconds
        link.expires_at = expires_at
        link.networks = clean
        link.save(update_fields=["name", "rotation_seconds", "expires_at", "networks"])
        _set_dashboards(link, dashboards)
        audit.record(
            "kiosk.update",
            org=link.org_id,
            actor=acting,
            target=link,
            ip=ip,
            dashboards=len(dashboards),
            networks=len(clean),
        )
        end_kiosk_sockets(link.pk, RELOAD, "link_changed")


def do_rotate_kiosk_link(link: KioskLink, *, acting: User, ip: str | None) -> str:
    """Give the link a new token; the old one stops working at once and every screen open
    with it is closed (4410). Returns the new token (shown once). A revoked link stays so."""
    if link.revoked_at is not None:
        raise ValidationError("A revoked link cannot be rotated. Create a new one.")
    secret = new_token(TOKEN_PREFIX)
    with transaction.atomic():
        link.token_hash = hash_token(secret)
        link.prefix = secret[:SHOWN_PREFIX]
        link.rotated_at = timezone.now()
        link.save(update_fields=["token_hash", "prefix", "rotated_at"])
        audit.record("kiosk.rotate", org=link.org_id, actor=acting, target=link, ip=ip)
        end_kiosk_sockets(link.pk, LINK_ENDED, "link_rotated")
    return secret


def do_revoke_kiosk_link(link: KioskLink, *, acting: User, ip: str | None) -> None:
    """Revoke the link for good; every screen open with it is closed (4410)."""
    with transaction.atomic():
        if link.revoked_at is not None:
            return
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at"])
        audit.record("kiosk.revoke", org=link.org_id, actor=acting, target=link, ip=ip)
        end_kiosk_sockets(link.pk, LINK_ENDED, "link_revoked")
