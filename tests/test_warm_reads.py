"""Warm reads of a dashboard's data (live.admission): answered by the router after Django
admitted the session, and never after an event that closes live screens."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.conf import settings

from dashvault.dashboards.models import Dashboard, Widget
from dashvault.live.admission import admissions
from dashvault.metrics.models import Metric
from tests.conftest import make_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]
COOKIE = settings.SESSION_COOKIE_NAME


@pytest.fixture(autouse=True)
def fresh_admissions() -> Any:
    admissions.clear()
    yield
    admissions.clear()


@pytest.fixture
def warm_hits(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per request, whether the router answered it without Django."""
    from dashvault.live import warm

    hits: list[bool] = []
    real = warm.answer

    async def spying(*args: Any) -> bool:
        answered = await real(*args)
        hits.append(answered)
        return answered

    monkeypatch.setattr(warm, "answer", spying)
    return hits


@pytest.fixture
def board(dashboards_a: dict[str, Any], org_a: Any) -> Dashboard:
    sales = dashboards_a["sales"]
    metric = Metric.objects.create(org=org_a, key="deals", name="Deals")
    Widget.objects.create(
        org=org_a, dashboard=sales, kind="kpi", metric=metric, config={"period": "today"}
    )
    return sales


async def get(
    path: str, cookie: str | None, client: str = "127.0.0.1"
) -> tuple[int, dict[bytes, bytes], bytes]:
    from dashvault.asgi import application

    headers = [(b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", f"{COOKIE}={cookie}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": (client, 5000),
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
    return start["status"], dict(start["headers"]), body


def session(user: Any) -> str:
    return make_client(user).cookies[COOKIE].value


async def test_a_second_read_is_answered_warm_with_django_s_headers(viewer_a, board, warm_hits):
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(session)(viewer_a)
    path = f"/dashboards/{board.pk}/data/"
    cold = await get(path, cookie)
    warm = await get(path, cookie)
    assert warm_hits == [False, True]
    assert cold[0] == warm[0] == 200 and cold[2] == warm[2]
    replayed = {k: v for k, v in cold[1].items() if k not in (b"set-cookie", b"date", b"server")}
    assert warm[1] == replayed
    for header in (b"content-security-policy", b"strict-transport-security", b"x-frame-options"):
        assert header in warm[1]


async def test_another_address_or_session_or_dashboard_goes_through_django(
    viewer_a, editor_a, board, dashboards_a, warm_hits
):
    from asgiref.sync import sync_to_async

    viewer, editor = await sync_to_async(session)(viewer_a), await sync_to_async(session)(editor_a)
    path = f"/dashboards/{board.pk}/data/"
    await get(path, viewer)
    assert (await get(path, viewer, client="10.9.9.9"))[0] == 200
    assert (await get(path, editor))[0] == 200
    assert (await get(f"/dashboards/{dashboards_a['board'].pk}/data/", viewer))[0] == 404
    assert (await get(path, None))[0] == 302
    assert warm_hits == [False, False, False, False, False]


async def test_signing_out_ends_warm_reads(viewer_a, board, warm_hits):
    from asgiref.sync import sync_to_async

    client = await sync_to_async(make_client)(viewer_a)
    cookie = client.cookies[COOKIE].value
    path = f"/dashboards/{board.pk}/data/"
    await get(path, cookie)
    assert (await get(path, cookie))[0] == 200
    await sync_to_async(client.post)("/accounts/logout/")
    status, headers, _ = await get(path, cookie)
    assert status == 302 and headers[b"location"].startswith(b"/accounts/login/")
    assert warm_hits == [False, True, False]


async def test_removing_the_grant_ends_warm_reads(viewer_a, board, dashboards_a, warm_hits):
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(session)(viewer_a)
    path = f"/dashboards/{board.pk}/data/"
    await get(path, cookie)
    await sync_to_async(dashboards_a["group"].dashboards.remove)(board)
    assert (await get(path, cookie))[0] == 404
    assert warm_hits == [False, False]


async def test_deactivation_ends_warm_reads(admin_a, viewer_a, board, warm_hits):
    from asgiref.sync import sync_to_async

    from dashvault.accounts.actions import do_set_active

    cookie = await sync_to_async(session)(viewer_a)
    path = f"/dashboards/{board.pk}/data/"
    await get(path, cookie)
    await sync_to_async(do_set_active)(viewer_a, False, acting=admin_a)
    assert (await get(path, cookie))[0] == 302
    assert warm_hits == [False, False]


async def test_an_admission_expires(viewer_a, board, warm_hits, monkeypatch):
    from asgiref.sync import sync_to_async

    from dashvault.live import admission

    monkeypatch.setattr(admission, "ADMISSION_SECONDS", 0.0)
    cookie = await sync_to_async(session)(viewer_a)
    path = f"/dashboards/{board.pk}/data/"
    await get(path, cookie)
    assert (await get(path, cookie))[0] == 200
    assert warm_hits == [False, False]


async def test_new_data_is_never_hidden_by_a_warm_read(viewer_a, board, org_a, warm_hits):
    import json

    from asgiref.sync import sync_to_async
    from django.utils import timezone

    from dashvault.metrics.ingest import PointIn, do_ingest

    cookie = await sync_to_async(session)(viewer_a)
    path = f"/dashboards/{board.pk}/data/"
    await get(path, cookie)
    await sync_to_async(do_ingest)(org_a, [PointIn("deals", timezone.now(), 42.0)])
    status, _, body = await get(path, cookie)
    values = [w.get("value") for w in json.loads(body)["widgets"].values()]
    assert status == 200 and values == [42.0]


async def test_production_without_redis_never_answers_warm(viewer_a, board, warm_hits, settings):
    from asgiref.sync import sync_to_async

    settings.EMBEDDED = False  # several processes may serve; revocations would not reach all
    cookie = await sync_to_async(session)(viewer_a)
    path = f"/dashboards/{board.pk}/data/"
    await get(path, cookie)
    assert (await get(path, cookie))[0] == 200
    assert warm_hits == [False, False]


@pytest.mark.redis
async def test_with_redis_warm_reads_wait_for_the_subscription_and_end_on_a_sign_out(
    viewer_a, board, warm_hits, settings
):
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    from dashvault.live.hub import hub
    from tests.conftest import require_service

    require_service("Redis", "127.0.0.1", 6379)
    settings.REDIS_URL = "redis://127.0.0.1:6379/6"
    hub.reset()
    try:
        client = await sync_to_async(make_client)(viewer_a)
        cookie = client.cookies[COOKIE].value
        path = f"/dashboards/{board.pk}/data/"
        admissions.admit("made-before", str(board.pk), "127.0.0.1", "user:x", "{}", ttl=30)
        await get(path, cookie)  # Django admits
        await get(path, cookie)  # not listening yet: Django again; the subscription starts
        for _ in range(100):
            if hub.listening():
                break
            await asyncio.sleep(0.05)
        assert hub.listening()
        # What was admitted before the subscription listened cannot vouch for itself.
        assert admissions.lookup("made-before", str(board.pk), "127.0.0.1") is None
        assert warm_hits == [False, False]
        await get(path, cookie)
        await get(path, cookie)
        assert warm_hits[-1] is True
        await sync_to_async(client.post)("/accounts/logout/")  # published through Redis
        assert (await get(path, cookie))[0] == 302
        assert warm_hits[-1] is False
    finally:
        hub.reset()
        await sync_to_async(connections.close_all)()
