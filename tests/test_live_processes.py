"""A point pushed to one server process reaches a screen held by another, through Redis.

Two real `dashvault serve` processes share one data directory and one Redis database. The
viewer signs in on process B and opens the dashboard's websocket (WSS) there; a data point is
pushed through the API of process A; B's screen shows it. Signing out on A closes B's socket.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import ssl
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import redis
import requests
import websockets

from tests.browser.conftest import read_credentials
from tests.conftest import require_service
from tests.live import Server, dashvault, running_server

pytestmark = [pytest.mark.servers, pytest.mark.redis]

REDIS_URL = "redis://127.0.0.1:6379/7"  # a database of its own, flushed around each test
COOKIE = "__Host-dv_session"

# Run through `dashvault shell`: a metric of the demo org with a KPI on a dashboard the viewer
# is granted; prints the ids the test needs.
SETUP = """
import json
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Organization
org = Organization.objects.get(name="Acme")
dashboard = Dashboard.objects.get(org=org, title="Sales overview")
metric = Metric.objects.create(org=org, key="live.pushed", name="Pushed live")
widget = Widget.objects.create(
    org=org, dashboard=dashboard, kind="kpi", metric=metric, config={"period": "all_time"}, y=99
)
print(json.dumps({"org": str(org.pk), "dashboard": str(dashboard.pk), "widget": str(widget.pk)}))
"""


class Cluster(NamedTuple):
    a: Server
    b: Server
    data_dir: Path
    ids: dict[str, str]
    viewer: Any


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    require_service("Redis", "127.0.0.1", 6379)
    redis.Redis.from_url(REDIS_URL).flushdb()
    data = tmp_path / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    dashvault(data, "demo")
    ids = json.loads(dashvault(data, "shell", "-c", SETUP).stdout.strip().splitlines()[-1])
    env = {"DASHVAULT_REDIS_URL": REDIS_URL}
    with running_server(data, env=env) as a, running_server(data, env=env) as b:
        assert a.process.pid != b.process.pid
        yield Cluster(a, b, data, ids, read_credentials(data / "demo-sign-ins.txt")["viewer"])
    redis.Redis.from_url(REDIS_URL).flushdb()


def https(data_dir: Path) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy or CA bundle from the environment
    session.verify = str(data_dir / "tls" / "cert.pem")  # the server's own certificate only
    return session


def sign_in(server: Server, data_dir: Path, email: str, password: str) -> requests.Session:
    session = https(data_dir)
    form = session.get(f"{server.url}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token, "no CSRF token in the sign-in form"
    response = session.post(
        f"{server.url}/accounts/login/",
        data={"login": email, "password": password, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": f"{server.url}/accounts/login/"},  # Django checks it on HTTPS posts
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text[:500]
    assert COOKIE in session.cookies
    return session


def push(server: Server, data_dir: Path, token: str, key: str, value: float) -> None:
    response = https(data_dir).post(
        f"{server.url}/api/v1/datapoints",
        json={
            "points": [{"metric": key, "ts": dt.datetime.now(dt.UTC).isoformat(), "value": value}]
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def tls_context(data_dir: Path) -> ssl.SSLContext:
    # Verifies the server against its own generated certificate (valid for "localhost").
    return ssl.create_default_context(cafile=str(data_dir / "tls" / "cert.pem"))


def run(scenario: Coroutine[Any, Any, None]) -> None:
    """asyncio.run in a thread of its own: Playwright's sync API (browser tests in the same
    session) leaves an event loop running in the main thread."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario).result()


async def next_data(socket: Any, widget: str, wanted: float) -> dict[str, Any]:
    """Read data messages until the widget shows `wanted` (10 s at most)."""
    async with asyncio.timeout(10):
        while True:
            message = json.loads(await socket.recv())
            assert message["type"] == "data", message
            if message["widgets"][widget]["value"] == wanted:
                return message  # type: ignore[no-any-return]


def test_a_point_pushed_to_one_process_reaches_a_screen_on_another(cluster: Cluster) -> None:
    a, b, data, ids = cluster.a, cluster.b, cluster.data_dir, cluster.ids
    token = dashvault(
        data, "token", "create", "--org", ids["org"], "--scope", "push"
    ).stdout.strip()
    browser_on_b = sign_in(b, data, cluster.viewer.email, cluster.viewer.password)
    cookie = browser_on_b.cookies[COOKIE]

    async def scenario() -> None:
        async with websockets.connect(
            f"wss://localhost:{b.port}/ws/dashboards/{ids['dashboard']}/",
            ssl=tls_context(data),
            origin=websockets.Origin(f"https://localhost:{b.port}"),
            additional_headers={"Cookie": f"{COOKIE}={cookie}"},
            open_timeout=10,
        ) as socket:
            first = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert first["type"] == "data" and first["dashboard"] == ids["dashboard"]
            assert not first["widgets"][ids["widget"]]["value"]  # nothing pushed yet

            # Pushed through process A's API: computed there, published through Redis,
            # delivered by B's subscription.
            await asyncio.to_thread(push, a, data, token, "live.pushed", 42)
            await next_data(socket, ids["widget"], 42)
            await asyncio.to_thread(push, a, data, token, "live.pushed", 8)
            await next_data(socket, ids["widget"], 50)

            # Signing out on A (same browser session) closes the socket on B.
            origin = {"Referer": f"https://localhost:{a.port}/"}
            csrf = browser_on_b.get(f"https://localhost:{a.port}/accounts/logout/", timeout=30)
            token_match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', csrf.text)
            assert token_match
            response = await asyncio.to_thread(
                browser_on_b.post,
                f"https://localhost:{a.port}/accounts/logout/",
                data={"csrfmiddlewaretoken": token_match.group(1)},
                headers=origin,
                allow_redirects=False,
                timeout=30,
            )
            assert response.status_code == 302
            async with asyncio.timeout(10):
                closed = json.loads(await socket.recv())
                assert closed == {"type": "closed", "reason": "signed_out"}
                with pytest.raises(websockets.ConnectionClosed) as ended:
                    await socket.recv()
            assert ended.value.rcvd is not None and ended.value.rcvd.code == 4401

    run(scenario())


def test_a_cross_site_page_cannot_open_a_socket_with_the_cookie(cluster: Cluster) -> None:
    b, data = cluster.b, cluster.data_dir
    cookie = sign_in(b, data, cluster.viewer.email, cluster.viewer.password).cookies[COOKIE]

    async def attempt() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(
                f"wss://localhost:{b.port}/ws/dashboards/{cluster.ids['dashboard']}/",
                ssl=tls_context(data),
                origin=websockets.Origin("https://evil.example"),
                additional_headers={"Cookie": f"{COOKIE}={cookie}"},
                open_timeout=10,
            )
        assert refused.value.response.status_code == 403

    run(attempt())
