"""The org IP filter (DESIGN C6) through dashvault's own ASGI router (dashvault.asgi), the
application `dashvault serve` runs: websockets (session and kiosk), warm reads of dashboard data
answered by the router itself, open screens meeting a changed filter, and the client address
as the router resolves it (X-Forwarded-For only from a trusted proxy).

Database work happens in worker threads, so these tests use real transactions: commits fire the
events that close screens and end warm reads.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.management import call_command
from django.db import connections

from dashvault.accounts.models import User
from dashvault.api.actions import do_create_token
from dashvault.asgi import application
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Dashboard
from dashvault.kiosk.actions import do_create_kiosk_link
from dashvault.lib.clientip import parse_networks
from dashvault.live.admission import admissions
from dashvault.live.hub import hub
from dashvault.orgs.actions import do_set_org_networks
from dashvault.orgs.models import Organization
from tests.conftest import make_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

COOKIE = settings.SESSION_COOKIE_NAME
ORG_NETWORKS = ["10.20.0.0/16", "2001:db8:a::/48"]
FAMILIES = [
    pytest.param("10.20.3.4", "203.0.113.9", id="ipv4"),
    pytest.param("2001:db8:a::4", "2001:db8:b::9", id="ipv6"),
]
PROXIES = ["172.16.0.0/12", "fd00::/8"]  # where the trusted reverse proxies connect from


@pytest_asyncio.fixture(autouse=True)
async def fresh_state() -> AsyncIterator[None]:
    hub.reset()
    admissions.clear()
    yield
    hub.reset()
    admissions.clear()
    # Worker threads' connections must not outlive the test (PostgreSQL drops the database).
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def trusted_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # The router reads settings.TRUSTED_PROXIES once, when it is built.
    monkeypatch.setattr(application, "trusted", parse_networks(PROXIES))


def restrict(org: Organization, *networks: str, acting: User | None = None) -> None:
    do_set_org_networks(org, list(networks), acting=acting, ip=None)


@pytest.fixture
def filtered(org_a: Organization, dashboards_a: dict[str, Any]) -> Organization:
    restrict(org_a, *ORG_NETWORKS)
    return org_a


@pytest.fixture
def sales(dashboards_a: dict[str, Any]) -> Dashboard:
    return dashboards_a["sales"]  # granted to the viewer and editor of org A


@pytest.fixture
def sales_b(org_b: Organization) -> Dashboard:
    return Dashboard.objects.create(org=org_b, title="Sales B")


def session_of(user: User) -> str:
    """A real signed-in session (Django's login) for `user`."""
    return make_client(user).cookies[COOKIE].value


def kiosk_token(org: Organization, dashboard: Dashboard, networks: list[str] | None = None) -> str:
    _, token = do_create_kiosk_link(
        org, name="Lobby TV", dashboards=[dashboard], networks=networks or [], acting=None
    )
    return token


def refusals(org: Organization) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(org_id=org.pk, action="ipfilter.refused").order_by("id"))


# -- talking to the router ----------------------------------------------------------------------


def screen(
    path: str,
    *,
    peer: str,
    session: str | None = None,
    forwarded_for: str | None = None,
) -> WebsocketCommunicator:
    """A websocket as uvicorn hands it to the router: TLS, from `peer`, same-origin."""
    headers = [(b"host", b"localhost"), (b"origin", b"https://localhost")]
    if session is not None:
        headers.append((b"cookie", f"{COOKIE}={session}".encode()))
    if forwarded_for is not None:
        headers.append((b"x-forwarded-for", forwarded_for.encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    communicator.scope["scheme"] = "wss"
    communicator.scope["client"] = (peer, 50000)
    return communicator


def board_path(dashboard: Dashboard) -> str:
    return f"/ws/dashboards/{dashboard.pk}/"


def kiosk_path(token: str, dashboard: Dashboard) -> str:
    return f"/ws/kiosk/{token}/{dashboard.pk}/"


async def opened(communicator: WebsocketCommunicator) -> dict[str, Any]:
    """Connect, expect acceptance and the dashboard's data."""
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    assert first["type"] == "data", first
    return first  # type: ignore[no-any-return]


async def refused_after_accept(communicator: WebsocketCommunicator) -> tuple[int, str]:
    """The server accepts, says why it closes, closes: (code, reason)."""
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    message = await communicator.receive_json_from(timeout=5)
    assert message["type"] == "closed" and set(message) == {"type", "reason"}, message
    close = await communicator.receive_output(timeout=5)
    assert close["type"] == "websocket.close"
    await communicator.wait(timeout=5)
    return close["code"], message["reason"]


async def closed_with(communicator: WebsocketCommunicator) -> tuple[int, str]:
    """An open socket's next messages are {"type": "closed"} and the close: (code, reason)."""
    message = await communicator.receive_json_from(timeout=5)
    assert message["type"] == "closed", message
    close = await communicator.receive_output(timeout=5)
    assert close["type"] == "websocket.close"
    await communicator.disconnect()
    return close["code"], message["reason"]


REFUSED = (4403, "address_not_allowed")


async def get(
    path: str,
    *,
    peer: str,
    session: str | None = None,
    forwarded_for: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, bytes]:
    """One HTTPS GET through the router: (status, body)."""
    sent = [(b"host", b"localhost"), *(headers or [])]
    if session is not None:
        sent.append((b"cookie", f"{COOKIE}={session}".encode()))
    if forwarded_for is not None:
        sent.append((b"x-forwarded-for", forwarded_for.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": sent,
        "client": (peer, 5000),
        "server": ("localhost", 443),
    }
    app = ApplicationCommunicator(application, scope)
    await app.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await app.receive_output(timeout=10)
    body = b""
    while True:
        message = await app.receive_output(timeout=10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return start["status"], body


def says_refused(body: bytes, ip: str) -> bool:
    """The refusal's plain explanation, naming the address that was filtered."""
    return f"and {ip} is not one of them".encode() in body and b"office network or VPN" in body


# == session websockets ==========================================================================


@pytest.mark.parametrize(("inside", "outside"), FAMILIES)
@pytest.mark.parametrize(("who", "which"), [("viewer_a", "sales"), ("admin_a", "board")])
async def test_session_sockets_open_inside_the_networks_and_are_refused_outside(
    filtered: Organization,
    dashboards_a: dict[str, Any],
    admin_a: User,
    viewer_a: User,
    who: str,
    which: str,
    inside: str,
    outside: str,
) -> None:
    user = {"admin_a": admin_a, "viewer_a": viewer_a}[who]
    dashboard = dashboards_a[which]
    session = await sync_to_async(session_of)(user)
    communicator = screen(board_path(dashboard), peer=inside, session=session)
    assert (await opened(communicator))["dashboard"] == str(dashboard.pk)
    await communicator.disconnect()

    refused = screen(board_path(dashboard), peer=outside, session=session)
    assert await refused_after_accept(refused) == REFUSED
    (entry,) = await sync_to_async(refusals)(filtered)
    assert (entry.ip, entry.actor_id, entry.actor_kind) == (outside, user.pk, "user")


@pytest.mark.parametrize("address", ["203.0.113.9", "2001:db8:b::9"])
async def test_session_sockets_of_an_unfiltered_org_open_from_anywhere(
    org_a: Organization, org_b: Organization, viewer_a: User, sales: Dashboard, address: str
) -> None:
    await database_sync_to_async(restrict)(org_b, *ORG_NETWORKS)  # another org's filter
    communicator = screen(
        board_path(sales), peer=address, session=await sync_to_async(session_of)(viewer_a)
    )
    await opened(communicator)
    await communicator.disconnect()


# == kiosk websockets ============================================================================


@pytest.mark.parametrize(("inside", "outside"), FAMILIES)
async def test_kiosk_sockets_open_inside_the_networks_and_are_refused_outside(
    filtered: Organization, sales: Dashboard, inside: str, outside: str
) -> None:
    token = await database_sync_to_async(kiosk_token)(filtered, sales)
    communicator = screen(kiosk_path(token, sales), peer=inside)
    await opened(communicator)
    await communicator.disconnect()
    assert await refused_after_accept(screen(kiosk_path(token, sales), peer=outside)) == REFUSED


@pytest.mark.parametrize(
    ("link_networks", "narrower_inside", "org_inside_only"),
    [
        pytest.param(["10.20.5.0/24"], "10.20.5.9", "10.20.3.4", id="ipv4"),
        pytest.param(["2001:db8:a:5::/64"], "2001:db8:a:5::9", "2001:db8:a:3::4", id="ipv6"),
    ],
)
async def test_a_kiosk_links_own_networks_narrow_its_sockets(
    filtered: Organization,
    sales: Dashboard,
    link_networks: list[str],
    narrower_inside: str,
    org_inside_only: str,
) -> None:
    token = await database_sync_to_async(kiosk_token)(filtered, sales, link_networks)
    communicator = screen(kiosk_path(token, sales), peer=narrower_inside)
    await opened(communicator)
    await communicator.disconnect()
    refused = screen(kiosk_path(token, sales), peer=org_inside_only)
    assert await refused_after_accept(refused) == REFUSED


async def test_kiosk_sockets_of_an_unfiltered_org_open_from_anywhere(
    org_a: Organization, org_b: Organization, sales: Dashboard
) -> None:
    await database_sync_to_async(restrict)(org_b, *ORG_NETWORKS)
    token = await database_sync_to_async(kiosk_token)(org_a, sales)
    for address in ("203.0.113.9", "2001:db8:b::9"):
        communicator = screen(kiosk_path(token, sales), peer=address)
        await opened(communicator)
        await communicator.disconnect()


# == open screens meet a changed filter ==========================================================


@pytest.mark.parametrize(
    ("excluded", "still_inside", "narrower"),
    [
        pytest.param("10.20.3.4", "10.20.9.9", ["10.20.9.0/24"], id="ipv4"),
        pytest.param("2001:db8:a:3::4", "2001:db8:a:9::9", ["2001:db8:a:9::/64"], id="ipv6"),
    ],
)
async def test_changing_the_filter_sends_every_screen_of_the_org_back_through_it(
    filtered: Organization,
    viewer_a: User,
    admin_b: User,
    staff: User,
    sales: Dashboard,
    sales_b: Dashboard,
    excluded: str,
    still_inside: str,
    narrower: list[str],
) -> None:
    viewer = await sync_to_async(session_of)(viewer_a)
    token = await database_sync_to_async(kiosk_token)(filtered, sales)
    person = screen(board_path(sales), peer=excluded, session=viewer)
    tv = screen(kiosk_path(token, sales), peer=excluded)
    other_person = screen(board_path(sales), peer=still_inside, session=viewer)
    other_org = screen(
        board_path(sales_b), peer=excluded, session=await sync_to_async(session_of)(admin_b)
    )
    for communicator in (person, tv, other_person, other_org):
        await opened(communicator)

    await database_sync_to_async(restrict)(filtered, *narrower, acting=staff)

    # Every screen of the org closes (4000) and reconnects through the new filter...
    for communicator in (person, tv, other_person):
        assert await closed_with(communicator) == (4000, "access_changed")
    # ...another org's screen is left alone.
    assert await other_org.receive_nothing(timeout=0.3)

    # The reconnects: refused from the excluded address, admitted from the one still inside.
    again = screen(board_path(sales), peer=excluded, session=viewer)
    assert await refused_after_accept(again) == REFUSED
    assert await refused_after_accept(screen(kiosk_path(token, sales), peer=excluded)) == REFUSED
    for communicator in (
        screen(board_path(sales), peer=still_inside, session=viewer),
        screen(kiosk_path(token, sales), peer=still_inside),
    ):
        await opened(communicator)
        await communicator.disconnect()
    assert await other_org.receive_nothing(timeout=0.1)
    await other_org.disconnect()


def set_on_the_staff_page(org: Organization, staff: User, networks: list[str]) -> None:
    browser = make_client(staff)
    response = browser.post(f"/staff/orgs/{org.pk}/networks/", {"networks": "\n".join(networks)})
    assert response.status_code == 302


def set_with_the_command(org: Organization, staff: User, networks: list[str]) -> None:
    call_command("networks", str(org.pk), "--set", *networks, stdout=io.StringIO())


@pytest.mark.parametrize("how", [set_on_the_staff_page, set_with_the_command])
async def test_turning_the_filter_on_closes_screens_of_an_unfiltered_org(
    org_a: Organization, viewer_a: User, staff: User, sales: Dashboard, how: Any
) -> None:
    viewer = await sync_to_async(session_of)(viewer_a)
    token = await database_sync_to_async(kiosk_token)(org_a, sales)
    person = screen(board_path(sales), peer="203.0.113.9", session=viewer)
    tv = screen(kiosk_path(token, sales), peer="203.0.113.9")
    await opened(person)
    await opened(tv)

    await database_sync_to_async(how)(org_a, staff, ORG_NETWORKS)

    assert await closed_with(person) == (4000, "access_changed")
    assert await closed_with(tv) == (4000, "access_changed")
    refused = screen(board_path(sales), peer="203.0.113.9", session=viewer)
    assert await refused_after_accept(refused) == REFUSED
    refused = screen(kiosk_path(token, sales), peer="203.0.113.9")
    assert await refused_after_accept(refused) == REFUSED


async def test_a_rejected_change_closes_no_screen(
    filtered: Organization, viewer_a: User, sales: Dashboard
) -> None:
    from django.core.exceptions import ValidationError

    person = screen(
        board_path(sales), peer="10.20.3.4", session=await sync_to_async(session_of)(viewer_a)
    )
    await opened(person)
    with pytest.raises(ValidationError):
        await database_sync_to_async(restrict)(filtered, "10.20.9.0/24", "nope")
    assert await person.receive_nothing(timeout=0.3)
    await person.disconnect()


# == warm reads (the router's fast path for /dashboards/<id>/data/) ===============================


@pytest.fixture
def warm_hits(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per data request, whether the router answered it without Django."""
    from dashvault.live import warm

    hits: list[bool] = []
    real = warm.answer

    async def spying(*args: Any) -> bool:
        answered = await real(*args)
        hits.append(answered)
        return answered

    monkeypatch.setattr(warm, "answer", spying)
    return hits


def data_path(dashboard: Dashboard) -> str:
    return f"/dashboards/{dashboard.pk}/data/"


@pytest.mark.parametrize(("inside", "outside"), FAMILIES)
async def test_an_admission_from_an_allowed_address_serves_no_other_address(
    filtered: Organization,
    viewer_a: User,
    sales: Dashboard,
    warm_hits: list[bool],
    inside: str,
    outside: str,
) -> None:
    viewer = await sync_to_async(session_of)(viewer_a)
    assert (await get(data_path(sales), peer=inside, session=viewer))[0] == 200
    assert (await get(data_path(sales), peer=inside, session=viewer))[0] == 200
    status, body = await get(data_path(sales), peer=outside, session=viewer)
    assert status == 403 and says_refused(body, outside)
    assert warm_hits == [False, True, False]  # the third went through Django, which refused


@pytest.mark.parametrize(
    ("excluded", "narrower"),
    [
        pytest.param("10.20.3.4", ["10.20.9.0/24"], id="ipv4"),
        pytest.param("2001:db8:a:3::4", ["2001:db8:a:9::/64"], id="ipv6"),
    ],
)
async def test_after_a_change_an_admission_from_a_now_refused_address_no_longer_answers(
    filtered: Organization,
    viewer_a: User,
    admin_b: User,
    sales: Dashboard,
    sales_b: Dashboard,
    warm_hits: list[bool],
    excluded: str,
    narrower: list[str],
) -> None:
    viewer, other = (
        await sync_to_async(session_of)(viewer_a),
        await sync_to_async(session_of)(admin_b),
    )
    for _ in range(2):
        assert (await get(data_path(sales), peer=excluded, session=viewer))[0] == 200
        assert (await get(data_path(sales_b), peer=excluded, session=other))[0] == 200
    assert warm_hits == [False, False, True, True]  # both admitted, both answered warm

    await database_sync_to_async(restrict)(filtered, *narrower)

    status, body = await get(data_path(sales), peer=excluded, session=viewer)
    assert status == 403 and says_refused(body, excluded)
    # Another org's admission is untouched by this org's change.
    assert (await get(data_path(sales_b), peer=excluded, session=other))[0] == 200
    assert warm_hits[4:] == [False, True]


# == the client address through trusted proxies ==================================================

# (connection peer, X-Forwarded-For, the address the filter must see)
THROUGH_PROXIES = [
    pytest.param("172.16.0.2", "10.20.3.4", "10.20.3.4", id="trusted-proxy"),
    pytest.param("172.16.0.2", "203.0.113.9", "203.0.113.9", id="trusted-proxy-outside"),
    # The right-most untrusted hop is the client; what it wrote to the left is ignored.
    pytest.param("172.16.0.2", "203.0.113.9, 10.20.3.4", "10.20.3.4", id="left-hop-ignored"),
    pytest.param("172.16.0.2", "10.20.3.4, 203.0.113.9", "203.0.113.9", id="right-most-hop"),
    pytest.param("172.16.0.2", "10.20.3.4, 172.16.0.9", "10.20.3.4", id="two-proxies"),
    pytest.param("172.16.0.2", None, "172.16.0.2", id="proxy-without-header"),
    # From an untrusted client the header is ignored: the connection is the client.
    pytest.param("203.0.113.9", "10.20.3.4", "203.0.113.9", id="spoofed"),
    pytest.param("10.20.3.4", "203.0.113.9", "10.20.3.4", id="spoofed-harmlessly"),
    pytest.param("fd00::2", "2001:db8:a::4", "2001:db8:a::4", id="ipv6-proxy"),
    pytest.param("fd00::2", "2001:db8:a::4, 2001:db8:b::9", "2001:db8:b::9", id="ipv6-right-most"),
    pytest.param("2001:db8:b::9", "2001:db8:a::4", "2001:db8:b::9", id="ipv6-spoofed"),
    pytest.param("172.16.0.2", "2001:db8:a::4", "2001:db8:a::4", id="ipv4-proxy-ipv6-client"),
]


def admitted(address: str) -> bool:
    return address in ("10.20.3.4", "2001:db8:a::4")


@pytest.mark.parametrize(("peer", "forwarded_for", "seen"), THROUGH_PROXIES)
async def test_pages_filter_the_address_the_router_resolves(
    trusted_proxies: None,
    filtered: Organization,
    viewer_a: User,
    peer: str,
    forwarded_for: str | None,
    seen: str,
) -> None:
    viewer = await sync_to_async(session_of)(viewer_a)
    status, body = await get("/dashboards/", peer=peer, session=viewer, forwarded_for=forwarded_for)
    if admitted(seen):
        assert status == 200
        assert not await sync_to_async(refusals)(filtered)
    else:
        assert status == 403 and says_refused(body, seen)
        (entry,) = await sync_to_async(refusals)(filtered)
        assert entry.ip == seen  # audited with the client's address, not the proxy's


@pytest.mark.parametrize(("peer", "forwarded_for", "seen"), THROUGH_PROXIES)
async def test_api_tokens_filter_the_address_the_router_resolves(
    trusted_proxies: None,
    filtered: Organization,
    admin_a: User,
    peer: str,
    forwarded_for: str | None,
    seen: str,
) -> None:
    _, secret = await database_sync_to_async(do_create_token)(
        filtered, "CI", ["read"], expires_at=None, acting=admin_a
    )
    status, body = await get(
        "/api/v1/metrics",
        peer=peer,
        forwarded_for=forwarded_for,
        headers=[(b"authorization", f"Bearer {secret}".encode())],
    )
    if admitted(seen):
        assert (status, body) == (200, b"[]")
    else:
        assert status == 403 and says_refused(body, seen)


@pytest.mark.parametrize(("peer", "forwarded_for", "seen"), THROUGH_PROXIES)
async def test_kiosk_pages_filter_the_address_the_router_resolves(
    trusted_proxies: None,
    filtered: Organization,
    sales: Dashboard,
    peer: str,
    forwarded_for: str | None,
    seen: str,
) -> None:
    token = await database_sync_to_async(kiosk_token)(filtered, sales)
    status, body = await get(f"/kiosk/{token}", peer=peer, forwarded_for=forwarded_for)
    if admitted(seen):
        assert status == 200 and b"Sales A" in body
    else:
        assert status == 403 and says_refused(body, seen)


@pytest.mark.parametrize(("peer", "forwarded_for", "seen"), THROUGH_PROXIES)
async def test_sockets_filter_the_address_the_router_resolves(
    trusted_proxies: None,
    filtered: Organization,
    viewer_a: User,
    sales: Dashboard,
    peer: str,
    forwarded_for: str | None,
    seen: str,
) -> None:
    viewer = await sync_to_async(session_of)(viewer_a)
    token = await database_sync_to_async(kiosk_token)(filtered, sales)
    for communicator in (
        screen(board_path(sales), peer=peer, session=viewer, forwarded_for=forwarded_for),
        screen(kiosk_path(token, sales), peer=peer, forwarded_for=forwarded_for),
    ):
        if admitted(seen):
            await opened(communicator)
            await communicator.disconnect()
        else:
            assert await refused_after_accept(communicator) == REFUSED
    if not admitted(seen):
        entries = await sync_to_async(refusals)(filtered)
        assert [(e.actor_kind, e.ip) for e in entries] == [("user", seen), ("kiosk", seen)]


async def test_warm_reads_through_a_proxy_are_keyed_by_the_forwarded_client(
    trusted_proxies: None,
    filtered: Organization,
    viewer_a: User,
    sales: Dashboard,
    warm_hits: list[bool],
) -> None:
    viewer = await sync_to_async(session_of)(viewer_a)
    path = data_path(sales)
    assert (await get(path, peer="172.16.0.2", session=viewer, forwarded_for="10.20.3.4"))[0] == 200
    assert (await get(path, peer="172.16.0.3", session=viewer, forwarded_for="10.20.3.4"))[0] == 200
    # Same proxy, another client behind it: not the admitted address, so Django refuses.
    status, body = await get(path, peer="172.16.0.2", session=viewer, forwarded_for="203.0.113.9")
    assert status == 403 and says_refused(body, "203.0.113.9")
    # A spoofed header from an untrusted client does not borrow the admission either.
    status, body = await get(path, peer="203.0.113.9", session=viewer, forwarded_for="10.20.3.4")
    assert status == 403 and says_refused(body, "203.0.113.9")
    assert warm_hits == [False, True, False, False]


async def test_without_trusted_proxies_forwarded_for_is_ignored_everywhere(
    filtered: Organization, viewer_a: User, sales: Dashboard
) -> None:
    # The real settings: DASHVAULT_TRUSTED_PROXIES is unset in tests, so no peer is trusted.
    assert not application.trusted
    viewer = await sync_to_async(session_of)(viewer_a)
    status, body = await get(
        "/dashboards/", peer="127.0.0.1", session=viewer, forwarded_for="10.20.3.4"
    )
    assert status == 403 and says_refused(body, "127.0.0.1")
    spoofed = screen(board_path(sales), peer="127.0.0.1", session=viewer, forwarded_for="10.20.3.4")
    assert await refused_after_accept(spoofed) == REFUSED
