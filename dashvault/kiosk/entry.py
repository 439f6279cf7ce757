"""The one way a kiosk token becomes a principal, for the TV page and the kiosk websocket alike:
guard → link by token hash → org → IP filter → KioskPrincipal (policy takes over from there).
"""

from __future__ import annotations

import datetime as dt

from django.core.cache import cache
from django.utils import timezone

from dashvault import audit
from dashvault.kiosk.actions import TOKEN_PREFIX
from dashvault.kiosk.models import KioskLink
from dashvault.lib.clientip import ip_or_none
from dashvault.lib.tokens import hash_token
from dashvault.policy import guard, ipfilter
from dashvault.policy.principal import KioskPrincipal

TOUCH_EVERY = dt.timedelta(minutes=1)  # last use is written at most once a minute per link
SCREEN_AUDIT_SECONDS = 600  # "screen opened" is audited once per link and address this often
MAX_TOKEN_LENGTH = 100


class LinkInvalid(Exception):
    """Unknown, revoked, rotated or expired: one answer for all (nothing tells them apart)."""


def live_link(token: str) -> KioskLink | None:
    """The live link holding `token`, or None. Only the token's SHA-256 is looked up."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    link = KioskLink.objects.select_related("org").filter(token_hash=hash_token(token)).first()
    if link is None or link.revoked_at is not None:
        return None
    if link.expires_at is not None and link.expires_at <= timezone.now():
        return None
    return link


def enter(token: str, ip: str | None, *, source: str) -> KioskPrincipal:
    """The principal of a kiosk screen presenting `token` from `ip`.

    Security contract, in this order: a blocked address raises guard.Blocked before anything
    is read (no database query); an unknown, revoked or expired token counts a failure against
    the address and raises LinkInvalid (the same for each); an address outside the org's or
    the link's networks raises ipfilter.AddressRefused (audited). Only then is a principal
    made, and access to each dashboard is still decided by policy.access_dashboard.
    """
    guard.check(ip)
    link = live_link(token)
    if link is None:
        guard.failed(ip, source=source, token=token)
        raise LinkInvalid
    ipfilter.check_address(link.org, ip, actor=link, actor_kind="kiosk", extra=link.networks)
    _touch(link, ip)
    return KioskPrincipal(link, link.org, ip)


def _touch(link: KioskLink, ip: str | None) -> None:
    now = timezone.now()
    if (
        link.last_used_at is None
        or now - link.last_used_at > TOUCH_EVERY
        or link.last_used_ip != ip_or_none(ip)
    ):
        KioskLink.objects.filter(pk=link.pk).update(last_used_at=now, last_used_ip=ip_or_none(ip))


def record_screen_opened(principal: KioskPrincipal) -> None:
    """Audit a TV opening the link (the page load; websocket reconnects are not screens).
    Throttled per link and address, so a reloading screen cannot flood the log."""
    link = principal.link
    if cache.add(f"dv:kiosk:opened:{link.pk}:{principal.ip}", 1, timeout=SCREEN_AUDIT_SECONDS):
        audit.record(
            "kiosk.screen_opened",
            org=link.org_id,
            actor=link.pk,
            actor_kind="kiosk",
            target=link,
            ip=ip_or_none(principal.ip),
        )
