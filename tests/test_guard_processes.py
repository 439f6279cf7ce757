"""The guessing guard and kiosk links across processes: two real `dashvault serve` processes
share one data directory and one Redis database. A block started on one holds on the other,
`dashvault guard lift` ends it for both, and revoking a link closes its screen wherever it is.

Both processes see the same client (127.0.0.1), so "other addresses keep working" is shown in
test_guard.py, where the test client sets any address.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import redis
import requests
import websockets

from tests.conftest import require_service
from tests.live import Server, dashvault, running_server

pytestmark = [pytest.mark.servers, pytest.mark.redis]

REDIS_URL = "redis://127.0.0.1:6379/7"  # a database of its own, flushed around each test
ENV = {"DASHVAULT_REDIS_URL": REDIS_URL}
CLIENT = "127.0.0.1"

# Run through `dashvault shell`: a kiosk link of the demo org showing one dashboard; prints
# the ids and the token (shown once, as the admin page would).
CREATE_LINK = """
import json
from dashvault.dashboards.models import Dashboard
from dashvault.kiosk.actions import do_create_kiosk_link
dashboard = Dashboard.objects.order_by("title").first()
link, token = do_create_kiosk_link(
    dashboard.org, name="Hall TV", dashboards=[dashboard], acting=None
)
print(json.dumps({"link": str(link.pk), "dashboard": str(dashboard.pk), "token": token}))
"""

REVOKE_LINK = """
from dashvault.kiosk.actions import do_revoke_kiosk_link
from dashvault.kiosk.models import KioskLink
do_revoke_kiosk_link(KioskLink.objects.get(pk="{link}"), acting=None, ip=None)
"""

COUNT_AUDIT = """
import json
from dashvault.audit.models import AuditEntry
entries = AuditEntry.objects.filter(action__startswith="guard.")
print(json.dumps([[e.action, e.ip, e.detail, e.org_id] for e in entries.order_by("id")]))
"""


class Cluster(NamedTuple):
    a: Server
    b: Server
    data_dir: Path
    link: dict[str, str]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    require_service("Redis", "127.0.0.1", 6379)
    redis.Redis.from_url(REDIS_URL).flushdb()
    data = tmp_path / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    dashvault(data, "demo")
    link = json.loads(
        dashvault(data, "shell", "-c", CREATE_LINK, env=ENV).stdout.strip().splitlines()[-1]
    )
    with running_server(data, env=ENV) as a, running_server(data, env=ENV) as b:
        assert a.port != b.port and a.process.pid != b.process.pid
        yield Cluster(a, b, data, link)
    redis.Redis.from_url(REDIS_URL).flushdb()


def https(data_dir: Path) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy or CA bundle from the environment
    session.verify = str(data_dir / "tls" / "cert.pem")  # the server's own certificate only
    return session


def tv(server: Server, data_dir: Path, token: str) -> requests.Response:
    return https(data_dir).get(f"{server.url}/kiosk/{token}", timeout=30, allow_redirects=False)


def bad_token() -> str:
    return "dvk_" + secrets.token_urlsafe(32)


def tls_context(data_dir: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(data_dir / "tls" / "cert.pem"))


def run(scenario: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run in a thread of its own (another test may hold the main thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, scenario).result()


async def kiosk_socket_outcome(server: Server, data_dir: Path, token: str, dashboard: str) -> Any:
    """Open a kiosk socket; return its first message, or ("closed", code, reason)."""
    async with websockets.connect(
        f"wss://localhost:{server.port}/ws/kiosk/{token}/{dashboard}/",
        ssl=tls_context(data_dir),
        origin=websockets.Origin(f"https://localhost:{server.port}"),
        open_timeout=10,
    ) as socket:
        first = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if first["type"] != "closed":
            return first
        with pytest.raises(websockets.ConnectionClosed) as ended:
            await asyncio.wait_for(socket.recv(), 10)
        assert ended.value.rcvd is not None
        return ("closed", ended.value.rcvd.code, first["reason"])


def guard_command(data_dir: Path, *args: str) -> str:
    return dashvault(data_dir, "guard", *args, env=ENV).stdout.strip()


def test_a_block_started_on_one_process_holds_on_the_other_until_lifted(
    cluster: Cluster,
) -> None:
    a, b, data, link = cluster.a, cluster.b, cluster.data_dir, cluster.link
    assert tv(b, data, link["token"]).status_code == 200  # B serves the link before the attack

    guesses = [bad_token() for _ in range(10)]
    assert [tv(a, data, guess).status_code for guess in guesses] == [404] * 10

    # B never saw a bad token, yet refuses the address: the block lives in the shared Redis.
    refused = tv(b, data, link["token"])
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 900
    assert refused.headers["Referrer-Policy"] == "no-referrer"
    assert tv(a, data, link["token"]).status_code == 429
    api = https(data).get(
        f"{b.url}/api/v1/metrics", headers={"Authorization": "Bearer dvp_x"}, timeout=30
    )
    assert api.status_code == 429 and "Too many invalid tokens" in api.json()["detail"]
    outcome = run(kiosk_socket_outcome(b, data, link["token"], link["dashboard"]))
    assert outcome == ("closed", 4429, "blocked")
    assert redis.Redis.from_url(REDIS_URL).keys(f"*dv:guard:block:{CLIENT}")
    assert guard_command(data, "status", CLIENT).startswith(f"{CLIENT}: blocked until ")

    # The operator lifts it once, for every process.
    assert guard_command(data, "lift", CLIENT) == f"{CLIENT}: block lifted."
    assert tv(a, data, link["token"]).status_code == 200
    assert tv(b, data, link["token"]).status_code == 200
    first = run(kiosk_socket_outcome(b, data, link["token"], link["dashboard"]))
    assert first["type"] == "data" and first["dashboard"] == link["dashboard"]
    assert guard_command(data, "status", CLIENT) == f"{CLIENT}: not blocked."

    # One block, audited once (as a platform event holding the address), and one lift.
    entries = json.loads(
        dashvault(data, "shell", "-c", COUNT_AUDIT, env=ENV).stdout.strip().splitlines()[-1]
    )
    assert [(action, ip) for action, ip, _, _ in entries] == [
        ("guard.blocked", CLIENT),
        ("guard.lifted", None),
    ]
    assert entries[0][2] == {"source": "kiosk", "minutes": 15, "level": 0}
    assert entries[1][2] == {"blocked_ip": CLIENT, "level": 0}
    assert entries[0][3] is None and entries[1][3] is None

    # The servers' logs name the refused paths, never a token.
    logs = "".join(server.log.read_text() for server in (a, b))
    assert "/kiosk/[redacted]" in logs
    for token in [link["token"], *guesses]:
        assert token not in logs and token[10:] not in logs


def test_revoking_a_link_closes_its_screen_on_another_process(cluster: Cluster) -> None:
    b, data, link = cluster.b, cluster.data_dir, cluster.link

    async def scenario() -> None:
        async with websockets.connect(
            f"wss://localhost:{b.port}/ws/kiosk/{link['token']}/{link['dashboard']}/",
            ssl=tls_context(data),
            origin=websockets.Origin(f"https://localhost:{b.port}"),
            open_timeout=10,
        ) as socket:
            first = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert first["type"] == "data"
            # Revoked by another process (a `dashvault shell`): the event goes through Redis.
            revoke = REVOKE_LINK.format(link=link["link"])
            await asyncio.to_thread(dashvault, data, "shell", "-c", revoke, env=ENV)
            async with asyncio.timeout(10):
                while (message := json.loads(await socket.recv()))["type"] == "data":
                    pass
                assert message == {"type": "closed", "reason": "link_revoked"}
                with pytest.raises(websockets.ConnectionClosed) as ended:
                    await socket.recv()
            assert ended.value.rcvd is not None and ended.value.rcvd.code == 4410

    run(scenario())
    assert tv(b, data, link["token"]).status_code == 404
    outcome = run(kiosk_socket_outcome(b, data, link["token"], link["dashboard"]))
    assert outcome == ("closed", 4410, "link_invalid")
