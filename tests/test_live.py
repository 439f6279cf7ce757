"""Live dashboards over websockets: who may open one, what it receives, and when it closes.

Driven through dashvault's own ASGI router (dashvault.asgi), the application `dashvault serve`
runs, with Channels' WebsocketCommunicator. Database work happens in worker threads, so these
tests use real transactions (transactional_db): commits fire the live updates.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from importlib import import_module
from typing import Any

import pytest
import pytest_asyncio
import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import connections
from django.utils import timezone

from dashvault.accounts.actions import do_set_active
from dashvault.accounts.middleware import STARTED
from dashvault.accounts.models import User
from dashvault.accounts.sessions import end_sessions
from dashvault.asgi import application
from dashvault.dashboards import widgets
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.live import hub as hub_module
from dashvault.live.hub import Screen, hub
from dashvault.metrics.ingest import PointIn, do_ingest
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Organization
from tests.conftest import PASSWORD, make_client, require_service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

COOKIE = "__Host-dv_session"
REDIS_URL = "redis://127.0.0.1:6379/6"


@pytest_asyncio.fixture(autouse=True)
async def fresh_hub() -> AsyncIterator[None]:
    hub.reset()
    yield
    hub.reset()
    # The worker thread's database connection would outlive the test (and keep PostgreSQL
    # from dropping the test database).
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def metric(org_a: Organization) -> Metric:
    return Metric.objects.create(org=org_a, key="deals", name="Deals won")


@pytest.fixture
def sales(dashboards_a: dict[str, Any], metric: Metric) -> Dashboard:
    """Org A's "Sales" dashboard (granted to the editor and viewer) with a KPI on `metric`."""
    dashboard = dashboards_a["sales"]
    Widget.objects.create(
        org=dashboard.org, dashboard=dashboard, kind="kpi", metric=metric, config={}
    )
    return dashboard


@pytest.fixture
def board(dashboards_a: dict[str, Any]) -> Dashboard:
    """Org A's "Board" dashboard: granted to no group, no widget on `metric`."""
    return dashboards_a["board"]


def started_ago(session: str, seconds: int) -> None:
    """Move the session's sign-in time `seconds` into the past."""
    store = import_module(django_settings.SESSION_ENGINE).SessionStore(session)
    store[STARTED] = int(time.time()) - seconds
    store.save()


def session_of(user: User) -> str:
    """A real signed-in session (Django's login(), so the sign-in signals ran) for `user`."""
    client = make_client(user)
    return client.cookies[COOKIE].value


def socket(
    dashboard_id: object,
    session: str | None = None,
    *,
    origin: str | None = "https://localhost",
    host: str = "localhost",
    path: str | None = None,
) -> WebsocketCommunicator:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if session is not None:
        headers.append((b"cookie", f"{COOKIE}={session}".encode()))
    communicator = WebsocketCommunicator(
        application, path or f"/ws/dashboards/{dashboard_id}/", headers=headers
    )
    # As uvicorn reports a TLS connection from a loopback client.
    communicator.scope["scheme"] = "wss"
    communicator.scope["client"] = ("127.0.0.1", 50000)
    return communicator


async def opened(communicator: WebsocketCommunicator) -> dict[str, Any]:
    """Connect, expect acceptance, return the first message (the dashboard's data)."""
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return await communicator.receive_json_from(timeout=5)  # type: ignore[no-any-return]


async def refused_after_accept(communicator: WebsocketCommunicator) -> tuple[int, str]:
    """Connect; the server accepts, says why it closes, closes: (code, reason)."""
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    message = await communicator.receive_json_from(timeout=5)
    assert message["type"] == "closed" and set(message) == {"type", "reason"}
    close = await communicator.receive_output(timeout=5)
    assert close["type"] == "websocket.close"
    await communicator.wait(timeout=5)
    return close["code"], message["reason"]


async def closed_with(communicator: WebsocketCommunicator) -> tuple[int, str]:
    """An open socket's next messages are {"type": "closed"} and the close: (code, reason)."""
    message = await communicator.receive_json_from(timeout=5)
    assert message["type"] == "closed"
    close = await communicator.receive_output(timeout=5)
    assert close["type"] == "websocket.close"
    await communicator.disconnect()
    return close["code"], message["reason"]


def ingest(org: Organization, value: float, key: str = "deals") -> None:
    do_ingest(org, [PointIn(metric_key=key, ts=timezone.now(), value=value)])


@pytest.fixture
def count_dashboard_data(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts calls of the real dashboard_data (it still runs)."""
    calls = {"n": 0}
    real = widgets.dashboard_data

    def counting(dashboard: Dashboard, **kwargs: Any) -> dict[str, Any]:
        calls["n"] += 1
        return real(dashboard, **kwargs)

    monkeypatch.setattr(widgets, "dashboard_data", counting)
    return calls


# -- admitted -------------------------------------------------------------------------------


async def test_a_granted_viewer_gets_the_dashboards_data_at_once(
    viewer_a: User, sales: Dashboard
) -> None:
    session = await sync_to_async(session_of)(viewer_a)
    communicator = socket(sales.pk, session)
    data = await opened(communicator)

    # The real widget data, exactly what the page renders (dashboards.widgets.dashboard_data).
    assert data["type"] == "data"
    assert data["dashboard"] == str(sales.pk)
    widget = await Widget.objects.aget(dashboard=sales)
    assert data["widgets"][str(widget.pk)]["kind"] == "kpi"
    assert not data["widgets"][str(widget.pk)]["value"]  # no data yet
    dt.datetime.fromisoformat(data["generated_at"])
    await communicator.disconnect()
    assert not hub.screens  # the registry forgets a closed screen


async def test_an_admin_opens_a_dashboard_granted_to_no_group(admin_a: User, board: Dashboard):
    communicator = socket(board.pk, await sync_to_async(session_of)(admin_a))
    assert (await opened(communicator))["dashboard"] == str(board.pk)
    await communicator.disconnect()


# -- refused --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "which", "expected"),
    [
        ("admin_b", "sales", (4404, "not_found")),  # another org's dashboard
        ("viewer_a", "board", (4404, "not_found")),  # own org, not granted
        ("viewer_a", "missing", (4404, "not_found")),  # no such dashboard
        ("staff", "sales", (4404, "not_found")),  # staff see customer data only via grants
        (None, "sales", (4401, "signed_out")),  # anonymous
        ("deactivated", "sales", (4401, "signed_out")),
    ],
)
async def test_it_refuses_who_may_not_see_the_dashboard_alike(
    admin_b: User,
    viewer_a: User,
    staff: User,
    sales: Dashboard,
    board: Dashboard,
    who: str | None,
    which: str,
    expected: tuple[int, str],
) -> None:
    dashboards = {"sales": sales.pk, "board": board.pk, "missing": uuid.uuid4()}
    people = {"admin_b": admin_b, "viewer_a": viewer_a, "staff": staff, "deactivated": viewer_a}
    session = await sync_to_async(session_of)(people[who]) if who else None
    if who == "deactivated":
        await User.objects.filter(pk=viewer_a.pk).aupdate(is_active=False)
    communicator = socket(dashboards[which], session)
    # Another org's, not granted and missing all look the same: no name, no count, no data.
    assert await refused_after_accept(communicator) == expected
    assert not hub.screens


async def test_it_refuses_a_session_past_its_absolute_lifetime(
    viewer_a: User, sales: Dashboard
) -> None:
    session = await sync_to_async(session_of)(viewer_a)
    await sync_to_async(started_ago)(session, django_settings.SESSION_ABSOLUTE_SECONDS + 1)
    assert await refused_after_accept(socket(sales.pk, session)) == (4401, "signed_out")


async def test_it_closes_a_screen_when_the_session_reaches_its_absolute_lifetime(
    viewer_a: User, sales: Dashboard
) -> None:
    session = await sync_to_async(session_of)(viewer_a)
    await sync_to_async(started_ago)(session, django_settings.SESSION_ABSOLUTE_SECONDS - 1)
    communicator = socket(sales.pk, session)
    await opened(communicator)
    assert await closed_with(communicator) == (4401, "expired")


async def test_it_refuses_a_member_without_the_second_factor_their_org_requires(
    org_a: Organization, viewer_a: User, sales: Dashboard
) -> None:
    await Organization.objects.filter(pk=org_a.pk).aupdate(require_mfa=True)
    session = await sync_to_async(session_of)(viewer_a)
    assert await refused_after_accept(socket(sales.pk, session)) == (4403, "mfa_required")


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://evil.example", "localhost"),  # another site's page (hijacking attempt)
        (None, "localhost"),  # no Origin at all
        ("http://localhost", "localhost"),  # same host, plain HTTP: another origin
        ("https://localhost:8443", "localhost"),  # same host, another port
        ("https://evil.example", "evil.example"),  # a host we do not serve
        ("null", "localhost"),  # sandboxed frames and file: pages
    ],
)
async def test_it_refuses_the_handshake_from_another_origin(
    viewer_a: User, sales: Dashboard, origin: str | None, host: str
) -> None:
    session = await sync_to_async(session_of)(viewer_a)
    communicator = socket(sales.pk, session, origin=origin, host=host)
    connected, code = await communicator.connect(timeout=5)
    assert not connected  # never accepted: uvicorn answers the handshake with HTTP 403
    assert not hub.screens


@pytest.mark.parametrize(
    "path",
    ["/ws/dashboards/not-a-uuid/", "/ws/dashboards/", "/ws/other/", "/ws/dashboards/{id}/x/"],
)
async def test_it_refuses_paths_it_does_not_serve(
    viewer_a: User, sales: Dashboard, path: str
) -> None:
    session = await sync_to_async(session_of)(viewer_a)
    communicator = socket(sales.pk, session, path=path.format(id=sales.pk))
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


# -- updates --------------------------------------------------------------------------------


async def test_a_commit_updates_every_screen_with_data_computed_once(
    org_a: Organization,
    admin_a: User,
    editor_a: User,
    viewer_a: User,
    sales: Dashboard,
    board: Dashboard,
    count_dashboard_data: dict[str, int],
) -> None:
    viewer = socket(sales.pk, await sync_to_async(session_of)(viewer_a))
    editor = socket(sales.pk, await sync_to_async(session_of)(editor_a))
    admin_on_board = socket(board.pk, await sync_to_async(session_of)(admin_a))
    for communicator in (viewer, editor, admin_on_board):
        await opened(communicator)
    count_dashboard_data["n"] = 0

    await database_sync_to_async(ingest)(org_a, 7)

    widget = await Widget.objects.aget(dashboard=sales)
    for communicator in (viewer, editor):
        update = await communicator.receive_json_from(timeout=5)
        assert update["type"] == "data" and update["dashboard"] == str(sales.pk)
        assert update["widgets"][str(widget.pk)]["value"] == 7
    # One computation for both screens; the board shows no widget on the metric: untouched.
    assert count_dashboard_data["n"] == 1
    assert await admin_on_board.receive_nothing(timeout=0.2)
    for communicator in (viewer, editor, admin_on_board):
        await communicator.disconnect()


async def test_nothing_is_computed_when_nobody_watches(
    org_a: Organization, sales: Dashboard, count_dashboard_data: dict[str, int]
) -> None:
    await database_sync_to_async(ingest)(org_a, 3)
    assert count_dashboard_data["n"] == 0


async def test_screens_opening_together_share_one_snapshot(
    viewer_a: User, sales: Dashboard, count_dashboard_data: dict[str, int]
) -> None:
    session = await sync_to_async(session_of)(viewer_a)
    screens = [socket(sales.pk, session) for _ in range(10)]
    firsts = await asyncio.gather(*(opened(s) for s in screens))
    assert {json.dumps(f, sort_keys=True) for f in firsts} == {
        json.dumps(firsts[0], sort_keys=True)
    }
    assert count_dashboard_data["n"] == 1
    for communicator in screens:
        await communicator.disconnect()


async def test_editing_a_widget_updates_open_screens(viewer_a: User, sales: Dashboard) -> None:
    communicator = socket(sales.pk, await sync_to_async(session_of)(viewer_a))
    await opened(communicator)
    widget = await Widget.objects.aget(dashboard=sales)
    widget.title = "Deals this month"
    await widget.asave()
    update = await communicator.receive_json_from(timeout=5)
    assert update["widgets"][str(widget.pk)]["title"] == "Deals this month"
    await communicator.disconnect()


async def test_a_stuck_client_holds_one_pending_update_and_delays_nobody() -> None:
    """The hub alone: one screen whose writes hang, one healthy; three updates."""
    gate = asyncio.Event()
    stuck_got: list[str] = []
    healthy_got: list[str] = []

    async def stuck_send(message: dict[str, Any]) -> None:
        await gate.wait()
        stuck_got.append(message["text"])

    async def healthy_send(message: dict[str, Any]) -> None:
        healthy_got.append(message["text"])

    stuck = Screen(stuck_send, "d1", "user:1", None)
    healthy = Screen(healthy_send, "d1", "user:2", None)
    for screen in (stuck, healthy):
        hub.add(screen)
        screen.busy = False  # primed
    for text in ("one", "two", "three"):
        hub.deliver("d1", text)
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert healthy_got == ["one", "two", "three"]
    assert stuck_got == [] and stuck.pending is not None and stuck.pending["text"] == "three"
    gate.set()
    await asyncio.sleep(0.01)
    assert stuck_got == ["one", "three"]  # the newest snapshot, not a backlog


# -- closed ---------------------------------------------------------------------------------


async def test_ending_a_users_sessions_closes_their_screens(
    viewer_a: User, editor_a: User, sales: Dashboard
) -> None:
    viewer = socket(sales.pk, await sync_to_async(session_of)(viewer_a))
    editor = socket(sales.pk, await sync_to_async(session_of)(editor_a))
    await opened(viewer)
    await opened(editor)

    await database_sync_to_async(end_sessions)(viewer_a)

    assert await closed_with(viewer) == (4401, "signed_out")
    assert await editor.receive_nothing(timeout=0.2)  # someone else's screen stays
    await editor.disconnect()


async def test_a_password_change_keeps_the_screens_of_the_session_that_made_it(
    viewer_a: User, sales: Dashboard
) -> None:
    here = await sync_to_async(session_of)(viewer_a)
    elsewhere = await sync_to_async(session_of)(viewer_a)
    kept, ended = socket(sales.pk, here), socket(sales.pk, elsewhere)
    await opened(kept)
    await opened(ended)

    await database_sync_to_async(end_sessions)(viewer_a, keep_session_key=here)

    assert await closed_with(ended) == (4401, "signed_out")
    assert await kept.receive_nothing(timeout=0.2)
    await kept.disconnect()


async def test_signing_out_closes_that_sessions_screens(viewer_a: User, sales: Dashboard) -> None:
    client = await sync_to_async(make_client)(viewer_a)
    other = await sync_to_async(session_of)(viewer_a)
    signed_out, stays = socket(sales.pk, client.cookies[COOKIE].value), socket(sales.pk, other)
    await opened(signed_out)
    await opened(stays)

    response = await sync_to_async(client.post)("/accounts/logout/")
    assert response.status_code == 302

    assert await closed_with(signed_out) == (4401, "signed_out")
    assert await stays.receive_nothing(timeout=0.2)
    await stays.disconnect()


async def test_signing_out_other_sessions_on_the_sessions_page_closes_their_screens(
    viewer_a: User, sales: Dashboard
) -> None:
    from django.contrib.sessions.models import Session

    here, there = make_client(), make_client()
    for client in (here, there):  # password sign-ins: each session is listed on the page
        response = await sync_to_async(client.post)(
            "/accounts/login/", {"login": viewer_a.email, "password": PASSWORD}
        )
        assert response.status_code == 302
    other = there.cookies[COOKIE].value
    mine, theirs = socket(sales.pk, here.cookies[COOKIE].value), socket(sales.pk, other)
    await opened(mine)
    await opened(theirs)

    response = await sync_to_async(here.post)("/accounts/sessions/")
    assert response.status_code == 302

    assert await closed_with(theirs) == (4401, "signed_out")
    assert not await Session.objects.filter(session_key=other).aexists()
    assert await mine.receive_nothing(timeout=0.2)
    await mine.disconnect()


async def test_requiring_mfa_sends_open_screens_back_through_admission(
    admin_a: User, viewer_a: User, sales: Dashboard
) -> None:
    from dashvault.orgs.actions import do_update_org

    screen = socket(sales.pk, await sync_to_async(session_of)(viewer_a))
    await opened(screen)
    org = viewer_a.org
    await database_sync_to_async(do_update_org)(
        org, name=org.name, time_zone=org.time_zone, require_mfa=True, acting=admin_a, ip=None
    )
    code, _ = await closed_with(screen)
    assert code == 4000  # reconnects, and admission now refuses a member without MFA
    assert await refused_after_accept(
        socket(sales.pk, await sync_to_async(session_of)(viewer_a))
    ) == (4403, "mfa_required")


async def test_deactivating_a_user_closes_their_screens(
    admin_a: User, viewer_a: User, sales: Dashboard
) -> None:
    communicator = socket(sales.pk, await sync_to_async(session_of)(viewer_a))
    await opened(communicator)
    await database_sync_to_async(do_set_active)(viewer_a, False, acting=admin_a)
    assert await closed_with(communicator) == (4401, "signed_out")


async def test_removing_a_grant_sends_screens_back_through_the_policy(
    viewer_a: User, sales: Dashboard, dashboards_a: dict[str, Any]
) -> None:
    session = await sync_to_async(session_of)(viewer_a)
    communicator = socket(sales.pk, session)
    await opened(communicator)

    await database_sync_to_async(dashboards_a["group"].dashboards.remove)(sales)

    assert await closed_with(communicator) == (4000, "access_changed")
    # The page reconnects: the policy now says no.
    assert await refused_after_accept(socket(sales.pk, session)) == (4404, "not_found")


async def test_deleting_a_dashboard_closes_its_screens(viewer_a: User, sales: Dashboard) -> None:
    communicator = socket(sales.pk, await sync_to_async(session_of)(viewer_a))
    await opened(communicator)
    await sales.adelete()
    assert await closed_with(communicator) == (4000, "access_changed")


# -- through Redis (scale-out mode) -------------------------------------------------------


@pytest.fixture
def redis_mode(settings: Any) -> Iterator[Callable[[], None]]:
    require_service("Redis", "127.0.0.1", 6379)
    settings.REDIS_URL = REDIS_URL
    yield lambda: None


@pytest.mark.redis
async def test_through_redis_updates_and_sign_outs_reach_the_screen(
    redis_mode: Any, org_a: Organization, viewer_a: User, sales: Dashboard
) -> None:
    communicator = socket(sales.pk, await sync_to_async(session_of)(viewer_a))
    await opened(communicator)
    assert hub.subscribed is not None and hub.subscribed.is_set()

    await database_sync_to_async(ingest)(org_a, 11)
    update = await communicator.receive_json_from(timeout=5)
    widget = await Widget.objects.aget(dashboard=sales)
    assert update["widgets"][str(widget.pk)]["value"] == 11

    await database_sync_to_async(end_sessions)(viewer_a)
    assert await closed_with(communicator) == (4401, "signed_out")


@pytest.mark.redis
async def test_through_redis_a_lost_subscription_resyncs_the_screens(
    redis_mode: Any, org_a: Organization, viewer_a: User, sales: Dashboard
) -> None:
    communicator = socket(sales.pk, await sync_to_async(session_of)(viewer_a))
    await opened(communicator)
    # Redis drops this process's subscription (as on a restart); a point lands meanwhile.
    admin = redis.Redis.from_url(REDIS_URL)
    ours = [c for c in admin.client_list(_type="pubsub") if c["name"] == hub_module.client_name()]
    assert ours
    for client in ours:
        admin.client_kill_filter(_id=client["id"])
    await database_sync_to_async(lambda: do_ingest(org_a, [PointIn("deals", timezone.now(), 5)]))()
    # Either the update itself or the resync after re-subscribing brings the new value.
    widget = await Widget.objects.aget(dashboard=sales)
    deadline = time.monotonic() + 10
    while True:
        update = await communicator.receive_json_from(timeout=10)
        if update["widgets"][str(widget.pk)]["value"] == 5:
            break
        assert time.monotonic() < deadline
    await communicator.disconnect()


async def test_the_channel_is_per_redis_database() -> None:
    assert hub_module.channel_for("redis://h:6379/5") != hub_module.channel_for("redis://h/6")
    assert hub_module.channel_for("redis://h") == hub_module.channel_for("redis://h/0")


async def test_a_sign_out_racing_a_connect_still_closes_the_screen() -> None:
    """The policy check read the session before the sign-out committed, but the screen
    registers after the hub heard of it: the hub remembers, and closes the screen."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    checked = time.monotonic()
    hub.add(Screen(send, "d1", "user:0", None))  # binds the hub to this loop
    hub.end("user:1")
    late, other, fresh = (Screen(send, "d1", f"user:{n}", None) for n in (1, 2, 1))
    hub.add(late, authorized_at=checked)
    hub.add(other, authorized_at=checked)
    hub.add(fresh, authorized_at=time.monotonic())  # checked after the sign-out: fine
    assert late.closed and late.closing is not None and late.closing[0] == 4401
    assert not other.closed and not fresh.closed


async def test_a_failing_dashboard_closes_the_screen_without_details(
    viewer_a: User, sales: Dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(dashboard: Dashboard, **kwargs: Any) -> dict[str, Any]:
        raise ZeroDivisionError("secret detail")

    monkeypatch.setattr(widgets, "dashboard_data", broken)
    communicator = socket(sales.pk, await sync_to_async(session_of)(viewer_a))
    assert await refused_after_accept(communicator) == (1011, "unavailable")
