"""Kiosk links (DESIGN C5): 256-bit tokens kept only as hashes, the admin pages, the TV page,
the link's subset of dashboards on every way in, kiosk websockets, the audit trail and the logs.
The guessing guard has its own file (test_guard.py)."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from html import unescape
from io import BytesIO
from typing import Any

import pytest
import pytest_asyncio
import qrcode
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from qrcode.image.svg import SvgPathImage

from dashvault.accounts.models import User
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.kiosk.actions import (
    SHOWN_PREFIX,
    do_create_kiosk_link,
    do_revoke_kiosk_link,
    do_rotate_kiosk_link,
    do_update_kiosk_link,
)
from dashvault.kiosk.models import KioskLink
from dashvault.lib import tokens
from dashvault.lib.logfilter import RedactSecrets
from dashvault.lib.tokens import hash_token
from dashvault.live.hub import hub
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Organization
from tests.conftest import SecureClient, make_client
from tests.test_live import closed_with, ingest, opened, refused_after_accept, session_of, socket

TOKEN_RE = re.compile(r"dvk_[A-Za-z0-9_-]{43}")


# -- helpers and fixtures ----------------------------------------------------------------------


def new_link(
    dashboards: list[Dashboard], *, acting: User | None = None, **settings: Any
) -> tuple[KioskLink, str]:
    """A kiosk link of the dashboards' org, made by the action itself: (row, token)."""
    settings.setdefault("name", "Sales floor TV")
    return do_create_kiosk_link(dashboards[0].org, dashboards=dashboards, acting=acting, **settings)


def tv(token: str, client: Client | None = None, **extra: Any) -> Any:
    return (client or SecureClient()).get(f"/kiosk/{token}", **extra)


def ws_path(token: str, dashboard: Dashboard) -> str:
    return f"/ws/kiosk/{token}/{dashboard.pk}/"


def kiosk_socket(token: str, dashboard: Dashboard, **kwargs: Any) -> Any:
    return socket(None, path=ws_path(token, dashboard), **kwargs)


def form_data(
    chosen: list[Dashboard], *, name: str = "Sales floor TV", **fields: str
) -> dict[str, str]:
    """The kiosk form's POST: `chosen` ticked, positioned in the list's order."""
    data = {"name": name, "rotation_seconds": "30", "expires_on": "", "networks": ""}
    for position, dashboard in enumerate(chosen, start=1):
        data[f"show_{dashboard.pk}"] = "on"
        data[f"order_{dashboard.pk}"] = str(position)
    data.update(fields)
    return data


def order_of(link: KioskLink) -> list[str]:
    return [entry.dashboard.title for entry in link.entries.select_related("dashboard")]


def all_stored_text() -> str:
    """Every value of every table in the database, as text."""
    parts: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            # Table names come from the database's own catalogue, quoted.
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, memoryview | bytes):
                        value = bytes(value).decode("latin-1")
                    parts.append(str(value))
    return "\n".join(parts)


def secret_pieces(token: str) -> list[str]:
    """Every 12-character piece of the token's secret part beyond the prefix lists show."""
    hidden = token[SHOWN_PREFIX:]
    return [hidden[i : i + 12] for i in range(len(hidden) - 11)]


@pytest.fixture
def ops(org_a: Organization) -> Dashboard:
    return Dashboard.objects.create(org=org_a, title="Ops A")


@pytest.fixture
def sales_b(org_b: Organization) -> Dashboard:
    return Dashboard.objects.create(org=org_b, title="Sales B")


@pytest.fixture
def boards(dashboards_a: dict[str, Any], ops: Dashboard) -> dict[str, Dashboard]:
    """Org A's three dashboards: "Sales A", "Board A", "Ops A"."""
    return {"sales": dashboards_a["sales"], "board": dashboards_a["board"], "ops": ops}


@pytest.fixture
def link(boards: dict[str, Dashboard], admin_a: User) -> tuple[KioskLink, str]:
    """Org A's link showing "Ops A" then "Sales A" (never "Board A")."""
    return new_link([boards["ops"], boards["sales"]], acting=admin_a)


# -- tokens: entropy and hashing ---------------------------------------------------------------


def test_a_token_is_dvk_and_43_url_safe_characters_from_secrets(
    boards: dict[str, Dashboard], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    real = tokens.secrets.token_urlsafe

    def spy(nbytes: int) -> str:
        asked.append(nbytes)
        return real(nbytes)

    monkeypatch.setattr(tokens.secrets, "token_urlsafe", spy)
    _, token = new_link([boards["sales"]])
    assert asked == [32]  # 256 bits from the OS CSPRNG
    assert TOKEN_RE.fullmatch(token), token
    assert len(token) - len("dvk_") >= 43


def test_tokens_are_all_distinct(boards: dict[str, Dashboard]) -> None:
    made = {new_link([boards["sales"]])[1] for _ in range(25)}
    made |= {tokens.new_token("dvk_") for _ in range(2000)}
    assert len(made) == 2025
    # Not even their first secret characters repeat much: no structure beyond the prefix.
    assert len({token[4:12] for token in made}) == 2025


def test_the_database_keeps_only_the_tokens_sha256(
    boards: dict[str, Dashboard], admin_a: User
) -> None:
    admin = make_client(admin_a)
    response = admin.post(reverse("kiosk_new"), form_data([boards["sales"], boards["ops"]]))
    first = TOKEN_RE.search(response.content.decode())
    assert first is not None
    link = KioskLink.objects.get()
    tv(first.group())  # a screen opened it (last use, audit)
    rotated = TOKEN_RE.search(admin.post(reverse("kiosk_rotate", args=[link.pk])).content.decode())
    assert rotated is not None
    tv(rotated.group())

    link.refresh_from_db()
    assert link.token_hash == hash_token(rotated.group())
    stored = all_stored_text()  # every table, the kiosk links and the audit log among them
    for token in (first.group(), rotated.group()):
        assert token not in stored
        for piece in secret_pieces(token):
            assert piece not in stored, piece
    # The per-field scan, spelled out for the link row itself.
    row = KioskLink.objects.filter(pk=link.pk).values().get()
    for value in row.values():
        for piece in secret_pieces(rotated.group()):
            assert piece not in str(value)


def test_lists_show_only_a_short_prefix(link: tuple[KioskLink, str], admin_a: User) -> None:
    row, token = link
    assert row.prefix == token[:SHOWN_PREFIX]
    assert len(row.prefix) <= len("dvk_") + 6  # 36 bits shown at most, 220 stay secret
    page = make_client(admin_a).get(reverse("kiosk_list")).content.decode()
    assert f"/kiosk/{row.prefix}…" in page
    assert token[: SHOWN_PREFIX + 1] not in page


# -- admin pages -------------------------------------------------------------------------------


def test_an_admin_creates_a_link_of_two_of_three_dashboards_in_the_chosen_order(
    boards: dict[str, Dashboard], admin_a: User
) -> None:
    data = form_data([], name="Lobby TV")
    data.update(
        {
            # The form lists them by title (Board, Ops, Sales); the positions reverse that.
            f"show_{boards['sales'].pk}": "on",
            f"order_{boards['sales'].pk}": "1",
            f"show_{boards['ops'].pk}": "on",
            f"order_{boards['ops'].pk}": "7",
            f"order_{boards['board'].pk}": "3",  # positioned, but not ticked
        }
    )
    response = make_client(admin_a).post(reverse("kiosk_new"), data)
    assert response.status_code == 200
    link = KioskLink.objects.get()
    assert (link.name, link.org_id, link.created_by_id) == ("Lobby TV", admin_a.org_id, admin_a.pk)
    assert order_of(link) == ["Sales A", "Ops A"]
    assert list(link.entries.values_list("position", flat=True)) == [0, 1]
    assert link.rotation_seconds == 30 and link.expires_at is None and link.networks == []


def test_the_created_page_shows_the_url_with_a_qr_code_and_is_never_cached(
    boards: dict[str, Dashboard], admin_a: User
) -> None:
    response = make_client(admin_a).post(reverse("kiosk_new"), form_data([boards["sales"]]))
    page = response.content.decode()
    token = TOKEN_RE.search(page)
    assert token is not None
    url = f"https://testserver/kiosk/{token.group()}"
    assert page.count(url) == 1  # shown once, in the field to copy
    assert response["Cache-Control"] == "no-store"
    # The QR code is an inline SVG of exactly that URL.
    svg = re.search(r'<p class="qr" id="kiosk-qr">(.*?)</p>', page, re.S)
    assert svg is not None and "<svg" in svg.group(1)
    expected = BytesIO()
    qrcode.make(url, image_factory=SvgPathImage, box_size=8, border=2).save(expected)
    assert svg.group(1) == expected.getvalue().decode()
    # The token opens the TV page.
    assert tv(token.group()).status_code == 200


def test_the_full_token_is_never_shown_again(link: tuple[KioskLink, str], admin_a: User) -> None:
    row, token = link
    admin = make_client(admin_a)
    for url in (reverse("kiosk_list"), reverse("kiosk_edit", args=[row.pk]), reverse("kiosk_new")):
        page = admin.get(url).content.decode()
        assert token not in page
        assert not any(piece in page for piece in secret_pieces(token)), url
    # Rotating shows the new token once; afterwards the list shows neither.
    rotated = TOKEN_RE.search(admin.post(reverse("kiosk_rotate", args=[row.pk])).content.decode())
    assert rotated is not None and rotated.group() != token
    page = admin.get(reverse("kiosk_list")).content.decode()
    assert token not in page and rotated.group() not in page


def test_the_list_shows_when_and_from_where_a_tv_last_opened_it(
    link: tuple[KioskLink, str], admin_a: User
) -> None:
    row, token = link
    admin = make_client(admin_a)
    assert "never" in admin.get(reverse("kiosk_list")).content.decode()
    assert tv(token, REMOTE_ADDR="203.0.113.9").status_code == 200
    row.refresh_from_db()
    assert row.last_used_ip == "203.0.113.9"
    assert row.last_used_at is not None and timezone.now() - row.last_used_at < dt.timedelta(
        minutes=1
    )
    page = admin.get(reverse("kiosk_list")).content.decode()
    assert f"{row.last_used_at:%Y-%m-%d %H:%M} from <code>203.0.113.9</code>" in page


def test_editing_changes_dashboards_rotation_expiry_and_networks(
    link: tuple[KioskLink, str], boards: dict[str, Dashboard], admin_a: User, org_a: Organization
) -> None:
    org_a.time_zone = "Europe/Helsinki"
    org_a.save()
    row, token = link
    day = timezone.now().date() + dt.timedelta(days=30)
    data = form_data(
        [boards["board"], boards["sales"]],
        name="Lobby TV",
        rotation_seconds="60",
        expires_on=day.isoformat(),
        networks="203.0.113.7/24\n2001:db8::1/48, 203.0.113.0/24",
    )
    response = make_client(admin_a).post(reverse("kiosk_edit", args=[row.pk]), data)
    assert response.status_code == 302 and response["Location"] == reverse("kiosk_list")
    row.refresh_from_db()
    assert row.name == "Lobby TV" and row.rotation_seconds == 60
    assert order_of(row) == ["Board A", "Sales A"]
    helsinki = zoneinfo.ZoneInfo("Europe/Helsinki")
    assert row.expires_at == dt.datetime.combine(day, dt.time.min, tzinfo=helsinki)
    assert row.networks == ["203.0.113.0/24", "2001:db8::/48"]  # canonical, no duplicate
    assert row.token_hash == hash_token(token)  # same link, same address


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"show": []}, "Choose at least one dashboard to show."),
        ({"networks": "10.0.0.300/8"}, "'10.0.0.300/8' is not an IPv4 or IPv6 network"),
        ({"networks": "office"}, "'office' is not an IPv4 or IPv6 network"),
        ({"rotation_seconds": "5"}, "Ensure this value is greater than or equal to 10."),
        ({"rotation_seconds": "3601"}, "Ensure this value is less than or equal to 3600."),
        ({"expires_on": "yesterday"}, "The expiry must be in the future."),
        ({"expires_on": "today"}, "The expiry must be in the future."),
    ],
    ids=[
        "no dashboard",
        "bad CIDR",
        "not a network",
        "rotation 5",
        "rotation 3601",
        "past",
        "today",
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(
    change: dict[str, Any],
    message: str,
    link: tuple[KioskLink, str],
    boards: dict[str, Dashboard],
    admin_a: User,
) -> None:
    row, _ = link
    data = form_data(change.get("show", [boards["sales"]]))
    data.update({k: v for k, v in change.items() if k != "show"})
    if data["expires_on"] in ("yesterday", "today"):
        shift = -1 if data["expires_on"] == "yesterday" else 0
        data["expires_on"] = (timezone.now().date() + dt.timedelta(days=shift)).isoformat()
    admin = make_client(admin_a)
    before = KioskLink.objects.filter(pk=row.pk).values().get()

    created = admin.post(reverse("kiosk_new"), data)
    edited = admin.post(reverse("kiosk_edit", args=[row.pk]), data)

    for response in (created, edited):
        assert response.status_code == 400
        assert message in unescape(response.content.decode())
    assert KioskLink.objects.count() == 1  # nothing created
    assert KioskLink.objects.filter(pk=row.pk).values().get() == before  # nothing changed
    assert order_of(row) == ["Ops A", "Sales A"]


def test_another_orgs_dashboard_is_never_put_on_a_link(
    link: tuple[KioskLink, str], boards: dict[str, Dashboard], sales_b: Dashboard, admin_a: User
) -> None:
    row, _ = link
    admin = make_client(admin_a)
    foreign = {f"show_{sales_b.pk}": "on", f"order_{sales_b.pk}": "1"}
    # Only the foreign one: refused.
    response = admin.post(reverse("kiosk_new"), {**form_data([]), **foreign})
    assert response.status_code == 400 and "Sales B" not in response.content.decode()
    # Smuggled in next to an own one: ignored.
    response = admin.post(reverse("kiosk_edit", args=[row.pk]), {**form_data([]), **foreign})
    assert response.status_code == 400
    response = admin.post(
        reverse("kiosk_edit", args=[row.pk]), {**form_data([boards["board"]]), **foreign}
    )
    assert response.status_code == 302
    assert order_of(row) == ["Board A"]
    # And the action holds the rule for every other caller.
    with pytest.raises(ValidationError):
        new_link([boards["sales"], sales_b])
    with pytest.raises(ValidationError):
        do_update_kiosk_link(
            row,
            name="x",
            dashboards=[sales_b],
            rotation_seconds=30,
            expires_at=None,
            networks=[],
            acting=admin_a,
            ip=None,
        )
    assert order_of(row) == ["Board A"]


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"dashboards": []}, "dashboards"),
        ({"rotation_seconds": 9}, "rotation_seconds"),
        ({"rotation_seconds": 3601}, "rotation_seconds"),
        ({"expires_at": "past"}, "expires_at"),
        ({"networks": ["10.0.0.0/8", "not a network"]}, "networks"),
    ],
)
def test_the_action_itself_refuses_bad_settings(
    settings: dict[str, Any], field: str, boards: dict[str, Dashboard]
) -> None:
    """Forms are one caller; the action holds every rule for the others (commands, shells)."""
    if settings.get("expires_at") == "past":
        settings["expires_at"] = timezone.now() - dt.timedelta(minutes=1)
    arguments = {"dashboards": [boards["sales"]], **settings}
    with pytest.raises(ValidationError) as refused:
        do_create_kiosk_link(boards["sales"].org, name="TV", acting=None, **arguments)
    assert set(refused.value.message_dict) == {field}
    assert not KioskLink.objects.exists()


def test_a_revoked_link_cannot_be_rotated_back_to_life(
    link: tuple[KioskLink, str], admin_a: User
) -> None:
    row, token = link
    admin = make_client(admin_a)
    assert admin.post(reverse("kiosk_revoke", args=[row.pk])).status_code == 302
    response = admin.post(reverse("kiosk_rotate", args=[row.pk]), follow=True)
    assert "A revoked link cannot be rotated." in response.content.decode()
    assert not TOKEN_RE.search(response.content.decode())
    row.refresh_from_db()
    assert row.token_hash == hash_token(token) and row.status == "revoked"


# -- the TV page -------------------------------------------------------------------------------


@pytest.mark.parametrize("slash", ["", "/"])
def test_the_tv_page_shows_the_links_dashboards_only_in_order(
    slash: str, link: tuple[KioskLink, str], sales_b: Dashboard
) -> None:
    _, token = link
    response = SecureClient().get(f"/kiosk/{token}{slash}")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Ops A" in page and "Sales A" in page
    assert page.index('data-title="Ops A"') < page.index('data-title="Sales A"')
    assert "Board A" not in page and "Sales B" not in page


def test_two_links_on_the_same_dashboards_keep_their_own_order(
    link: tuple[KioskLink, str], boards: dict[str, Dashboard]
) -> None:
    _, first = link
    _, second = new_link([boards["sales"], boards["board"], boards["ops"]])
    for token, titles in ((first, ["Ops A", "Sales A"]), (second, ["Sales A", "Board A", "Ops A"])):
        page = tv(token).content.decode()
        assert re.findall(r'<section class="kiosk-board"[^>]*data-title="([^"]+)"', page) == titles


def test_the_tv_page_is_never_referred_indexed_cached_or_given_a_cookie(
    link: tuple[KioskLink, str],
) -> None:
    _, token = link
    for response in (tv(token), tv("dvk_" + "x" * 43), SecureClient().post(f"/kiosk/{token}")):
        assert response["Referrer-Policy"] == "no-referrer"
        assert "noindex" in response["X-Robots-Tag"]
        assert response["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in response
        assert not response.cookies


def test_unknown_revoked_rotated_and_expired_tokens_get_the_same_404(
    boards: dict[str, Dashboard], admin_a: User
) -> None:
    _, revoked = new_link([boards["sales"]])
    do_revoke_kiosk_link(
        KioskLink.objects.get(token_hash=hash_token(revoked)), acting=admin_a, ip=None
    )
    rotated_row, rotated = new_link([boards["sales"]])
    assert do_rotate_kiosk_link(rotated_row, acting=admin_a, ip=None) != rotated
    expired_row, expired = new_link([boards["sales"]])
    KioskLink.objects.filter(pk=expired_row.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    unknown = tokens.new_token("dvk_")

    answers = [tv(token) for token in (unknown, revoked, rotated, expired, "not-even-a-token")]
    assert {a.status_code for a in answers} == {404}
    assert len({a.content for a in answers}) == 1
    headers = [sorted((k, v) for k, v in a.items() if k != "Date") for a in answers]
    assert all(h == headers[0] for h in headers)
    assert b"This kiosk link no longer works" in answers[0].content


def test_a_link_stops_at_its_expiry(boards: dict[str, Dashboard]) -> None:
    row, token = new_link([boards["sales"]], expires_at=timezone.now() + dt.timedelta(hours=1))
    assert tv(token).status_code == 200
    KioskLink.objects.filter(pk=row.pk).update(expires_at=timezone.now())
    assert tv(token).status_code == 404


def test_the_tv_page_refuses_post_with_405(link: tuple[KioskLink, str]) -> None:
    _, token = link
    assert SecureClient().post(f"/kiosk/{token}").status_code == 405
    assert SecureClient().put(f"/kiosk/{token}/").status_code == 405


def test_a_links_networks_admit_only_their_addresses(
    boards: dict[str, Dashboard],
) -> None:
    _, token = new_link([boards["sales"]], networks=["203.0.113.0/24"])
    assert tv(token, REMOTE_ADDR="203.0.113.50").status_code == 200
    refused = tv(token, REMOTE_ADDR="198.51.100.1")
    assert refused.status_code == 403 and b"Sales A" not in refused.content
    assert AuditEntry.objects.filter(action="ipfilter.refused", actor_kind="kiosk").count() == 1


# -- the link shows its dashboards and nothing else -------------------------------------------


def test_a_kiosk_token_opens_no_dashboard_page_or_data(
    link: tuple[KioskLink, str], boards: dict[str, Dashboard]
) -> None:
    _, token = link
    holder = SecureClient(headers={"Authorization": f"Bearer {token}"})
    holder.get(f"/kiosk/{token}")  # the TV page itself sets nothing that signs in
    for dashboard in (boards["board"], boards["sales"]):
        for name in ("dashboard_detail", "dashboard_data"):
            url = reverse(name, args=[dashboard.pk])
            for response in (holder.get(url), holder.get(url, {"token": token})):
                assert response.status_code == 302, url
                assert response["Location"].startswith("/accounts/login/")


def test_a_kiosk_token_is_no_api_token(link: tuple[KioskLink, str]) -> None:
    _, token = link
    response = SecureClient(headers={"Authorization": f"Bearer {token}"}).get("/api/v1/metrics")
    assert response.status_code == 401
    assert "Sales" not in response.content.decode()


# -- kiosk websockets --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
class TestKioskSockets:
    """A TV's sockets: `/ws/kiosk/<token>/<dashboard>/`, the link alone as credentials."""

    @pytest_asyncio.fixture(autouse=True)
    async def fresh_hub(self) -> AsyncIterator[None]:
        hub.reset()
        yield
        hub.reset()
        await database_sync_to_async(connections.close_all)()

    @pytest.fixture
    def sales(self, boards: dict[str, Dashboard], org_a: Organization) -> Dashboard:
        """ "Sales A" with a KPI on the metric "deals"."""
        metric = Metric.objects.create(org=org_a, key="deals", name="Deals won")
        dashboard = boards["sales"]
        Widget.objects.create(org=org_a, dashboard=dashboard, kind="kpi", metric=metric, config={})
        return dashboard

    async def test_a_screen_gets_its_data_and_live_updates_without_a_session(
        self, link: tuple[KioskLink, str], sales: Dashboard, org_a: Organization
    ) -> None:
        _, token = link
        communicator = kiosk_socket(token, sales)
        first = await opened(communicator)
        widget = await Widget.objects.aget(dashboard=sales)
        assert first["type"] == "data" and first["dashboard"] == str(sales.pk)
        assert not first["widgets"][str(widget.pk)]["value"]

        await database_sync_to_async(ingest)(org_a, 42)
        update = await communicator.receive_json_from(timeout=5)
        assert update["dashboard"] == str(sales.pk)
        assert update["widgets"][str(widget.pk)]["value"] == 42
        await communicator.disconnect()

    async def test_it_refuses_dashboards_not_on_the_link_alike(
        self, link: tuple[KioskLink, str], boards: dict[str, Dashboard], sales_b: Dashboard
    ) -> None:
        _, token = link
        missing = Dashboard(pk="00000000-0000-4000-8000-000000000000")
        for dashboard in (boards["board"], sales_b, missing):
            code = await refused_after_accept(kiosk_socket(token, dashboard))
            assert code == (4404, "not_found")

    async def test_a_session_cookie_does_not_widen_a_kiosk_socket(
        self, link: tuple[KioskLink, str], boards: dict[str, Dashboard], admin_a: User
    ) -> None:
        _, token = link
        session = await sync_to_async(session_of)(admin_a)  # the admin may see "Board A"
        refused = kiosk_socket(token, boards["board"], session=session)
        assert await refused_after_accept(refused) == (4404, "not_found")

    async def test_a_bad_token_is_refused_like_an_ended_link(
        self, boards: dict[str, Dashboard]
    ) -> None:
        for token in (tokens.new_token("dvk_"), "dvp_" + "a" * 43, "x"):
            code = await refused_after_accept(kiosk_socket(token, boards["sales"]))
            assert code == (4410, "link_invalid")

    async def test_another_origin_is_refused_at_the_handshake(
        self, link: tuple[KioskLink, str], sales: Dashboard
    ) -> None:
        _, token = link
        for origin in ("https://evil.example", None, "http://localhost"):
            communicator = kiosk_socket(token, sales, origin=origin)
            connected, _ = await communicator.connect(timeout=5)
            assert not connected, origin

    async def test_revoking_closes_open_screens_and_refuses_the_token_after(
        self,
        link: tuple[KioskLink, str],
        sales: Dashboard,
        boards: dict[str, Dashboard],
        admin_a: User,
    ) -> None:
        row, token = link
        screens = [kiosk_socket(token, sales), kiosk_socket(token, boards["ops"])]
        for communicator in screens:
            await opened(communicator)
        await database_sync_to_async(do_revoke_kiosk_link)(row, acting=admin_a, ip=None)
        for communicator in screens:
            assert await closed_with(communicator) == (4410, "link_revoked")
        again = await refused_after_accept(kiosk_socket(token, sales))
        assert again == (4410, "link_invalid")

    async def test_rotating_closes_open_screens_and_only_the_new_token_works(
        self, link: tuple[KioskLink, str], sales: Dashboard, admin_a: User
    ) -> None:
        row, token = link
        communicator = kiosk_socket(token, sales)
        await opened(communicator)
        fresh = await database_sync_to_async(do_rotate_kiosk_link)(row, acting=admin_a, ip=None)
        assert await closed_with(communicator) == (4410, "link_rotated")
        assert await refused_after_accept(kiosk_socket(token, sales)) == (4410, "link_invalid")
        reopened = kiosk_socket(fresh, sales)
        assert (await opened(reopened))["dashboard"] == str(sales.pk)
        await reopened.disconnect()

    async def test_editing_the_link_makes_its_screens_reload(
        self, link: tuple[KioskLink, str], sales: Dashboard, admin_a: User
    ) -> None:
        row, token = link
        communicator = kiosk_socket(token, sales)
        await opened(communicator)
        await database_sync_to_async(do_update_kiosk_link)(
            row,
            name="Renamed",
            dashboards=[sales],
            rotation_seconds=45,
            expires_at=None,
            networks=[],
            acting=admin_a,
            ip=None,
        )
        assert await closed_with(communicator) == (4001, "link_changed")

    async def test_changing_one_link_leaves_another_links_screens_open(
        self, link: tuple[KioskLink, str], sales: Dashboard, admin_a: User
    ) -> None:
        row, token = link
        _, other = await database_sync_to_async(new_link)([sales])
        doomed, kept = kiosk_socket(token, sales), kiosk_socket(other, sales)
        await opened(doomed)
        await opened(kept)
        await database_sync_to_async(do_revoke_kiosk_link)(row, acting=admin_a, ip=None)
        assert await closed_with(doomed) == (4410, "link_revoked")
        assert await kept.receive_nothing(timeout=0.3)
        await kept.disconnect()

    async def test_a_screen_closes_when_its_link_expires(
        self, boards: dict[str, Dashboard], sales: Dashboard
    ) -> None:
        soon = timezone.now() + dt.timedelta(seconds=1.5)
        _, token = await database_sync_to_async(new_link)([sales], expires_at=soon)
        communicator = kiosk_socket(token, sales)
        await opened(communicator)
        assert await closed_with(communicator) == (4410, "link_expired")
        assert await refused_after_accept(kiosk_socket(token, sales)) == (4410, "link_invalid")

    async def test_a_links_networks_refuse_sockets_from_elsewhere(
        self, boards: dict[str, Dashboard], sales: Dashboard
    ) -> None:
        _, token = await database_sync_to_async(new_link)([sales], networks=["203.0.113.0/24"])
        # The test socket connects from 127.0.0.1.
        assert await refused_after_accept(kiosk_socket(token, sales)) == (
            4403,
            "address_not_allowed",
        )


# -- audit -------------------------------------------------------------------------------------


def test_every_change_and_each_screen_is_audited_with_ids_only(
    boards: dict[str, Dashboard], admin_a: User
) -> None:
    admin = make_client(admin_a)
    created = admin.post(reverse("kiosk_new"), form_data([boards["sales"]], name="Secret Room TV"))
    first = TOKEN_RE.search(created.content.decode())
    assert first is not None
    link = KioskLink.objects.get()
    tv(first.group(), REMOTE_ADDR="203.0.113.9")
    admin.post(
        reverse("kiosk_edit", args=[link.pk]),
        form_data([boards["sales"], boards["ops"]], name="Secret Room TV 2"),
    )
    rotated = TOKEN_RE.search(admin.post(reverse("kiosk_rotate", args=[link.pk])).content.decode())
    assert rotated is not None
    admin.post(reverse("kiosk_revoke", args=[link.pk]))

    entries = list(AuditEntry.objects.filter(action__startswith="kiosk.").order_by("id"))
    assert [e.action for e in entries] == [
        "kiosk.create",
        "kiosk.screen_opened",
        "kiosk.update",
        "kiosk.rotate",
        "kiosk.revoke",
    ]
    for entry in entries:
        assert entry.org_id == admin_a.org_id
        assert (entry.target_type, entry.target_id) == ("kiosklink", str(link.pk))
    changes = [e for e in entries if e.action != "kiosk.screen_opened"]
    assert all((e.actor_kind, e.actor_id) == ("user", admin_a.pk) for e in changes)
    assert entries[0].detail == {"dashboards": 1, "networks": 0}
    assert entries[2].detail == {"dashboards": 2, "networks": 0}
    opened_entry = entries[1]
    assert (opened_entry.actor_kind, opened_entry.actor_id) == ("kiosk", link.pk)
    assert opened_entry.ip == "203.0.113.9"

    rows = "\n".join(str(row) for row in AuditEntry.objects.values_list())
    for secret in (first.group(), rotated.group(), "Secret Room", "Sales A"):
        assert secret not in rows
    for token in (first.group(), rotated.group()):
        assert token[:SHOWN_PREFIX] not in rows
        assert not any(piece in rows for piece in secret_pieces(token))


def test_a_reloading_screen_is_audited_once_per_address(link: tuple[KioskLink, str]) -> None:
    _, token = link
    for _ in range(3):
        assert tv(token, REMOTE_ADDR="203.0.113.9").status_code == 200
    tv(token, REMOTE_ADDR="203.0.113.10")
    opened_from = AuditEntry.objects.filter(action="kiosk.screen_opened").values_list(
        "ip", flat=True
    )
    assert sorted(opened_from) == ["203.0.113.10", "203.0.113.9"]


# -- logs --------------------------------------------------------------------------------------


def test_the_filter_takes_the_token_out_of_a_real_log_record() -> None:
    token = tokens.new_token("dvk_")
    api_token = tokens.new_token("dvp_")
    record = logging.LogRecord(
        "django.request",
        logging.WARNING,
        __file__,
        1,
        "%s: %s (%s)",
        ("Not Found", f"/kiosk/{token}", f"Bearer {api_token}"),
        None,
    )
    assert RedactSecrets().filter(record) is True  # redacts, never drops
    message = record.getMessage()
    assert message == "Not Found: /kiosk/[redacted] (Bearer [redacted])"
    assert token not in message and token[4:] not in message and api_token not in message
    # The websocket path too; nothing else is touched.
    assert RedactSecrets().filter(
        record := logging.LogRecord("x", 20, "", 1, f"/ws/kiosk/{token}/abc/ ok", None, None)
    )
    assert record.getMessage() == "/ws/kiosk/[redacted]/abc/ ok"
    plain = logging.LogRecord("x", 20, "", 1, "%s done", ("/dashboards/",), None)
    RedactSecrets().filter(plain)
    assert (plain.msg, plain.args) == ("%s done", ("/dashboards/",))


@pytest.fixture
def log_streams() -> Iterator[io.StringIO]:
    """Everything the configured handlers on the django.request path write, captured."""
    captured = io.StringIO()
    handlers = [
        handler
        for name in ("django.request", "django", "")
        for handler in logging.getLogger(name).handlers
        if isinstance(handler, logging.StreamHandler) and handler.__class__.__module__ == "logging"
    ]
    assert any(isinstance(f, RedactSecrets) for h in handlers for f in h.filters), (
        "the configured console handler carries the redaction filter"
    )
    previous = [handler.setStream(captured) for handler in handlers]
    yield captured
    for handler, stream in zip(handlers, previous, strict=True):
        handler.setStream(stream)


def test_a_404_for_a_kiosk_token_is_logged_without_the_token(
    link: tuple[KioskLink, str], admin_a: User, log_streams: io.StringIO
) -> None:
    row, token = link
    do_revoke_kiosk_link(row, acting=admin_a, ip=None)
    assert tv(token).status_code == 404
    assert tv(token + "/", REMOTE_ADDR="198.51.100.2").status_code == 404
    logged = log_streams.getvalue()
    assert "Not Found: /kiosk/[redacted]" in logged
    assert token not in logged and token[SHOWN_PREFIX:] not in logged
    assert not any(piece in logged for piece in secret_pieces(token))
