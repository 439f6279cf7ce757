"""The client's address: the connection peer, or X-Forwarded-For only behind a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """Parse CIDR strings ("10.0.0.0/8", "::1"); raises ValueError naming a bad entry."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP network: {item!r}") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address.scope_id:
            # "fe80::1%eth0" (a link-local peer): PostgreSQL's inet refuses the zone id.
            return ipaddress.IPv6Address(str(address).split("%", 1)[0])
    return address


def _trusted(address: Address, trusted: tuple[Network, ...]) -> bool:
    return any(address in network for network in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The address to filter, throttle and audit by.

    Security contract: X-Forwarded-For is read only when the connection itself comes from a
    trusted proxy, and then from the right: each hop appended by a trusted proxy is skipped and
    the right-most untrusted address is the client. Anything a client writes to the left of
    that is ignored, so a spoofed header from an untrusted client changes nothing. A malformed
    hop stops the walk at the last trusted proxy's own address.
    """
    peer_address = _address(peer)
    if peer_address is None:
        return peer
    if not forwarded_for or not _trusted(peer_address, trusted):
        return str(peer_address)
    client = peer_address
    for hop in reversed(forwarded_for.split(",")):
        hop_address = _address(hop)
        if hop_address is None:
            break
        client = hop_address
        if not _trusted(hop_address, trusted):
            break
    return str(client)


def is_trusted(peer: str, trusted: tuple[Network, ...]) -> bool:
    """Whether the connection itself comes from a trusted proxy."""
    address = _address(peer)
    return address is not None and _trusted(address, trusted)


def ip_or_none(text: str | None) -> str | None:
    """`text` in canonical form if it is an IP address (what an address column may hold)."""
    address = _address(text or "")
    return None if address is None else str(address)
