"""Per-organization IP filtering (DESIGN C6): every way into an org's data admits only addresses
inside the org's networks, for IPv4 and IPv6 alike; refusals and changes are audited; staff
set the filter on a staff-only page or with `dashvault networks`.

The entry points behind Django's request path (pages, the data endpoint, API tokens, the kiosk
TV page) are driven here with the test client, whose REMOTE_ADDR is what the ASGI router hands
Django. Websockets, warm reads and the trusted-proxy path through the router itself are in
test_ipfilter_router.py.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import json
import time
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dashvault.accounts.models import User
from dashvault.api.actions import do_create_token
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Dashboard
from dashvault.kiosk.actions import do_create_kiosk_link
from dashvault.kiosk.models import KioskLink
from dashvault.metrics.models import DataPoint, Metric
from dashvault.orgs.actions import do_set_org_networks
from dashvault.orgs.management.commands.networks import Command as NetworksCommand
from dashvault.orgs.models import Organization
from dashvault.policy.ipfilter import MAX_NETWORKS, allows, normalize
from tests.conftest import make_client

ORG_NETWORKS = ["10.20.0.0/16", "2001:db8:a::/48"]
# (inside the org's networks, outside them) per address family.
FAMILIES = [
    pytest.param("10.20.3.4", "203.0.113.9", id="ipv4"),
    pytest.param("2001:db8:a::4", "2001:db8:b::9", id="ipv6"),
]
REFUSED_TITLE = b"Not allowed from this network"


def restrict(org: Organization, *networks: str) -> None:
    """Set the org's filter through the real action (as staff and the command do)."""
    do_set_org_networks(org, list(networks), acting=None, ip=None)
    org.refresh_from_db()


def assert_refused_page(response: Any, ip: str) -> None:
    """A 403 page that says plainly why: this address is not one of the org's networks."""
    assert response.status_code == 403, response.status_code
    text = response.content.decode()
    assert REFUSED_TITLE.decode() in text
    assert f"and {ip} is not one of them" in text
    assert "Connect from your office network or VPN" in text


def refusals(org: Organization) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(org_id=org.pk, action="ipfilter.refused").order_by("id"))


# == normalize() and allows(): examples ==========================================================


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        (["10.1.2.3/8"], ["10.0.0.0/8"]),  # host bits dropped
        (["192.0.2.7"], ["192.0.2.7/32"]),  # a bare address is one host
        (["  198.51.100.0/24  ", "", "   "], ["198.51.100.0/24"]),  # blanks and spaces
        (["10.0.0.0/8", "10.9.9.9/8", "10.0.0.0/8"], ["10.0.0.0/8"]),  # duplicates dropped
        (["192.0.2.0/24", "10.0.0.0/8"], ["192.0.2.0/24", "10.0.0.0/8"]),  # order kept
        (["1.2.3.4/255.255.0.0"], ["1.2.0.0/16"]),  # a netmask
        (["2001:DB8:0:0:0:0:0:1/32"], ["2001:db8::/32"]),  # IPv6 in its canonical text
        (["2001:db8::1"], ["2001:db8::1/128"]),
        (
            ["10.0.0.0/8, 192.0.2.0/24,", "2001:db8::/32"],
            ["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"],
        ),
        # IPv4-mapped IPv6: client addresses are compared unmapped, so the IPv4 form is kept.
        (["::ffff:10.0.0.0/104"], ["10.0.0.0/8"]),
        (["::ffff:192.0.2.1"], ["192.0.2.1/32"]),
        ([], []),
    ],
)
def test_normalize_stores_canonical_networks(typed: list[str], stored: list[str]) -> None:
    assert normalize(typed) == stored


@pytest.mark.parametrize(
    "bad",
    ["nope", "10.0.0.0/33", "2001:db8::/129", "10.0.0.256", "10.0.0", "10.0.0.0/8/8", "::g", "/8"],
)
def test_normalize_names_a_bad_entry(bad: str) -> None:
    with pytest.raises(ValueError) as raised:
        normalize(["10.0.0.0/8", bad])
    assert repr(bad) in str(raised.value) and "is not an IPv4 or IPv6 network" in str(raised.value)


def test_normalize_refuses_more_than_the_limit() -> None:
    many = [f"10.{i // 256}.{i % 256}.0/24" for i in range(MAX_NETWORKS + 1)]
    assert len(normalize(many[:MAX_NETWORKS])) == MAX_NETWORKS
    with pytest.raises(ValueError, match=f"At most {MAX_NETWORKS} networks"):
        normalize(many)


@pytest.mark.parametrize(
    ("ip", "admitted"),
    [
        ("10.20.0.0", True),
        ("10.20.255.255", True),
        ("10.21.0.0", False),
        ("10.19.255.255", False),
        ("2001:db8:a::", True),
        ("2001:db8:a:ffff:ffff:ffff:ffff:ffff", True),
        ("2001:db8:b::", False),
        ("::ffff:10.20.1.1", True),  # an IPv4 client on a dual-stack socket
        ("::ffff:10.21.1.1", False),
        ("", False),  # no address: refused, never admitted
        (None, False),
        ("not-an-address", False),
        (" 10.20.1.1", False),
    ],
)
def test_allows_admits_only_addresses_inside_the_networks(ip: str | None, admitted: bool) -> None:
    assert allows(ORG_NETWORKS, ip) is admitted


@pytest.mark.parametrize("ip", ["203.0.113.9", "2001:db8::1", "", None, "garbage"])
def test_an_empty_list_admits_everyone(ip: str | None) -> None:
    assert allows([], ip) is True


# == normalize() and allows(): properties against the ipaddress module ==========================

MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


@st.composite
def networks(
    draw: Any, version: int | None = None
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    v = version or draw(st.sampled_from([4, 6]))
    address = draw(st.ip_addresses(v=v))
    prefix = draw(st.integers(0, 32 if v == 4 else 128))
    network = ipaddress.ip_network((address, prefix), strict=False)
    assume(not (network.version == 6 and network.subnet_of(MAPPED)))  # own test below
    return network


@st.composite
def as_typed(draw: Any, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """One way a person may type `network`: host bits set, exploded, upper case, a netmask,
    a bare address for a single host, stray spaces."""
    inside = draw(st.integers(0, network.num_addresses - 1))
    host = network.network_address + inside
    forms = [
        f"{host}/{network.prefixlen}",
        f"{network.network_address.exploded}/{network.prefixlen}",
    ]
    forms.append(forms[0].upper())
    if network.version == 4:
        forms.append(f"{host}/{network.netmask}")
    if network.prefixlen == network.max_prefixlen:
        forms.append(str(host))
    text = draw(st.sampled_from(forms))
    return draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["", " ", "\r"]))


@given(st.data())
def test_normalize_agrees_with_the_ipaddress_module(data: Any) -> None:
    nets = data.draw(st.lists(networks(), max_size=8))
    texts = [data.draw(as_typed(n)) for n in nets]
    expected = list(dict.fromkeys(str(n) for n in nets))  # canonical, deduplicated, in order
    assert normalize(texts) == expected
    assert normalize(expected) == expected  # stored text normalizes to itself
    assert normalize([", ".join(texts)]) == expected  # comma-separated on one line alike


@given(st.lists(networks(), max_size=6), st.ip_addresses())
@example([ipaddress.ip_network("10.0.0.0/8")], ipaddress.ip_address("2001:db8::1"))
@example([ipaddress.ip_network("::/0")], ipaddress.ip_address("10.0.0.1"))
def test_allows_agrees_with_the_ipaddress_module(
    nets: list[Any], address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> None:
    assume(not (address.version == 6 and address.ipv4_mapped))  # own test below
    stored = normalize([str(n) for n in nets])
    expected = not nets or any(address in n for n in nets)
    assert allows(stored, str(address)) is expected
    assert allows(stored, address.exploded) is expected


@given(networks(), st.data())
def test_every_address_of_a_network_is_admitted_and_its_neighbours_are_not(
    network: Any, data: Any
) -> None:
    inside = network.network_address + data.draw(st.integers(0, network.num_addresses - 1))
    # ::ffff:a.b.c.d is the IPv4 client a.b.c.d, which an IPv6 network does not hold.
    assume(not (inside.version == 6 and inside.ipv4_mapped))
    stored = normalize([str(network)])
    assert allows(stored, str(inside))
    top = 2**network.max_prefixlen - 1
    below, above = int(network.network_address) - 1, int(network.broadcast_address) + 1
    for outside in (below, above):
        if 0 <= outside <= top:
            assert not allows(stored, str(type(network.network_address)(outside)))


@given(st.lists(networks(4), min_size=1, max_size=4), st.ip_addresses(v=4))
def test_an_ipv4_client_seen_as_ipv4_mapped_ipv6_is_the_same_client(
    nets: list[Any], address: ipaddress.IPv4Address
) -> None:
    stored = normalize([str(n) for n in nets])
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert allows(stored, str(mapped)) is allows(stored, str(address))
    # A network typed in the mapped form admits the same clients as its IPv4 form.
    typed_mapped = [f"::ffff:{n.network_address}/{n.prefixlen + 96}" for n in nets]
    assert normalize(typed_mapped) == stored
    assert allows(normalize(typed_mapped), str(address)) is allows(stored, str(address))


NEAR_MISSES = st.sampled_from(
    [
        "/",
        ":",
        ".",
        "%",
        "//",
        "::/",
        "/-1",
        "/33",
        "/129",
        ".256",
        "::g",
        "%eth0",
        "\x00",
        "x",
        "١",
    ]
)


@st.composite
def malformed(draw: Any) -> str:
    """Arbitrary text, and valid networks with something inserted into them."""
    if draw(st.booleans()):
        return draw(st.text(max_size=60))
    text = str(draw(networks()))
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(NEAR_MISSES) + text[at:]


# The first st.text() of a fresh checkout builds Hypothesis's Unicode tables (seconds).
@hypothesis_settings(suppress_health_check=[HealthCheck.too_slow])
@given(malformed())
@example("1.2.3.4/8/8")
@example("10.0.0.0/+8")
@example("١٠.0.0.0/8")  # non-ASCII digits
def test_malformed_input_raises_value_error_and_nothing_else(text: str) -> None:
    try:
        stored = normalize([text])
    except ValueError:
        pass  # the only failure allowed; the form shows its message
    else:
        # Whatever was accepted is real networks, in canonical form.
        for item in stored:
            assert str(ipaddress.ip_network(item)) == item
    # As a client address, any text is a plain "no" (or a yes when it is an address inside).
    result = allows(ORG_NETWORKS, text)
    assert isinstance(result, bool)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        assert result is False


# == session pages (IPFilterMiddleware) =========================================================


@pytest.fixture
def filtered(org_a: Organization, dashboards_a: dict[str, Any]) -> Organization:
    restrict(org_a, *ORG_NETWORKS)
    return org_a


MEMBER_PAGES = [
    ("admin_a", "/dashboards/"),
    ("admin_a", "/org/settings/"),
    ("admin_a", "/org/members/"),
    ("admin_a", "/org/groups/"),
    ("admin_a", "/org/kiosks/"),
    ("admin_a", "/org/tokens/"),
    ("editor_a", "/dashboards/"),
    ("editor_a", "/dashboards/new/"),
    ("viewer_a", "/dashboards/"),
    ("viewer_a", "sales"),
    ("viewer_a", "sales-data"),
]


def page_path(path: str, dashboards: dict[str, Any]) -> str:
    if path == "sales":
        return f"/dashboards/{dashboards['sales'].pk}/"
    if path == "sales-data":
        return f"/dashboards/{dashboards['sales'].pk}/data/"
    return path


@pytest.mark.parametrize(("inside", "outside"), FAMILIES)
@pytest.mark.parametrize(("who", "path"), MEMBER_PAGES)
def test_members_are_admitted_inside_the_networks_and_refused_outside(
    request: Any,
    filtered: Organization,
    dashboards_a: Any,
    who: str,
    path: str,
    inside: str,
    outside: str,
) -> None:
    user = request.getfixturevalue(who)
    browser = make_client(user)
    path = page_path(path, dashboards_a)

    assert browser.get(path, REMOTE_ADDR=inside).status_code == 200
    assert_refused_page(browser.get(path, REMOTE_ADDR=outside), outside)


@pytest.mark.parametrize(("inside", "outside"), FAMILIES)
def test_a_refused_post_changes_nothing(
    filtered: Organization, editor_a: User, admin_a: User, inside: str, outside: str
) -> None:
    before = Dashboard.objects.count()
    refused = make_client(editor_a).post(
        "/dashboards/new/", {"title": "Sneaky"}, REMOTE_ADDR=outside
    )
    assert_refused_page(refused, outside)
    renamed = make_client(admin_a).post(
        "/org/settings/", {"name": "Renamed", "time_zone": "UTC"}, REMOTE_ADDR=outside
    )
    assert_refused_page(renamed, outside)
    filtered.refresh_from_db()
    assert Dashboard.objects.count() == before and filtered.name == "Org A"
    # The same posts from inside do the work: the refusal above was the filter's.
    assert (
        make_client(editor_a)
        .post("/dashboards/new/", {"title": "Fine"}, REMOTE_ADDR=inside)
        .status_code
        == 302
    )


def test_an_ipv4_client_on_a_dual_stack_socket_is_admitted(
    filtered: Organization, viewer_a: User
) -> None:
    assert (
        make_client(viewer_a).get("/dashboards/", REMOTE_ADDR="::ffff:10.20.3.4").status_code == 200
    )


@pytest.mark.parametrize("address", ["", "unknown", "10.20.3.4.5"])
def test_a_request_without_a_usable_address_is_refused(
    filtered: Organization, viewer_a: User, address: str
) -> None:
    response = make_client(viewer_a).get("/dashboards/", REMOTE_ADDR=address)
    assert response.status_code == 403 and REFUSED_TITLE in response.content


@pytest.mark.parametrize("address", ["10.20.3.4", "203.0.113.9", "2001:db8:b::9", "::1"])
def test_an_org_without_a_filter_admits_every_address(
    org_a: Organization, admin_a: User, viewer_a: User, dashboards_a: Any, address: str
) -> None:
    assert org_a.allowed_networks == []
    assert make_client(viewer_a).get("/dashboards/", REMOTE_ADDR=address).status_code == 200
    assert make_client(admin_a).get("/org/settings/", REMOTE_ADDR=address).status_code == 200


@pytest.mark.parametrize(("inside", "outside"), FAMILIES)
def test_another_orgs_filter_does_not_affect_this_org(
    org_a: Organization,
    org_b: Organization,
    admin_a: User,
    admin_b: User,
    inside: str,
    outside: str,
) -> None:
    restrict(org_b, *ORG_NETWORKS)
    assert make_client(admin_a).get("/dashboards/", REMOTE_ADDR=outside).status_code == 200
    assert_refused_page(make_client(admin_b).get("/dashboards/", REMOTE_ADDR=outside), outside)
    assert make_client(admin_b).get("/dashboards/", REMOTE_ADDR=inside).status_code == 200


@pytest.mark.parametrize(("inside", "outside"), FAMILIES)
def test_a_refused_member_can_still_sign_out(
    filtered: Organization, viewer_a: User, inside: str, outside: str
) -> None:
    browser = make_client(viewer_a)
    assert_refused_page(browser.get("/dashboards/", REMOTE_ADDR=outside), outside)
    assert browser.get("/accounts/logout/", REMOTE_ADDR=outside).status_code == 200  # the form
    signed_out = browser.post("/accounts/logout/", REMOTE_ADDR=outside)
    assert signed_out.status_code == 302
    # Signed out for real: even from inside, the session no longer opens anything.
    after = browser.get("/dashboards/", REMOTE_ADDR=inside)
    assert after.status_code == 302 and after["Location"].startswith("/accounts/login/")


def test_anonymous_visitors_meet_the_sign_in_page_not_the_filter(filtered: Organization) -> None:
    # The filter is per org: before signing in there is no org to filter by.
    assert make_client().get("/accounts/login/", REMOTE_ADDR="203.0.113.9").status_code == 200


# == org settings: the filter, read-only for org admins =========================================


def test_org_admins_see_the_filter_read_only(filtered: Organization, admin_a: User) -> None:
    browser = make_client(admin_a)
    page = browser.get("/org/settings/", REMOTE_ADDR="10.20.3.4").content.decode()
    assert "<code>10.20.0.0/16</code>" in page and "<code>2001:db8:a::/48</code>" in page
    assert 'name="networks"' not in page and 'name="allowed_networks"' not in page
    saved = browser.post(
        "/org/settings/",
        {"name": "Org A", "time_zone": "UTC", "allowed_networks": "0.0.0.0/0", "networks": "::/0"},
        REMOTE_ADDR="10.20.3.4",
    )
    assert saved.status_code == 302
    filtered.refresh_from_db()
    assert filtered.allowed_networks == ORG_NETWORKS


def test_org_settings_say_when_the_filter_is_off(org_a: Organization, admin_a: User) -> None:
    page = make_client(admin_a).get("/org/settings/").content.decode()
    assert "Off: every network address is admitted." in page


# == API tokens ==================================================================================


@pytest.fixture
def read_token(org_a: Organization, admin_a: User) -> tuple[Any, str]:
    Metric.objects.create(org=org_a, key="deals", name="Deals")
    return do_create_token(org_a, "CI", ["read", "push"], expires_at=None, acting=admin_a)


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.mark.parametrize(("inside", "outside"), FAMILIES)
def test_api_tokens_are_admitted_inside_and_refused_outside_with_a_json_explanation(
    filtered: Organization, read_token: tuple[Any, str], inside: str, outside: str
) -> None:
    _, secret = read_token
    api = make_client()
    admitted = api.get("/api/v1/metrics", REMOTE_ADDR=inside, **bearer(secret))
    assert admitted.status_code == 200 and [m["key"] for m in admitted.json()] == ["deals"]

    refused = api.get("/api/v1/metrics", REMOTE_ADDR=outside, **bearer(secret))
    assert refused.status_code == 403
    assert refused["Content-Type"].startswith("application/json")
    detail = refused.json()["detail"]
    assert f"and {outside} is not one of them" in detail and "office network or VPN" in detail


@pytest.mark.parametrize(("inside", "outside"), FAMILIES)
def test_a_refused_push_stores_nothing(
    filtered: Organization, read_token: tuple[Any, str], inside: str, outside: str
) -> None:
    _, secret = read_token
    body = json.dumps(
        {"points": [{"metric": "deals", "ts": timezone.now().isoformat(), "value": 5}]}
    )
    pushed = make_client().post(
        "/api/v1/datapoints",
        body,
        content_type="application/json",
        REMOTE_ADDR=outside,
        **bearer(secret),
    )
    assert pushed.status_code == 403
    assert not DataPoint.objects.exists()
    pushed = make_client().post(
        "/api/v1/datapoints",
        body,
        content_type="application/json",
        REMOTE_ADDR=inside,
        **bearer(secret),
    )
    assert pushed.status_code == 201 and DataPoint.objects.count() == 1


def test_api_tokens_of_an_unfiltered_org_work_from_anywhere_despite_another_orgs_filter(
    org_a: Organization, org_b: Organization, read_token: tuple[Any, str]
) -> None:
    restrict(org_b, *ORG_NETWORKS)
    response = make_client().get(
        "/api/v1/metrics", REMOTE_ADDR="203.0.113.9", **bearer(read_token[1])
    )
    assert response.status_code == 200


def test_refused_tokens_are_not_counted_as_guesses(
    filtered: Organization, read_token: tuple[Any, str]
) -> None:
    # A live token from the wrong network is not a guessed one: the guard must not block the
    # address (which would outlast the filter being corrected).
    api, outside = make_client(), "203.0.113.9"
    for _ in range(settings.GUARD_FAILURES + 2):
        assert (
            api.get("/api/v1/metrics", REMOTE_ADDR=outside, **bearer(read_token[1])).status_code
            == 403
        )
    restrict(filtered)  # the filter is turned off
    assert (
        api.get("/api/v1/metrics", REMOTE_ADDR=outside, **bearer(read_token[1])).status_code == 200
    )


# == kiosk TV page ===============================================================================


def kiosk_link(
    org: Organization, dashboards: list[Dashboard], networks: list[str] | None = None
) -> tuple[KioskLink, str]:
    return do_create_kiosk_link(
        org, name="Lobby TV", dashboards=dashboards, networks=networks or [], acting=None
    )


def assert_refused_kiosk_page(response: Any, ip: str) -> None:
    assert_refused_page(response, ip)
    assert response["Referrer-Policy"] == "no-referrer"  # the URL holds the token
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("inside", "outside"), FAMILIES)
def test_kiosk_pages_are_admitted_inside_and_refused_outside(
    filtered: Organization, dashboards_a: Any, inside: str, outside: str
) -> None:
    link, token = kiosk_link(filtered, [dashboards_a["sales"]])
    tv = make_client()
    shown = tv.get(f"/kiosk/{token}", REMOTE_ADDR=inside)
    assert shown.status_code == 200 and b"Sales A" in shown.content
    assert_refused_kiosk_page(tv.get(f"/kiosk/{token}", REMOTE_ADDR=outside), outside)
    # Only the admitted screen was recorded as opened.
    opened = AuditEntry.objects.filter(action="kiosk.screen_opened", target_id=str(link.pk))
    assert [e.ip for e in opened] == [inside]


@pytest.mark.parametrize(
    ("link_networks", "narrower_inside", "org_inside_only"),
    [
        pytest.param(["10.20.5.0/24"], "10.20.5.9", "10.20.3.4", id="ipv4"),
        pytest.param(["2001:db8:a:5::/64"], "2001:db8:a:5::9", "2001:db8:a:3::4", id="ipv6"),
    ],
)
def test_a_kiosk_links_own_networks_narrow_the_orgs(
    filtered: Organization,
    dashboards_a: Any,
    link_networks: list[str],
    narrower_inside: str,
    org_inside_only: str,
) -> None:
    _, token = kiosk_link(filtered, [dashboards_a["sales"]], link_networks)
    tv = make_client()
    assert tv.get(f"/kiosk/{token}", REMOTE_ADDR=narrower_inside).status_code == 200
    assert_refused_kiosk_page(
        tv.get(f"/kiosk/{token}", REMOTE_ADDR=org_inside_only), org_inside_only
    )
    (entry,) = refusals(filtered)
    assert entry.detail["by_link"] is True  # refused by the link's list, not the org's


def test_a_kiosk_links_networks_cannot_widen_the_orgs(
    filtered: Organization, dashboards_a: Any
) -> None:
    _, token = kiosk_link(filtered, [dashboards_a["sales"]], ["0.0.0.0/0", "::/0"])
    assert_refused_kiosk_page(
        make_client().get(f"/kiosk/{token}", REMOTE_ADDR="203.0.113.9"), "203.0.113.9"
    )
    (entry,) = refusals(filtered)
    assert entry.detail["by_link"] is False


def test_a_kiosk_links_networks_apply_without_an_org_filter(
    org_a: Organization, dashboards_a: Any
) -> None:
    _, token = kiosk_link(org_a, [dashboards_a["sales"]], ["192.0.2.0/24"])
    assert make_client().get(f"/kiosk/{token}", REMOTE_ADDR="192.0.2.1").status_code == 200
    assert_refused_kiosk_page(
        make_client().get(f"/kiosk/{token}", REMOTE_ADDR="198.51.100.1"), "198.51.100.1"
    )


def test_kiosk_links_of_an_unfiltered_org_open_anywhere_despite_another_orgs_filter(
    org_a: Organization, org_b: Organization, dashboards_a: Any
) -> None:
    restrict(org_b, *ORG_NETWORKS)
    _, token = kiosk_link(org_a, [dashboards_a["sales"]])
    for address in ("203.0.113.9", "2001:db8:b::9"):
        assert make_client().get(f"/kiosk/{token}", REMOTE_ADDR=address).status_code == 200


# == audit: refusals (throttled) =================================================================


def assert_no_personal_data(entry: AuditEntry) -> None:
    values = [
        entry.action,
        entry.actor_kind,
        entry.target_type,
        entry.target_id,
        json.dumps(entry.detail),
    ]
    assert not any("@" in str(v) for v in values)


@pytest.mark.parametrize(("inside", "outside"), FAMILIES)
def test_a_refused_member_is_audited_by_ids_only(
    filtered: Organization, viewer_a: User, inside: str, outside: str
) -> None:
    make_client(viewer_a).get("/dashboards/", REMOTE_ADDR=outside)
    make_client(viewer_a).get("/dashboards/", REMOTE_ADDR=inside)  # admitted: not audited
    (entry,) = refusals(filtered)
    assert (entry.org_id, entry.ip, entry.actor_id, entry.actor_kind) == (
        filtered.pk,
        outside,
        viewer_a.pk,
        "user",
    )
    assert entry.detail == {"by_link": False}
    assert_no_personal_data(entry)


def test_refused_tokens_and_kiosk_links_are_audited_as_themselves(
    filtered: Organization, read_token: tuple[Any, str], dashboards_a: Any
) -> None:
    token, secret = read_token
    link, kiosk_token = kiosk_link(filtered, [dashboards_a["sales"]])
    make_client().get("/api/v1/metrics", REMOTE_ADDR="203.0.113.9", **bearer(secret))
    make_client().get(f"/kiosk/{kiosk_token}", REMOTE_ADDR="203.0.113.9")
    entries = refusals(filtered)
    assert [(e.actor_kind, e.actor_id, e.ip) for e in entries] == [
        ("token", token.pk, "203.0.113.9"),
        ("kiosk", link.pk, "203.0.113.9"),
    ]
    for entry in entries:
        assert_no_personal_data(entry)


def test_refusals_are_audited_once_a_minute_per_address_and_principal(
    filtered: Organization, viewer_a: User, editor_a: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    viewer, editor = make_client(viewer_a), make_client(editor_a)
    for _ in range(20):
        assert viewer.get("/dashboards/", REMOTE_ADDR="203.0.113.9").status_code == 403
    assert len(refusals(filtered)) == 1
    viewer.get("/dashboards/", REMOTE_ADDR="198.51.100.1")  # another address
    editor.get("/dashboards/", REMOTE_ADDR="203.0.113.9")  # another principal
    assert [(e.actor_id, e.ip) for e in refusals(filtered)] == [
        (viewer_a.pk, "203.0.113.9"),
        (viewer_a.pk, "198.51.100.1"),
        (editor_a.pk, "203.0.113.9"),
    ]
    # A minute later the same refusal is written again (the throttle only thins the log).
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    viewer.get("/dashboards/", REMOTE_ADDR="203.0.113.9")
    assert len(refusals(filtered)) == 4


def test_an_ipv6_client_cannot_flood_the_log_from_the_addresses_of_its_64(
    filtered: Organization, viewer_a: User
) -> None:
    viewer = make_client(viewer_a)
    for host in range(1, 30):
        assert viewer.get("/dashboards/", REMOTE_ADDR=f"2001:db8:b:1::{host:x}").status_code == 403
    assert [e.ip for e in refusals(filtered)] == ["2001:db8:b:1::1"]
    viewer.get("/dashboards/", REMOTE_ADDR="2001:db8:b:2::1")  # another /64: another network
    assert len(refusals(filtered)) == 2


# == staff page: /staff/orgs/<org>/networks/ =====================================================


def networks_url(org: Organization) -> str:
    return f"/staff/orgs/{org.pk}/networks/"


def changes(org: Organization) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(org_id=org.pk, action="org.networks_change").order_by("id")
    )


def test_staff_see_the_orgs_filter(org_a: Organization, staff: User) -> None:
    restrict(org_a, *ORG_NETWORKS)
    page = make_client(staff).get(networks_url(org_a))
    assert page.status_code == 200
    text = page.content.decode()
    assert "10.20.0.0/16\n2001:db8:a::/48</textarea>" in text
    assert "<strong>on</strong>, 2 networks" in text


def test_staff_set_the_filter_normalized_and_audited(org_a: Organization, staff: User) -> None:
    typed = "10.1.2.3/8\n2001:DB8::1/32\n\n10.0.0.0/8\n192.0.2.0/24, 198.51.100.7\n"
    response = make_client(staff).post(
        networks_url(org_a), {"networks": typed}, REMOTE_ADDR="192.0.2.50"
    )
    assert response.status_code == 302 and response["Location"] == networks_url(org_a)
    org_a.refresh_from_db()
    assert org_a.allowed_networks == [
        "10.0.0.0/8",
        "2001:db8::/32",
        "192.0.2.0/24",
        "198.51.100.7/32",
    ]
    (entry,) = changes(org_a)
    assert (entry.actor_kind, entry.actor_id, entry.ip, entry.target_id) == (
        "staff",
        staff.pk,
        "192.0.2.50",
        str(org_a.pk),
    )
    assert entry.detail == {"networks": 4, "before": 0}
    assert_no_personal_data(entry)
    followed = make_client(staff).get(networks_url(org_a))
    assert (
        b"10.0.0.0/8\n2001:db8::/32\n192.0.2.0/24\n198.51.100.7/32</textarea>" in followed.content
    )

    # Turning it off: an empty list, audited with the count before.
    assert make_client(staff).post(networks_url(org_a), {"networks": ""}).status_code == 302
    org_a.refresh_from_db()
    assert org_a.allowed_networks == []
    assert changes(org_a)[-1].detail == {"networks": 0, "before": 4}


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("10.0.0.0/8\nnot-a-network", "&#x27;not-a-network&#x27; is not an IPv4 or IPv6 network"),
        ("10.0.0.0/33", "&#x27;10.0.0.0/33&#x27; is not an IPv4 or IPv6 network"),
        ("2001:db8::/129", "&#x27;2001:db8::/129&#x27; is not an IPv4 or IPv6 network"),
        ("\n".join(f"10.0.{i}.0/24" for i in range(MAX_NETWORKS + 1)), "At most 200 networks."),
    ],
)
def test_bad_networks_get_a_400_with_a_clear_message_and_nothing_is_stored(
    org_a: Organization, staff: User, typed: str, message: str
) -> None:
    restrict(org_a, "192.0.2.0/24")
    response = make_client(staff).post(networks_url(org_a), {"networks": typed})
    assert response.status_code == 400
    assert message in response.content.decode()
    org_a.refresh_from_db()
    assert org_a.allowed_networks == ["192.0.2.0/24"]
    assert len(changes(org_a)) == 1  # only the restrict() above


@pytest.mark.parametrize("who", ["admin_a", "editor_a", "viewer_a", "admin_b"])
def test_nobody_but_staff_reaches_the_page(request: Any, org_a: Organization, who: str) -> None:
    browser = make_client(request.getfixturevalue(who))
    assert browser.get(networks_url(org_a)).status_code == 404
    assert browser.post(networks_url(org_a), {"networks": "0.0.0.0/0"}).status_code == 404
    org_a.refresh_from_db()
    assert org_a.allowed_networks == [] and not changes(org_a)


def test_anonymous_visitors_are_sent_to_sign_in(org_a: Organization) -> None:
    response = make_client().get(networks_url(org_a))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_page_of_an_unknown_org_is_404_and_other_methods_405(
    org_a: Organization, staff: User
) -> None:
    browser = make_client(staff)
    assert (
        browser.get("/staff/orgs/00000000-0000-4000-8000-000000000000/networks/").status_code == 404
    )
    assert browser.put(networks_url(org_a)).status_code == 405


@pytest.mark.parametrize("address", ["203.0.113.9", "2001:db8:b::9"])
def test_staff_reach_the_page_from_an_address_the_orgs_filter_excludes(
    org_a: Organization, staff: User, admin_a: User, address: str
) -> None:
    restrict(org_a, *ORG_NETWORKS)
    assert_refused_page(make_client(admin_a).get("/dashboards/", REMOTE_ADDR=address), address)
    browser = make_client(staff)
    assert browser.get("/staff/", REMOTE_ADDR=address).status_code == 200
    assert browser.get(networks_url(org_a), REMOTE_ADDR=address).status_code == 200
    widened = browser.post(networks_url(org_a), {"networks": f"{address}"}, REMOTE_ADDR=address)
    assert widened.status_code == 302
    # The correction took effect: the admin is admitted from that address now.
    assert make_client(admin_a).get("/dashboards/", REMOTE_ADDR=address).status_code == 200


# == the `dashvault networks` command ===========================================================


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("networks", *args, stdout=out)
    return out.getvalue()


def test_the_command_shows_sets_and_clears_the_filter(org_a: Organization) -> None:
    assert run(str(org_a.pk)) == f"{org_a.pk}: IP filter off (every address admitted).\n"
    shown = run("Org A", "--set", "10.1.2.3/8", "2001:DB8::/32", "10.0.0.0/8")  # by exact name
    assert shown == f"{org_a.pk}: admitted only from:\n  10.0.0.0/8\n  2001:db8::/32\n"
    org_a.refresh_from_db()
    assert org_a.allowed_networks == ["10.0.0.0/8", "2001:db8::/32"]
    assert run(str(org_a.pk)) == shown
    assert run(str(org_a.pk), "--clear") == f"{org_a.pk}: IP filter off (every address admitted).\n"
    org_a.refresh_from_db()
    assert org_a.allowed_networks == []
    entries = changes(org_a)
    assert [(e.actor_kind, e.actor_id, e.detail) for e in entries] == [
        ("system", None, {"networks": 2, "before": 0}),
        ("system", None, {"networks": 0, "before": 2}),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "10.0.0.0/8", "nope"], "'nope' is not an IPv4 or IPv6 network"),
        (["--set", "10.0.0.0/33"], "'10.0.0.0/33' is not an IPv4 or IPv6 network"),
        # An empty value (an unset shell variable) must not silently turn the filter off.
        (["--set", ""], "--set needs at least one network; --clear turns the filter off."),
        (["--set", " , "], "--set needs at least one network"),
    ],
)
def test_the_command_refuses_bad_networks_and_keeps_the_filter(
    org_a: Organization, args: list[str], message: str
) -> None:
    restrict(org_a, "192.0.2.0/24")
    with pytest.raises(CommandError) as raised:
        run(str(org_a.pk), *args)
    assert message in str(raised.value)
    org_a.refresh_from_db()
    assert org_a.allowed_networks == ["192.0.2.0/24"]


def test_the_command_refuses_an_unknown_org_and_mixed_options(org_a: Organization) -> None:
    with pytest.raises(CommandError, match="No single organization matches 'Nope'"):
        run("Nope")
    with pytest.raises(CommandError, match="not allowed with"):
        run(str(org_a.pk), "--set", "10.0.0.0/8", "--clear")
    org_a.refresh_from_db()
    assert org_a.allowed_networks == []


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_non_zero_with_the_message_on_stderr(
    org_a: Organization, capsys: pytest.CaptureFixture[str]
) -> None:
    # As the shell runs it (BaseCommand.run_from_argv): exit status 1, the reason on stderr.
    with pytest.raises(SystemExit) as exited:
        NetworksCommand().run_from_argv(
            ["dashvault", "networks", str(org_a.pk), "--set", "10.0.0.0/99"]
        )
    assert exited.value.code == 1
    assert "'10.0.0.0/99' is not an IPv4 or IPv6 network" in capsys.readouterr().err
    org_a.refresh_from_db()
    assert org_a.allowed_networks == []


# == the filter is applied with the org as stored now ===========================================


def test_a_change_applies_to_the_very_next_request(org_a: Organization, viewer_a: User) -> None:
    browser = make_client(viewer_a)
    assert browser.get("/dashboards/", REMOTE_ADDR="203.0.113.9").status_code == 200
    restrict(org_a, "10.20.0.0/16")
    assert browser.get("/dashboards/", REMOTE_ADDR="203.0.113.9").status_code == 403
    restrict(org_a, "203.0.113.0/24")
    assert browser.get("/dashboards/", REMOTE_ADDR="203.0.113.9").status_code == 200
    restrict(org_a)
    assert browser.get("/dashboards/", REMOTE_ADDR="10.20.3.4").status_code == 200


def test_an_expired_kiosk_link_is_not_a_filter_question(
    org_a: Organization, dashboards_a: Any
) -> None:
    # Order of checks (kiosk.entry): the link must be live before its org's filter is asked,
    # so a dead link never writes an ipfilter entry into the org's log.
    restrict(org_a, *ORG_NETWORKS)
    link, token = kiosk_link(org_a, [dashboards_a["sales"]])
    KioskLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert make_client().get(f"/kiosk/{token}", REMOTE_ADDR="203.0.113.9").status_code == 404
    assert not refusals(org_a)
