"""The org IP filter in a real `dashvault serve` behind a trusted proxy (DESIGN C6).

One server process on loopback with DASHVAULT_TRUSTED_PROXIES=127.0.0.1/32: a client connecting
from 127.0.0.1 plays the reverse proxy and says who the client is in X-Forwarded-For; a client
bound to 127.0.0.2 is an untrusted one that forges the header. The org is restricted with the
real `dashvault networks` command. Requests go over TLS through the network stack.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import socket
import ssl
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import websockets

from tests.live import Server, dashvault, running_server

pytestmark = pytest.mark.servers

PROXY, UNTRUSTED = "127.0.0.1", "127.0.0.2"
INSIDE_V4, OUTSIDE_V4 = "198.51.100.7", "203.0.113.9"
INSIDE_V6, OUTSIDE_V6 = "2001:db8:1::5", "2001:db8:2::5"
COOKIE = "__Host-dv_session"
EMAIL, PASSWORD = "admin@filtered.example", "filtered-admin-password-1"

# Run through `dashvault shell`: an org with an admin, a dashboard, an API token and a kiosk link.
SETUP = f"""
import json
from dashvault.accounts.models import Role, User
from dashvault.api.actions import do_create_token
from dashvault.dashboards.models import Dashboard
from dashvault.kiosk.actions import do_create_kiosk_link
from dashvault.orgs.models import Organization
org = Organization.objects.create(name="Filtered Inc")
User.objects.create_user({EMAIL!r}, {PASSWORD!r}, org=org, role=Role.ADMIN)
board = Dashboard.objects.create(org=org, title="Revenue")
_, token = do_create_token(org, "CI", ["read"], expires_at=None, acting=None)
_, kiosk = do_create_kiosk_link(org, name="Lobby", dashboards=[board], acting=None)
print(json.dumps({{"org": str(org.pk), "board": str(board.pk), "token": token, "kiosk": kiosk}}))
"""

REFUSALS = """
import json
from dashvault.audit.models import AuditEntry
entries = AuditEntry.objects.filter(action="ipfilter.refused").order_by("id")
print(json.dumps([[e.actor_kind, e.ip] for e in entries]))
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("ipfilter") / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    return data


@pytest.fixture(scope="module")
def ids(data_dir: Path) -> dict[str, str]:
    ids = json.loads(dashvault(data_dir, "shell", "-c", SETUP).stdout.strip().splitlines()[-1])
    shown = dashvault(
        data_dir, "networks", "Filtered Inc", "--set", "198.51.100.0/24", "2001:DB8:1::1/48"
    )
    assert shown.stdout == (
        f"{ids['org']}: admitted only from:\n  198.51.100.0/24\n  2001:db8:1::/48\n"
    )
    return ids  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def server(data_dir: Path, ids: dict[str, str]) -> Iterator[Server]:
    with running_server(data_dir, env={"DASHVAULT_TRUSTED_PROXIES": f"{PROXY}/32"}) as running:
        yield running


def tls_context(data_dir: Path) -> ssl.SSLContext:
    # The server's own generated certificate only (valid for "localhost").
    return ssl.create_default_context(cafile=str(data_dir / "tls" / "cert.pem"))


def connected_socket(server: Server, source: str) -> socket.socket:
    """A TCP connection to the server from the loopback address `source`."""
    return socket.create_connection(
        ("127.0.0.1", server.port), timeout=30, source_address=(source, 0)
    )


@pytest.fixture(scope="module")
def session(server: Server, data_dir: Path) -> str:
    """The admin signed in through the sign-in form (sign-in itself is not filtered)."""
    browser = requests.Session()
    browser.trust_env = False
    browser.verify = str(data_dir / "tls" / "cert.pem")
    form = browser.get(f"{server.url}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token, "no CSRF token in the sign-in form"
    response = browser.post(
        f"{server.url}/accounts/login/",
        data={"login": EMAIL, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": f"{server.url}/accounts/login/"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text[:500]
    return str(browser.cookies[COOKIE])


def get(
    server: Server,
    data_dir: Path,
    path: str,
    *,
    source: str = PROXY,
    forwarded_for: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """One HTTPS GET from `source` with exactly these headers: (status, body)."""
    raw = connected_socket(server, source)
    connection = http.client.HTTPSConnection("localhost", server.port, timeout=30)
    connection.sock = tls_context(data_dir).wrap_socket(raw, server_hostname="localhost")
    sent = dict(headers or {})
    if forwarded_for is not None:
        sent["X-Forwarded-For"] = forwarded_for
    try:
        connection.request("GET", path, headers=sent)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def says_refused(body: str, ip: str) -> bool:
    return f"and {ip} is not one of them" in body and "office network or VPN" in body


def run(scenario: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run in a thread of its own (browser tests may hold the main thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, scenario).result()


async def socket_verdict(
    server: Server, data_dir: Path, path: str, *, source: str, forwarded_for: str, cookie: str = ""
) -> tuple[str, int | None]:
    """Open a websocket from `source`: ("data", None) when admitted, else (reason, code)."""
    raw = connected_socket(server, source)
    raw.setblocking(False)
    headers = {"X-Forwarded-For": forwarded_for}
    if cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    async with websockets.connect(
        f"wss://localhost:{server.port}{path}",
        sock=raw,
        ssl=tls_context(data_dir),
        origin=websockets.Origin(f"https://localhost:{server.port}"),
        additional_headers=headers,
        open_timeout=10,
    ) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if first["type"] == "data":
            return "data", None
        with pytest.raises(websockets.ConnectionClosed) as ended:
            await asyncio.wait_for(ws.recv(), 10)
        assert ended.value.rcvd is not None
        return first["reason"], ended.value.rcvd.code


# (X-Forwarded-For from the trusted proxy, the address the filter must see)
FROM_THE_PROXY = [
    pytest.param(INSIDE_V4, INSIDE_V4, id="ipv4-inside"),
    pytest.param(OUTSIDE_V4, OUTSIDE_V4, id="ipv4-outside"),
    pytest.param(f"{OUTSIDE_V4}, {INSIDE_V4}", INSIDE_V4, id="client-written-hop-ignored"),
    pytest.param(f"{INSIDE_V4}, {OUTSIDE_V4}", OUTSIDE_V4, id="right-most-untrusted-hop"),
    pytest.param(f"{INSIDE_V4}, {PROXY}", INSIDE_V4, id="two-trusted-hops"),
    pytest.param(INSIDE_V6, INSIDE_V6, id="ipv6-inside"),
    pytest.param(OUTSIDE_V6, OUTSIDE_V6, id="ipv6-outside"),
]


def admitted(address: str) -> bool:
    return address in (INSIDE_V4, INSIDE_V6)


@pytest.mark.parametrize(("forwarded_for", "seen"), FROM_THE_PROXY)
def test_behind_the_trusted_proxy_pages_api_and_kiosk_filter_the_forwarded_client(
    server: Server,
    data_dir: Path,
    ids: dict[str, str],
    session: str,
    forwarded_for: str,
    seen: str,
) -> None:
    requests_ = {
        "page": ("/dashboards/", {"Cookie": f"{COOKIE}={session}"}),
        "api": ("/api/v1/metrics", {"Authorization": f"Bearer {ids['token']}"}),
        "kiosk": (f"/kiosk/{ids['kiosk']}", {}),
    }
    for name, (path, headers) in requests_.items():
        status, body = get(server, data_dir, path, forwarded_for=forwarded_for, headers=headers)
        if admitted(seen):
            assert status == 200, (name, status, body[:300])
        else:
            assert status == 403 and says_refused(body, seen), (name, status, body[:300])


@pytest.mark.parametrize("forwarded_for", [INSIDE_V4, INSIDE_V6, None])
def test_a_forged_header_from_an_untrusted_client_is_ignored(
    server: Server, data_dir: Path, ids: dict[str, str], session: str, forwarded_for: str | None
) -> None:
    for path, headers in (
        ("/dashboards/", {"Cookie": f"{COOKIE}={session}"}),
        ("/api/v1/metrics", {"Authorization": f"Bearer {ids['token']}"}),
        (f"/kiosk/{ids['kiosk']}", {}),
    ):
        status, body = get(
            server, data_dir, path, source=UNTRUSTED, forwarded_for=forwarded_for, headers=headers
        )
        assert status == 403 and says_refused(body, UNTRUSTED), (path, status, body[:300])


def test_the_proxy_itself_is_not_an_allowed_client(
    server: Server, data_dir: Path, session: str
) -> None:
    # Without X-Forwarded-For the trusted proxy's own address is the client, and it is outside.
    status, body = get(server, data_dir, "/dashboards/", headers={"Cookie": f"{COOKIE}={session}"})
    assert status == 403 and says_refused(body, PROXY)


def test_warm_reads_behind_the_proxy_serve_only_the_admitted_client(
    server: Server, data_dir: Path, ids: dict[str, str], session: str
) -> None:
    path, cookie = f"/dashboards/{ids['board']}/data/", {"Cookie": f"{COOKIE}={session}"}
    for _ in range(3):  # the first admits; the next are answered by the router itself
        status, body = get(server, data_dir, path, forwarded_for=INSIDE_V4, headers=cookie)
        assert status == 200 and json.loads(body)["dashboard"] == ids["board"]
    status, body = get(server, data_dir, path, forwarded_for=OUTSIDE_V4, headers=cookie)
    assert status == 403 and says_refused(body, OUTSIDE_V4)
    status, body = get(
        server, data_dir, path, source=UNTRUSTED, forwarded_for=INSIDE_V4, headers=cookie
    )
    assert status == 403 and says_refused(body, UNTRUSTED)


@pytest.mark.parametrize(
    ("source", "forwarded_for", "expected"),
    [
        pytest.param(PROXY, INSIDE_V4, ("data", None), id="proxy-ipv4-inside"),
        pytest.param(PROXY, INSIDE_V6, ("data", None), id="proxy-ipv6-inside"),
        pytest.param(PROXY, f"{OUTSIDE_V4}, {INSIDE_V4}", ("data", None), id="left-hop-ignored"),
        pytest.param(PROXY, OUTSIDE_V4, ("address_not_allowed", 4403), id="proxy-outside"),
        pytest.param(
            PROXY, f"{INSIDE_V6}, {OUTSIDE_V6}", ("address_not_allowed", 4403), id="right-most"
        ),
        pytest.param(UNTRUSTED, INSIDE_V4, ("address_not_allowed", 4403), id="forged"),
    ],
)
def test_websockets_behind_the_proxy_filter_the_forwarded_client(
    server: Server,
    data_dir: Path,
    ids: dict[str, str],
    session: str,
    source: str,
    forwarded_for: str,
    expected: tuple[str, int | None],
) -> None:
    board = ids["board"]
    for path, cookie in (
        (f"/ws/dashboards/{board}/", session),
        (f"/ws/kiosk/{ids['kiosk']}/{board}/", ""),
    ):
        verdict = run(
            socket_verdict(
                server, data_dir, path, source=source, forwarded_for=forwarded_for, cookie=cookie
            )
        )
        assert verdict == expected, path


def test_refusals_are_audited_with_the_forwarded_address(
    server: Server, data_dir: Path, ids: dict[str, str], session: str
) -> None:
    address = "203.0.113.77"  # used by no other test here
    get(
        server,
        data_dir,
        "/dashboards/",
        forwarded_for=address,
        headers={"Cookie": f"{COOKIE}={session}"},
    )
    get(
        server,
        data_dir,
        "/api/v1/metrics",
        forwarded_for=address,
        headers={"Authorization": f"Bearer {ids['token']}"},
    )
    entries = json.loads(
        dashvault(data_dir, "shell", "-c", REFUSALS).stdout.strip().splitlines()[-1]
    )
    assert [kind for kind, ip in entries if ip == address] == ["user", "token"]


def test_the_command_refuses_bad_input_with_a_non_zero_exit(
    data_dir: Path, ids: dict[str, str]
) -> None:
    for args, message in (
        (["--set", "198.51.100.0/24", "bogus"], "'bogus' is not an IPv4 or IPv6 network"),
        (["--set", ""], "--set needs at least one network"),
    ):
        result = dashvault(data_dir, "networks", ids["org"], *args, check=False)
        assert result.returncode != 0 and message in result.stderr, result.stderr
    missing = dashvault(data_dir, "networks", "No Such Org", check=False)
    assert missing.returncode != 0 and "No single organization matches" in missing.stderr
    # Nothing changed.
    shown = dashvault(data_dir, "networks", ids["org"]).stdout
    assert shown == f"{ids['org']}: admitted only from:\n  198.51.100.0/24\n  2001:db8:1::/48\n"
