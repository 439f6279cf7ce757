"""Per-organization IP filtering (DESIGN C6): the step between "who and which org" and policy.

Platform staff may restrict an org to a list of IPv4/IPv6 networks. When the list is set, every
way into that org's data asks `check_address` with the client address (fixed once per request
by the ASGI router: the connection's peer, or X-Forwarded-For behind a trusted proxy only):
signed-in members (IPFilterMiddleware, and the dashboard websocket), API tokens, kiosk links
(which may narrow it further with networks of their own) and kiosk websockets.

Security contract: an empty list means no filter; anything else admits only addresses inside
one of the networks, and a request without a parsable address is refused. Refusals raise
AddressRefused (a PermissionDenied: 403) and are audited in the org's log, at most once a
minute per org, address (an IPv6 one by its /64) and principal so a refused client cannot
flood the log. Platform staff
pages are never filtered by a customer's list (staff belong to no org), so staff cannot lock
themselves out of the page that changes it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashvault import audit
from dashvault.lib.clientip import Network, ip_or_none, parse_networks
from dashvault.policy.guard import address_key

MAX_NETWORKS = 200
IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
REFUSED_TEXT = (
    "Your organization only allows access from certain network addresses, and {ip} is not "
    "one of them. Connect from your office network or VPN, or ask your administrator."
)


class AddressRefused(PermissionDenied):
    pass


@lru_cache(maxsize=1024)
def _parsed(items: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(items)


def networks(items: Iterable[str]) -> tuple[Network, ...]:
    """Parsed networks of a stored list (cached: parsed once per distinct list)."""
    return _parsed(tuple(items))


def normalize(lines: Iterable[str]) -> list[str]:
    """Validate and normalize networks as typed by a person (one per line or comma-separated):
    canonical CIDR text (IPv4-mapped IPv6 networks as IPv4), duplicates dropped, order kept.
    Raises ValueError naming a bad entry.
    """
    result: list[str] = []
    for item in (part for line in lines for part in line.split(",")):
        item = item.strip()
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                f"{item!r} is not an IPv4 or IPv6 network (e.g. 203.0.113.0/24)"
            ) from None
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(IPV4_MAPPED):
            # Addresses are compared unmapped (allows, clientip): keep the IPv4 form, which
            # matches, rather than a mapped one that never could.
            network = ipaddress.IPv4Network(
                (int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96)
            )
        text = str(network)
        if text not in result:
            result.append(text)
    if len(result) > MAX_NETWORKS:
        raise ValueError(f"At most {MAX_NETWORKS} networks.")
    return result


def allows(items: Iterable[str], ip: str | None) -> bool:
    """Whether `ip` is inside one of the stored networks (an empty list allows everyone)."""
    parsed = networks(items)
    if not parsed:
        return True
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in parsed)


def check_address(
    org: Any, ip: str | None, *, actor: Any = None, actor_kind: str, extra: Iterable[str] = ()
) -> None:
    """Raise AddressRefused unless `ip` passes the org's networks and the `extra` ones (a kiosk
    link's own). The refusal is audited (throttled) in the org's log."""
    extra = tuple(extra)
    if allows(org.allowed_networks, ip) and allows(extra, ip):
        return
    actor_id = getattr(actor, "pk", actor)
    # IPv6 counts by its /64 (as the guard does): one host holds a whole /64, and keying by
    # single addresses would let it write an entry per address.
    if cache.add(f"dv:ipfilter:{org.pk}:{address_key(ip)}:{actor_id}", 1, timeout=60):
        audit.record(
            "ipfilter.refused",
            org=org,
            actor=actor_id,
            actor_kind=actor_kind,
            ip=ip_or_none(ip),
            by_link=bool(extra) and allows(org.allowed_networks, ip),
        )
    raise AddressRefused(REFUSED_TEXT.format(ip=ip or "this address"))


# Paths a refused member may still reach: signing out (and the static files pages need).
OPEN_PREFIXES = ("/accounts/logout/", "/static/")


class IPFilterMiddleware:
    """Signed-in members of a filtered org: refused (403 page) outside its networks."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and user.org_id is not None  # type: ignore[union-attr]  # our User model
            and not request.path.startswith(OPEN_PREFIXES)
        ):
            try:
                check_address(
                    user.org,  # type: ignore[union-attr]  # loaded with the user (backends)
                    request.META.get("REMOTE_ADDR"),
                    actor=user,
                    actor_kind="user",
                )
            except AddressRefused as exc:
                return render(
                    request,
                    "server/error.html",
                    {"title": "Not allowed from this network", "message": str(exc)},
                    status=403,
                )
        return self.get_response(request)
