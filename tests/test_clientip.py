"""Client address: the connection, or X-Forwarded-For only through trusted proxies."""

from __future__ import annotations

import pytest

from dashvault.asgi import resolve_client
from dashvault.lib.clientip import client_address, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),  # no proxy
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # spoofed header, untrusted peer
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),  # one trusted proxy
        ("10.0.0.2", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # client-written hop ignored
        ("10.0.0.2", "198.51.100.1, 10.0.0.7", "198.51.100.1"),  # two trusted proxies
        ("10.0.0.2", "10.0.0.9, 10.0.0.7", "10.0.0.9"),  # every hop trusted: left-most
        ("10.0.0.2", "garbage, 10.0.0.7", "10.0.0.7"),  # malformed hop stops the walk
        ("fd00::1", "2001:db8::5", "2001:db8::5"),  # IPv6 proxy and client
        ("2001:db8::9", "198.51.100.1", "2001:db8::9"),  # IPv6 untrusted peer
        ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),  # IPv4-mapped proxy address
    ],
)
def test_client_address(peer, xff, expected):
    assert client_address(peer, xff, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_ignored():
    assert client_address("10.0.0.2", "198.51.100.1", ()) == "10.0.0.2"


def test_a_bad_network_is_named():
    with pytest.raises(ValueError, match="nope"):
        parse_networks(["10.0.0.0/8", "nope"])


def _scope(peer: str, headers: dict[str, str]) -> dict:
    return {
        "type": "http",
        "scheme": "http",
        "client": (peer, 5555),
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }


def test_the_router_rewrites_client_and_scheme_only_for_trusted_proxies():
    headers = {"x-forwarded-for": "198.51.100.1", "x-forwarded-proto": "https"}
    trusted = resolve_client(_scope("10.0.0.2", headers), PROXIES)
    assert trusted["client"] == ("198.51.100.1", 5555)
    assert trusted["scheme"] == "https"
    spoofed = resolve_client(_scope("203.0.113.9", headers), PROXIES)
    assert spoofed["client"] == ("203.0.113.9", 5555)
    assert spoofed["scheme"] == "http"
