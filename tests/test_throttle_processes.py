"""Failed sign-ins are counted once for all server processes (Redis), and say nothing about
which accounts exist. Two real `dashvault serve` processes share one data directory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import NamedTuple

import pytest
import redis
import requests

from tests.browser.conftest import Credentials, read_credentials
from tests.conftest import require_service
from tests.live import Server, dashvault, running_server

pytestmark = [pytest.mark.servers, pytest.mark.redis]

REDIS_URL = "redis://127.0.0.1:6379/5"  # a database of its own, flushed before each test
WRONG = "not-the-password-1234"
# allauth's own messages (allauth/account/adapter.py, DefaultAccountAdapter.error_messages).
LOCKED = "Too many failed login attempts. Try again later."
MISMATCH = "The email address and/or password you specified are not correct."


class Attempt(NamedTuple):
    status: int
    errors: list[str]
    location: str
    page: str


class Client:
    """One person's browser against one process: its own cookies, CSRF token and origin."""

    def __init__(self, server: Server, data_dir: Path, *, host: str = "") -> None:
        # `host`: what the Host header says, for a client that reaches the server at its
        # address but names it differently (any allowed name, any port number).
        self.url = f"https://127.0.0.1:{server.port}" if host else server.url
        self.origin = f"https://{host}" if host else server.url
        self.headers = {"Host": host} if host else {}
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or CA bundle from the environment
        self.session.verify = str(data_dir / "tls" / "cert.pem")

    def sign_in(self, email: str, password: str) -> Attempt:
        form = self.session.get(f"{self.url}/accounts/login/", headers=self.headers, timeout=30)
        assert form.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, "no CSRF token in the sign-in form"
        response = self.session.post(
            f"{self.url}/accounts/login/",
            data={"login": email, "password": password, "csrfmiddlewaretoken": token.group(1)},
            # Django checks the Referer on HTTPS posts: this is where the form came from.
            headers={**self.headers, "Referer": f"{self.origin}/accounts/login/"},
            allow_redirects=False,
            timeout=30,
        )
        errors = [
            unescape(re.sub(r"<[^>]+>", "", item)).strip()
            for block in re.findall(
                r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.text, re.S
            )
            for item in re.findall(r"<li>(.*?)</li>", block, re.S)
        ]
        return Attempt(
            response.status_code, errors, response.headers.get("Location", ""), response.text
        )


class Cluster(NamedTuple):
    a: Server
    b: Server
    data_dir: Path
    people: dict[str, Credentials]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    require_service("Redis", "127.0.0.1", 6379)
    redis.Redis.from_url(REDIS_URL).flushdb()
    data = tmp_path / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0")
    dashvault(data, "demo")
    env = {
        "DASHVAULT_REDIS_URL": REDIS_URL,
        # The per-address limit is raised out of the way: this file tests the per-account one
        # (allauth's default, 5 failures in 5 minutes), from one loopback address.
        "DASHVAULT_LOGIN_FAILED_LIMIT": "1000/m/ip,5/5m/key",
    }
    with running_server(data, env=env) as a, running_server(data, env=env) as b:
        assert a.port != b.port and a.process.pid != b.process.pid
        yield Cluster(a, b, data, read_credentials(data / "demo-sign-ins.txt"))
    redis.Redis.from_url(REDIS_URL).flushdb()


def test_failed_sign_ins_on_two_processes_lock_the_account_on_both(cluster: Cluster) -> None:
    viewer, editor = cluster.people["viewer"], cluster.people["editor"]
    on_a, on_b = Client(cluster.a, cluster.data_dir), Client(cluster.b, cluster.data_dir)

    # Five failures in all, spread over the processes: each one is an ordinary mistake.
    for client in (on_a, on_a, on_a, on_b, on_b):
        attempt = client.sign_in(viewer.email, WRONG)
        assert (attempt.status, attempt.errors) == (200, [MISMATCH])

    assert redis.Redis.from_url(REDIS_URL).dbsize() > 0  # the counts live in the shared Redis

    # The sixth is refused on either process: neither has seen five failures by itself.
    for client in (on_a, on_b):
        attempt = client.sign_in(viewer.email, WRONG)
        assert (attempt.status, attempt.errors) == (200, [LOCKED])
    # Locked means locked: the right password does not get in either, on either process.
    for client in (on_b, on_a):
        attempt = client.sign_in(viewer.email, viewer.password)
        assert (attempt.status, attempt.errors) == (200, [LOCKED])
        assert "__Host-dv_session" not in client.session.cookies

    # Another account is untouched: a mistake is just a mistake, the password works.
    attempt = on_a.sign_in(editor.email, WRONG)
    assert (attempt.status, attempt.errors) == (200, [MISMATCH])
    attempt = Client(cluster.b, cluster.data_dir).sign_in(editor.email, editor.password)
    assert attempt.status == 302 and attempt.errors == []


def test_another_host_name_or_port_in_the_request_does_not_reset_the_count(
    cluster: Cluster,
) -> None:
    viewer = cluster.people["viewer"]
    for _ in range(5):
        attempt = Client(cluster.a, cluster.data_dir).sign_in(viewer.email, WRONG)
        assert attempt.errors == [MISMATCH]
    # Every allowed host name, with any port: still the same account, still locked.
    for host in ("127.0.0.1", f"127.0.0.1:{cluster.a.port}", "localhost:1", "[::1]:8443"):
        attempt = Client(cluster.a, cluster.data_dir, host=host).sign_in(viewer.email, WRONG)
        assert (attempt.status, attempt.errors) == (200, [LOCKED]), host
    # Nor does the address's case or surrounding space make it another account.
    attempt = Client(cluster.b, cluster.data_dir).sign_in(" Viewer@ACME.example ", WRONG)
    assert attempt.errors == [LOCKED]


def test_unknown_email_and_wrong_password_get_the_same_answer(cluster: Cluster) -> None:
    known = cluster.people["admin"].email
    unknown = "nobody@acme.example"
    client = Client(cluster.a, cluster.data_dir)

    wrong_password = client.sign_in(known, WRONG)
    no_such_account = client.sign_in(unknown, WRONG)
    assert wrong_password.status == no_such_account.status == 200
    assert wrong_password.errors == no_such_account.errors == [MISMATCH]

    # The whole page, once the typed address and the per-request CSRF token are set aside.
    def normalised(attempt: Attempt, email: str) -> str:
        page = attempt.page.replace(email, "EMAIL")
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "TOKEN", page)

    assert normalised(wrong_password, known) == normalised(no_such_account, unknown)

    # Unknown addresses lock exactly like known ones, so the lock gives nothing away either.
    for _ in range(4):
        client.sign_in(unknown, WRONG)
    assert client.sign_in(unknown, WRONG).errors == [LOCKED]
