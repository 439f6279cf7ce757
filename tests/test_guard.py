"""The guessing guard (DESIGN C5): bad kiosk links and API tokens from one address block it for
an escalating time, before any session or database work; blocks and their ends are audited.

Time is frozen: `dashvault.policy.guard.clock` is replaced, and moved by hand.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import AsyncIterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from dashvault.accounts.models import User
from dashvault.api.actions import do_create_token, do_revoke_token
from dashvault.api.models import ApiToken
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Dashboard
from dashvault.kiosk.actions import do_create_kiosk_link
from dashvault.lib.tokens import new_token
from dashvault.live import consumers
from dashvault.live.hub import hub
from dashvault.policy import guard
from tests.conftest import SecureClient, make_client
from tests.live import dashvault
from tests.test_live import refused_after_accept, socket

WINDOW = 600.0  # GUARD_WINDOW_MINUTES = 10
DAY = 86400.0
START = 1_800_000_000.0  # a multiple of WINDOW: the frozen clock starts a fixed window
ATTACKER = "198.51.100.66"
NEIGHBOUR = "203.0.113.20"
API_URL = "/api/v1/metrics"


class Clock:
    """What guard.clock() answers; moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock()
    monkeypatch.setattr(guard, "clock", frozen)
    return frozen


@pytest.fixture
def kiosk_token(dashboards_a: dict[str, Any], admin_a: User) -> str:
    """A live kiosk link of org A, showing "Sales A"."""
    sales = dashboards_a["sales"]
    return do_create_kiosk_link(sales.org, name="TV", dashboards=[sales], acting=admin_a)[1]


@pytest.fixture
def api_token(org_a: Any, admin_a: User) -> str:
    return do_create_token(org_a, "ci", ["read"], expires_at=None, acting=admin_a)[1]


def guess(address: str = ATTACKER, times: int = 1) -> list[int]:
    """Bad kiosk tokens from `address`: the statuses of the TV page."""
    return [tv(new_token("dvk_"), address).status_code for _ in range(times)]


def tv(token: str, address: str = ATTACKER, client: SecureClient | None = None) -> Any:
    return (client or SecureClient()).get(f"/kiosk/{token}", REMOTE_ADDR=address)


def api(token: str, address: str = ATTACKER, client: SecureClient | None = None) -> Any:
    client = client or SecureClient()
    return client.get(API_URL, REMOTE_ADDR=address, headers={"Authorization": f"Bearer {token}"})


def blocked(address: str = ATTACKER) -> bool:
    return guard.blocked_until(address) is not None


def audits(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


# -- the threshold -----------------------------------------------------------------------------


def test_nine_bad_tokens_leave_the_address_unblocked(clock: Clock, kiosk_token: str) -> None:
    assert guess(times=9) == [404] * 9
    assert not blocked()
    assert tv(kiosk_token).status_code == 200  # a good link neither blocks nor resets
    assert not audits("guard.blocked")


def test_the_tenth_bad_token_starts_the_block(clock: Clock, kiosk_token: str) -> None:
    guess(times=9)
    assert guess() == [404]  # the tenth is answered as usual; the block starts with it
    assert guard.blocked_until(ATTACKER) == START + 15 * 60
    response = tv(new_token("dvk_"))
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert b"Too many invalid kiosk links" in response.content
    # Refusals are kiosk pages too: no referrer, no index, no cache, no cookie.
    assert response["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response["X-Robots-Tag"] and response["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response


def test_a_blocked_address_is_refused_everywhere_even_with_good_credentials(
    clock: Clock, kiosk_token: str, api_token: str
) -> None:
    guess(times=10)
    clock.advance(60)
    page = tv(kiosk_token)
    assert (page.status_code, page["Retry-After"]) == (429, "840")
    assert b"Sales A" not in page.content
    response = api(api_token)
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "840"
    assert response.json() == {
        "detail": "Too many invalid tokens from this address. Try again later."
    }
    assert api(new_token("dvp_")).status_code == 429
    assert SecureClient().get("/api/nowhere", REMOTE_ADDR=ATTACKER).status_code == 429


def test_other_addresses_keep_working_during_an_attack(
    clock: Clock, kiosk_token: str, api_token: str
) -> None:
    guess(times=30)
    assert tv(kiosk_token).status_code == 429
    assert tv(kiosk_token, NEIGHBOUR).status_code == 200
    assert api(api_token, NEIGHBOUR).status_code == 200
    assert guess(NEIGHBOUR) == [404]  # counted for the neighbour alone
    assert not blocked(NEIGHBOUR)


def test_kiosk_and_api_failures_add_up(clock: Clock, kiosk_token: str) -> None:
    guess(times=5)
    for _ in range(4):
        assert api(new_token("dvp_")).status_code == 401
    assert not blocked()
    assert api("dvp_" + "x" * 43).status_code == 401
    assert tv(kiosk_token).status_code == 429
    assert audits("guard.blocked")[0].detail["source"] == "api"  # the failure that tipped it


def test_the_block_shrinks_as_time_passes_and_its_end_lifts_it(
    clock: Clock, kiosk_token: str
) -> None:
    guess(times=10)
    clock.advance(15 * 60 - 1)
    assert tv(kiosk_token)["Retry-After"] == "1"
    clock.advance(1)
    assert tv(kiosk_token).status_code == 200
    assert not blocked()
    # Failures before the block were forgotten when it started: a fresh count of ten.
    assert guess(times=9) == [404] * 9
    assert not blocked()


# -- the sliding window ------------------------------------------------------------------------


def test_failures_older_than_the_window_do_not_add_up(clock: Clock, db: Any) -> None:
    guess(times=9)
    clock.advance(WINDOW + 1)
    guess()  # one in the last ten minutes (nine more lie just beyond them)
    assert not blocked()
    clock.advance(WINDOW + 1)
    guess(times=9)  # nineteen in twenty minutes, never ten in ten
    assert not blocked()
    guess()
    assert blocked()


def test_failures_older_than_the_window_never_count_at_all(clock: Clock, db: Any) -> None:
    guess(times=9)
    clock.advance(WINDOW + 10)
    guess(times=2)  # two in the last ten minutes
    assert not blocked()


def test_failures_count_for_at_least_nine_tenths_of_the_window(clock: Clock, db: Any) -> None:
    guess(times=9)
    clock.advance(WINDOW * 0.9 - 1)
    guess(times=1)
    assert blocked()


def test_failures_just_before_a_window_boundary_still_count_after_it(clock: Clock, db: Any) -> None:
    clock.advance(WINDOW - 10)
    guess(times=5)
    clock.advance(20)  # the next fixed window: a sliding count still sees those five
    guess(times=4)
    assert not blocked()
    guess(times=2)  # eleven in twenty seconds
    assert blocked()


# -- escalation --------------------------------------------------------------------------------


def block_now(address: str = ATTACKER) -> int:
    """Ten bad tokens; the new block's length in minutes, as the refusal tells it."""
    guess(address, times=10)
    response = tv(new_token("dvk_"), address)
    assert response.status_code == 429
    return int(response["Retry-After"]) // 60


def test_repeated_blocks_double_up_to_a_day(clock: Clock, kiosk_token: str) -> None:
    lengths = []
    for _ in range(10):
        minutes = block_now()
        lengths.append(minutes)
        clock.advance(minutes * 60)  # the block ends...
        assert tv(kiosk_token).status_code == 200  # ...and with it the refusals
        clock.advance(3600)  # an hour's quiet: well within a day of the last block
    assert lengths == [15, 30, 60, 120, 240, 480, 960, 1440, 1440, 1440]
    entries = audits("guard.blocked")
    assert [e.detail["minutes"] for e in entries] == lengths
    assert [e.detail["level"] for e in entries] == list(range(10))


def test_a_quiet_day_resets_the_block_length(clock: Clock, db: Any) -> None:
    assert block_now() == 15
    clock.advance(15 * 60)
    clock.advance(DAY - 1)  # a second short of a quiet day
    assert block_now() == 30
    clock.advance(30 * 60)
    clock.advance(DAY)  # a whole quiet day
    assert block_now() == 15


def test_a_block_after_very_many_stays_at_a_day(clock: Clock, kiosk_token: str) -> None:
    """Years of daily blocks (level past 1023): still a day, never an overflow that would
    answer 500 and leave the address unblocked."""
    key = guard.PREFIX + "block:" + guard.address_key(ATTACKER)
    guard.cache.set(key, {"until": START - 60, "level": 1100}, timeout=3600)
    assert block_now() == 24 * 60
    assert audits("guard.blocked")[0].detail == {"source": "kiosk", "minutes": 1440, "level": 1101}


# -- what counts: per address, IPv6 per /64 ----------------------------------------------------


def test_ipv6_addresses_count_per_64(clock: Clock, kiosk_token: str) -> None:
    guess("2001:db8:1:2::1", times=5)
    guess("2001:db8:1:2:ffff:ffff:ffff:fffe", times=5)
    # The whole /64 is blocked, any address in it...
    assert tv(kiosk_token, "2001:db8:1:2::abcd").status_code == 429
    assert blocked("2001:db8:1:2::1")
    # ...and the next /64 is not.
    assert tv(kiosk_token, "2001:db8:1:3::1").status_code == 200
    guess("2001:db8:1:3::1", times=9)
    assert not blocked("2001:db8:1:3::1")
    entry = audits("guard.blocked")[0]
    assert entry.ip == "2001:db8:1:2:ffff:ffff:ffff:fffe"  # the address, never a name


def test_address_keys() -> None:
    assert guard.address_key("203.0.113.9") == "203.0.113.9"
    assert (
        guard.address_key("2001:db8::1") == guard.address_key("2001:db8::ffff") == ("2001:db8::/64")
    )
    assert guard.address_key("2001:db8:0:1::1") == "2001:db8:0:1::/64"
    # An IPv4 address written as IPv6 counts as itself, not with every other one in ::/64.
    assert guard.address_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert guard.address_key("::ffff:203.0.113.9") != guard.address_key("::ffff:198.51.100.1")


# -- no database work once blocked -------------------------------------------------------------


def test_a_blocked_address_costs_no_database_query(
    clock: Clock,
    kiosk_token: str,
    api_token: str,
    admin_a: User,
    dashboards_a: dict[str, Any],
    django_assert_num_queries: Any,
) -> None:
    guess(times=10)
    signed_in = make_client(admin_a)  # a session cookie rides along: still nothing read
    sales = dashboards_a["sales"]
    with django_assert_num_queries(0):
        assert tv(kiosk_token, client=signed_in).status_code == 429
        assert tv(new_token("dvk_"), client=signed_in).status_code == 429
        assert tv(kiosk_token).status_code == 429
        assert api(api_token, client=signed_in).status_code == 429
        assert api(new_token("dvp_")).status_code == 429
        # The kiosk socket's admission, as the consumer runs it in its worker thread.
        refusal = consumers.authorize_kiosk(kiosk_token, ATTACKER, str(sales.pk))
    assert refusal == consumers.Refusal(4429, "blocked")


# -- audit -------------------------------------------------------------------------------------


def test_a_block_is_audited_once_as_a_platform_event(clock: Clock, kiosk_token: str) -> None:
    guess(times=10)
    guess(times=20)  # refused while blocked: no new entry
    tv(kiosk_token)
    [entry] = audits("guard.blocked")
    assert entry.org_id is None  # a platform event: the address belongs to no org
    assert (entry.actor_kind, entry.actor_id, entry.target_id) == ("anonymous", None, "")
    assert entry.ip == ATTACKER
    assert entry.detail == {"source": "kiosk", "minutes": 15, "level": 0}


def test_racing_processes_start_one_block_with_one_entry(
    clock: Clock, monkeypatch: pytest.MonkeyPatch, db: Any
) -> None:
    """Processes that counted their failures before any of them saw the block all try to
    start it: each reads no block yet (a stale read), only one starts it."""
    guess(times=9)
    block_key = guard.PREFIX + "block:" + guard.address_key(ATTACKER)

    class StaleCache:
        """The shared cache, as read by a process that has not yet seen the block."""

        def __getattr__(self, name: str) -> Any:
            return getattr(guard_cache, name)

        def get(self, key: str, default: Any = None) -> Any:
            return default if key == block_key else guard_cache.get(key, default)

    guard_cache = guard.cache
    with monkeypatch.context() as patched:
        patched.setattr(guard, "cache", StaleCache())
        for _ in range(20):
            guard.failed(ATTACKER, source="kiosk")
    assert len(audits("guard.blocked")) == 1
    assert guard.blocked_until(ATTACKER) == START + 15 * 60


@pytest.mark.django_db(transaction=True)
def test_threads_racing_past_the_threshold_start_one_block(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen requests fail at once, each reading the block entry slowly (as over a busy
    network to Redis): all of them see no block yet, one starts it."""
    guess(times=9)
    shared = guard.cache
    block_key = guard.PREFIX + "block:" + guard.address_key(ATTACKER)

    class SlowReads:
        def __getattr__(self, name: str) -> Any:
            return getattr(shared, name)

        def get(self, key: str, default: Any = None) -> Any:
            value = shared.get(key, default)
            if key == block_key:
                time.sleep(0.05)
            return value

    monkeypatch.setattr(guard, "cache", SlowReads())
    gate = threading.Barrier(16)
    errors: list[BaseException] = []

    def fail() -> None:
        try:
            gate.wait(timeout=10)
            guard.failed(ATTACKER, source="kiosk")
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fail) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(audits("guard.blocked")) == 1
    assert blocked()


def test_the_end_of_a_block_is_audited_once_on_the_next_request(
    clock: Clock, kiosk_token: str
) -> None:
    guess(times=10)
    clock.advance(15 * 60 - 1)
    tv(kiosk_token)
    assert not audits("guard.lifted")  # not yet over
    clock.advance(1)
    for _ in range(3):
        assert tv(kiosk_token).status_code == 200
    [entry] = audits("guard.lifted")
    assert entry.org_id is None and entry.ip == ATTACKER
    assert entry.detail == {"level": 0}


@pytest.fixture
def with_redis_setting(settings: Any) -> None:
    """The command refuses to run without DASHVAULT_REDIS_URL (state out of its reach); the
    test's cache stands in for the shared Redis one."""
    settings.REDIS_URL = "redis://127.0.0.1:6379/7"


def run_guard(*args: str) -> str:
    out = StringIO()
    call_command("guard", *args, stdout=out)
    return out.getvalue()


def test_an_operator_lifts_a_block_with_the_guard_command(
    clock: Clock, kiosk_token: str, with_redis_setting: None
) -> None:
    assert run_guard("status", ATTACKER) == f"{ATTACKER}: not blocked.\n"
    guess(times=10)
    until = dt.datetime.fromtimestamp(START + 900, dt.UTC).isoformat(timespec="seconds")
    assert run_guard("status", ATTACKER) == f"{ATTACKER}: blocked until {until}.\n"
    assert run_guard("lift", ATTACKER) == f"{ATTACKER}: block lifted.\n"
    assert tv(kiosk_token).status_code == 200
    assert run_guard("lift", ATTACKER) == f"{ATTACKER}: not blocked.\n"
    [entry] = audits("guard.lifted")  # the command's lift; the next request adds none
    assert entry.org_id is None and entry.actor_kind == "system"
    assert entry.detail == {"blocked_ip": ATTACKER, "level": 0}
    # Lifting forgives the block, not the history: guessing again blocks for longer.
    assert block_now() == 30


def test_the_guard_command_lifts_a_whole_ipv6_64(
    clock: Clock, kiosk_token: str, with_redis_setting: None
) -> None:
    guess("2001:db8:5::1", times=10)
    assert run_guard("lift", "2001:db8:5::77") == "2001:db8:5::/64: block lifted.\n"
    assert tv(kiosk_token, "2001:db8:5::1").status_code == 200


def test_the_guard_command_without_redis_says_why_it_cannot_work(
    settings: Any, tmp_path: Path
) -> None:
    settings.REDIS_URL = ""
    for action in ("lift", "status"):
        with pytest.raises(CommandError, match="DASHVAULT_REDIS_URL"):
            call_command("guard", action, ATTACKER)
    # The real command line: a non-zero exit and the reason, no traceback.
    done = dashvault(tmp_path / "data", "guard", "lift", ATTACKER, check=False)
    assert done.returncode != 0
    assert "Without DASHVAULT_REDIS_URL" in done.stderr
    assert "Traceback" not in done.stderr


# -- API tokens --------------------------------------------------------------------------------


def test_unknown_revoked_and_expired_api_tokens_get_one_answer_and_each_counts(
    clock: Clock, org_a: Any, admin_a: User
) -> None:
    revoked, expired = [], []
    for i in range(4):
        row, secret = do_create_token(org_a, f"old{i}", ["read"], expires_at=None, acting=admin_a)
        do_revoke_token(row, acting=admin_a, ip=None)
        revoked.append(secret)
        row, secret = do_create_token(org_a, f"tmp{i}", ["read"], expires_at=None, acting=admin_a)
        ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now())
        expired.append(secret)

    answers = []
    for i in range(3):
        for token in (new_token("dvp_"), revoked[i], expired[i]):
            answers.append(api(token))
    assert {a.status_code for a in answers} == {401}
    assert {a.content for a in answers} == {b'{"detail": "Unauthorized"}'}
    assert not blocked()  # nine failures
    assert api(revoked[3]).status_code == 401  # the tenth, a revoked token: it counts alike
    assert blocked()
    assert audits("guard.blocked")[0].detail["source"] == "api"


def test_one_bad_token_repeated_counts_once_per_window(clock: Clock, db: Any) -> None:
    """A TV whose revoked link reconnects (a socket per dashboard) must not block its office;
    a guesser gains nothing from repeating a token."""
    same = new_token("dvk_")
    for _ in range(30):
        assert tv(same).status_code == 404
    assert not blocked()
    for _ in range(9):
        tv(new_token("dvk_"))
    assert blocked()  # the repeated token counted once, with nine new ones: ten
    clock.advance(24 * 3600)  # long after the block, in a new window
    tv(same)  # counts again, once
    assert not blocked()


# -- the kiosk websocket -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
class TestKioskSocketGuard:
    """Test sockets connect from 127.0.0.1."""

    @pytest_asyncio.fixture(autouse=True)
    async def fresh_hub(self) -> AsyncIterator[None]:
        hub.reset()
        yield
        hub.reset()
        await database_sync_to_async(connections.close_all)()

    async def test_bad_socket_tokens_block_the_address_and_then_sockets_get_4429(
        self, clock: Clock, kiosk_token: str, dashboards_a: dict[str, Any]
    ) -> None:
        sales: Dashboard = dashboards_a["sales"]
        for _ in range(10):
            bad = socket(None, path=f"/ws/kiosk/{new_token('dvk_')}/{sales.pk}/")
            assert await refused_after_accept(bad) == (4410, "link_invalid")
        good = socket(None, path=f"/ws/kiosk/{kiosk_token}/{sales.pk}/")
        assert await refused_after_accept(good) == (4429, "blocked")
        entry = await AuditEntry.objects.aget(action="guard.blocked")
        assert entry.ip == "127.0.0.1" and entry.detail["source"] == "kiosk_ws"
        # The same block holds for the TV page from that address.
        page = await database_sync_to_async(tv)(kiosk_token, "127.0.0.1")
        assert page.status_code == 429
