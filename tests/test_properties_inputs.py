"""Property tests (hypothesis) for the other parsers of outside input (issue 9, item 3): the
client address behind proxies (X-Forwarded-For), kiosk link tokens and token hashes, local days
and periods across DST changes in every time zone (and the rollups kept per local day), widget
options, the DASHVAULT_* environment readers, SSO ID-token claims, and the log filter that
keeps secrets out of log lines.

CIDR lists (policy.ipfilter normalize/allows) already have their properties in
test_ipfilter.py, period arithmetic on dates in test_periods.py, rollups in one zone in
test_rollups.py: not repeated here. Bugs found here (since fixed) have regression tests at the
end.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import os
import re
import urllib.parse
import zoneinfo
from typing import Any
from unittest import mock

import pytest
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.models import SocialAccount, SocialLogin
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.test import RequestFactory
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from dashvault.accounts.models import Role, User
from dashvault.asgi import resolve_client
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Dashboard, Widget, WidgetKind
from dashvault.dashboards.widgets import DEFAULTS, KIND_KEYS, read_config, validate_config
from dashvault.kiosk.actions import do_create_kiosk_link
from dashvault.kiosk.entry import LinkInvalid, enter, live_link
from dashvault.lib import config as env
from dashvault.lib.clientip import client_address, ip_or_none, is_trusted, parse_networks
from dashvault.lib.logfilter import redact
from dashvault.lib.numbers import MISSING, format_value
from dashvault.lib.tokens import compare_token, hash_token
from dashvault.metrics.ingest import PointIn, day_bounds, do_ingest, local_day, rebuild_rollups
from dashvault.metrics.models import DataPoint, Metric, Rollup
from dashvault.metrics.periods import PERIODS, period_days, previous_days, today_in
from dashvault.orgs.models import Group
from dashvault.sso.models import ClaimMapping, EmailDomain, IdentityProvider
from dashvault.sso.signin import admit, apply_mappings
from tests.conftest import LEAK_RE, SecureClient

PURE = settings(max_examples=150, deadline=None)
DB = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ZONES = sorted(zoneinfo.available_timezones())
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


# == client address: X-Forwarded-For only through trusted proxies ===============================

PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8", "192.0.2.0/24"])
trusted_addresses = st.one_of(
    st.ip_addresses(network="10.0.0.0/8"),
    st.ip_addresses(network="fd00::/8"),
    st.ip_addresses(network="192.0.2.0/24"),
)
any_addresses = st.one_of(trusted_addresses, st.ip_addresses())
hops = st.one_of(
    any_addresses.map(str),
    any_addresses.map(lambda a: a.exploded),
    st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
    st.ip_addresses(v=6).map(lambda a: f"{a}%eth0"),  # with a zone id
    st.sampled_from(["", "unknown", "_hidden", "10.0.0.1:8080", "[2001:db8::1]", "1.2.3"]),
    st.text(max_size=16).filter(lambda s: "," not in s),
)


def canonical(text: str) -> str | None:
    """The address as clientip reports it (IPv4-mapped IPv6 as IPv4, no zone id), or None."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address).split("%")[0]


def trusted(text: str) -> bool:
    found = canonical(text)
    return found is not None and any(ipaddress.ip_address(found) in n for n in PROXIES)


@PURE
@given(
    peer=st.one_of(any_addresses.map(str), hops),
    forwarded=st.one_of(st.none(), st.lists(hops, max_size=5)),
    separator=st.sampled_from([",", ", ", " ,  "]),
)
def test_the_client_is_the_peer_or_one_of_the_forwarded_hops(
    peer: str, forwarded: list[str] | None, separator: str
) -> None:
    header = None if forwarded is None else separator.join(forwarded)
    client = client_address(peer, header, PROXIES)
    if canonical(peer) is None:
        assert client == peer  # no address at all: passed on as it is (and refused later)
    elif not trusted(peer) or not header:
        assert client == canonical(peer)  # the header of an untrusted peer is never read
    else:
        assert client in {canonical(peer), *(canonical(h) for h in forwarded or [])}
        assert canonical(client) == client


untrusted_hops = st.one_of(
    st.ip_addresses().filter(lambda a: not trusted(str(a))).map(str),
    st.sampled_from(["unknown", "1.2.3", ""]),
)


@PURE
@given(
    peer=trusted_addresses.map(str),
    written_by_client=st.lists(hops, min_size=1, max_size=4),
    stop=untrusted_hops,
    appended_by_proxies=st.lists(trusted_addresses.map(str), max_size=3),
)
def test_nothing_a_client_writes_left_of_an_untrusted_hop_changes_the_client(
    peer: str, written_by_client: list[str], stop: str, appended_by_proxies: list[str]
) -> None:
    # The walk from the right stops at the first hop that is not a trusted proxy (or is not
    # an address): whatever lies further left, a client may have written, so it is ignored.
    honest = [stop, *appended_by_proxies]
    alone = client_address(peer, ",".join(honest), PROXIES)
    spoofed = client_address(peer, ",".join(written_by_client + honest), PROXIES)
    assert spoofed == alone
    expected = canonical(stop) or canonical(appended_by_proxies[0] if appended_by_proxies else peer)
    assert alone == expected


@PURE
@given(peer=st.ip_addresses(v=4), forwarded=st.lists(hops, max_size=3))
def test_an_ipv4_peer_seen_as_ipv4_mapped_ipv6_is_the_same_peer(
    peer: ipaddress.IPv4Address, forwarded: list[str]
) -> None:
    header = ",".join(forwarded)
    mapped = f"::ffff:{peer}"
    assert client_address(mapped, header, PROXIES) == client_address(str(peer), header, PROXIES)
    assert is_trusted(mapped, PROXIES) is is_trusted(str(peer), PROXIES)


@PURE
@given(text=st.one_of(any_addresses.map(str), any_addresses.map(lambda a: a.exploded), hops))
def test_ip_or_none_is_the_canonical_address_or_none(text: str) -> None:
    found = ip_or_none(text)
    assert found == canonical(text)
    assert ip_or_none(found) == found


@PURE
@given(
    peer=st.one_of(st.none(), any_addresses.map(str), hops),
    headers=st.lists(
        st.tuples(
            st.sampled_from([b"x-forwarded-for", b"X-Forwarded-Proto", b"host", b"x-other"]),
            st.binary(max_size=30),
        ),
        max_size=4,
    ),
    kind=st.sampled_from(["http", "websocket"]),
)
def test_the_router_never_fails_on_any_headers_and_trusts_only_its_proxies(
    peer: str | None, headers: list[tuple[bytes, bytes]], kind: str
) -> None:
    scope = {"type": kind, "scheme": "http" if kind == "http" else "ws", "headers": headers}
    if peer is not None:
        scope["client"] = (peer, 4242)
    resolved = resolve_client(scope, PROXIES)
    client, port = resolved["client"]
    assert port == (4242 if peer is not None else 0)
    if peer is None or not trusted(peer):
        assert resolved["scheme"] == scope["scheme"]
        assert client == (canonical(peer) or peer if peer is not None else "")


# == kiosk link tokens and token hashes ==========================================================

TOKEN_TEXT = st.one_of(
    st.text(max_size=120),
    st.text(max_size=60).map(lambda s: "dvk_" + s),
    st.text(min_size=5_000, max_size=6_000),  # huge
    st.just(""),
)


@st.composite
def near(draw: Any, token: str) -> str:
    """Anything, or the issued token changed a little (a character, cut, longer, case)."""
    how = draw(st.sampled_from(["any", "char", "cut", "longer", "case"]))
    if how == "char":
        i = draw(st.integers(0, len(token) - 1))
        c = draw(st.characters(codec="utf-8").filter(lambda c: c != token[i]))
        return token[:i] + c + token[i + 1 :]
    if how == "cut":
        return token[: draw(st.integers(0, len(token) - 1))]
    if how == "longer":
        return token + draw(st.text(min_size=1, max_size=10))
    if how == "case":
        return token.swapcase()
    return draw(TOKEN_TEXT)


@pytest.fixture
def kiosk(org_a: Any) -> tuple[Any, str]:
    board = Dashboard.objects.create(org=org_a, title="Sales A")
    return do_create_kiosk_link(org_a, name="TV", dashboards=[board], acting=None)


@DB
@given(data=st.data())
def test_only_the_issued_kiosk_token_finds_its_link_and_no_text_makes_it_fail(
    kiosk: tuple[Any, str], data: Any
) -> None:
    link, token = kiosk
    cache.clear()  # the guessing guard blocks an address after a few bad tokens
    presented = data.draw(near(token))
    assert live_link(presented) is None
    with pytest.raises(LinkInvalid):
        enter(presented, "203.0.113.9", source="kiosk")
    assert live_link(token) == link


@DB
@given(data=st.data())
def test_the_tv_page_opens_only_for_the_issued_token(kiosk: tuple[Any, str], data: Any) -> None:
    link, token = kiosk
    cache.clear()
    presented = data.draw(near(token))
    response = SecureClient().get("/kiosk/" + urllib.parse.quote(presented, safe=""))
    assert response.status_code == 404, (presented, response.status_code)
    if presented and "/" not in presented and len(presented) <= 200:  # the TV page's own 404
        assert b"This kiosk link no longer works" in response.content
        assert response["Cache-Control"] == "no-store"
    assert SecureClient().get(f"/kiosk/{token}").status_code == 200


@PURE
@given(actual=st.text(max_size=100), expected=st.text(max_size=100))
def test_a_token_matches_only_the_hash_of_itself(actual: str, expected: str) -> None:
    stored = hash_token(expected)
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert compare_token(actual=actual, expected_hash=stored) is (actual == expected)
    assert compare_token(actual=actual, expected_hash=hash_token(actual)) is True


# == local days and periods across DST changes, in every zone ===================================

instants = st.datetimes(
    min_value=dt.datetime(1900, 1, 3),
    max_value=dt.datetime(2199, 12, 28),
    timezones=st.just(dt.UTC),
)


def midnight_is_ambiguous(day: dt.date, tz: zoneinfo.ZoneInfo) -> bool:
    """Whether 00:00 on `day` happens twice (a clock set back across midnight)."""
    first = dt.datetime.combine(day, dt.time(), tz)
    return first.utcoffset() != first.replace(fold=1).utcoffset() and (
        first.astimezone(dt.UTC) < first.replace(fold=1).astimezone(dt.UTC)
    )


@settings(max_examples=400, deadline=None)
@given(when=instants, zone=st.sampled_from(ZONES))
@example(when=dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC), zone="Europe/Helsinki")
@example(when=dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC), zone="Europe/Helsinki")
@example(when=dt.datetime(2011, 12, 30, 10, 0, tzinfo=dt.UTC), zone="Pacific/Apia")  # no 30 Dec
@example(when=dt.datetime(2024, 9, 7, 4, 30, tzinfo=dt.UTC), zone="America/Santiago")  # midnight
@example(when=dt.datetime(1999, 10, 31, 2, 40, tzinfo=dt.UTC), zone="America/St_Johns")
def test_every_instant_lies_within_the_bounds_of_its_local_day(
    when: dt.datetime, zone: str
) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    day = local_day(when, tz)
    assert today_in(zone, when) == day
    start, end = day_bounds(day, tz)
    assert start <= end
    assert local_day(start, tz) == day
    if midnight_is_ambiguous(day + dt.timedelta(days=1), tz):
        # 00:01 set back to 23:01 (Newfoundland until 2011): the repeated hour belongs to the
        # earlier day but comes after the next day's first midnight (the rollups allow for it:
        # test_a_replacement_in_newfoundlands_repeated_hour_keeps_the_rollup_exact).
        event("midnight happens twice")
        return
    assert start <= when < end


@settings(max_examples=300, deadline=None)
@given(when=instants, zone=st.sampled_from(ZONES), period=st.sampled_from(sorted(PERIODS)))
def test_a_periods_instants_contain_now_and_never_overlap_the_previous_periods(
    when: dt.datetime, zone: str, period: str
) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    today = today_in(zone, when)
    first, last = period_days(period, today)
    if first is None:
        return
    edges = (first, today, today + dt.timedelta(days=1))
    assume(not any(midnight_is_ambiguous(d, tz) for d in edges))
    start, _ = day_bounds(first, tz)
    _, end = day_bounds(last, tz)
    if period == "yesterday":
        assert end <= when
    else:
        assert start <= when < end
    previous = previous_days(period, today)
    assert previous is not None
    _, previous_end = day_bounds(previous[1], tz)
    assert previous_end <= start


@pytest.fixture
def zoned_org(org_a: Any) -> Any:
    Metric.objects.create(org=org_a, key="deals", name="Deals")
    return org_a


@st.composite
def near_midnights(draw: Any, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """An instant within 90 minutes of a local midnight (where days are cut)."""
    day = draw(st.dates(min_value=dt.date(1970, 1, 2), max_value=dt.date(2100, 12, 30)))
    minutes = draw(st.integers(-90, 90))
    return dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC) + dt.timedelta(
        minutes=minutes
    )


def snapshot(org: Any) -> list[tuple[Any, ...]]:
    rows = Rollup.objects.filter(org=org).values_list(
        "day", "dimension", "total", "count", "minimum", "maximum", "latest_ts", "latest_value"
    )
    return sorted(tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows)


@DB
@given(zone=st.sampled_from(ZONES), data=st.data())
def test_rollups_equal_a_rebuild_in_any_zone_around_midnights(
    zoned_org: Any, zone: str, data: Any
) -> None:
    org = zoned_org
    org.time_zone = zone
    org.save(update_fields=["time_zone"])
    tz = zoneinfo.ZoneInfo(zone)
    DataPoint.objects.filter(org=org).delete()
    Rollup.objects.filter(org=org).delete()
    batches = data.draw(
        st.lists(
            st.lists(
                st.builds(
                    PointIn,
                    metric_key=st.just("deals"),
                    ts=near_midnights(tz),
                    value=st.integers(-1000, 1000).map(float),
                    dimension=st.sampled_from(["", "a"]),
                    external_id=st.one_of(st.none(), st.sampled_from(["e1", "e2"])),
                ),
                min_size=1,
                max_size=4,
            ),
            min_size=1,
            max_size=3,
        )
    )
    for batch in batches:
        do_ingest(org, batch)
    incremental = snapshot(org)
    rebuild_rollups(org)
    assert incremental == snapshot(org)


# == widget options ==============================================================================

OPTION_VALUES = st.one_of(
    st.sampled_from(sorted(PERIODS)),
    st.sampled_from(["day", "week", "month", "sum", "average", "latest", "hour", "SUM"]),
    st.integers(-5, 60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),  # beyond a double too
    st.booleans(),
    st.none(),
    st.text(max_size=30),
    st.text(min_size=1990, max_size=2010),
)
OPTIONS = st.dictionaries(
    st.sampled_from([*DEFAULTS, "colour", "Period"]), OPTION_VALUES, max_size=5
)
KINDS = st.sampled_from([*KIND_KEYS, "pie", ""])


@PURE
@given(kind=KINDS, config=st.one_of(OPTIONS, JSON), has_metric=st.booleans())
def test_widget_options_are_complete_and_checked_or_refused_field_by_field(
    kind: str, config: Any, has_metric: bool
) -> None:
    try:
        cleaned = validate_config(kind, config, has_metric=has_metric)
    except ValidationError as exc:
        assert exc.message_dict and all(exc.message_dict.values())
        return
    assert set(cleaned) == set(KIND_KEYS[kind])
    assert validate_config(kind, cleaned, has_metric=has_metric) == cleaned  # a fixed point
    widget = Widget(kind=kind, config=cleaned)
    assert read_config(widget) == cleaned
    if "target" in cleaned and cleaned["target"] is not None:
        assert math.isfinite(cleaned["target"]) and cleaned["target"] >= 0


@PURE
@given(kind=st.sampled_from(list(KIND_KEYS)), stored=st.one_of(OPTIONS, JSON))
def test_a_stored_widget_always_reads_as_valid_options(kind: str, stored: Any) -> None:
    options = read_config(Widget(kind=kind, config=stored))
    has_metric = kind != WidgetKind.TEXT
    assert validate_config(kind, options, has_metric=has_metric) == options


# == DASHVAULT_* environment variables ===========================================================

# What an environment can hold: no NUL, and undecodable bytes as surrogate escapes.
ENV_TEXT = st.text(
    st.one_of(
        st.characters(codec="utf-8", exclude_characters="\x00"),
        st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
    ),
    max_size=20,
)
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def with_env(name: str, value: str) -> Any:
    return mock.patch.dict(os.environ, {"DASHVAULT_" + name: value})


def spaced(words: tuple[str, ...]) -> Any:
    return st.tuples(st.sampled_from(words), st.sampled_from(["", " ", "\t"]), st.booleans()).map(
        lambda t: t[1] + (t[0].upper() if t[2] else t[0]) + t[1]
    )


@PURE
@given(raw=st.one_of(ENV_TEXT, spaced(TRUE_WORDS), spaced(FALSE_WORDS)), default=st.booleans())
def test_a_boolean_setting_is_one_of_eight_words_or_start_up_stops(raw: str, default: bool) -> None:
    with with_env("PROPERTY_FLAG", raw):
        try:
            value = env.envbool("PROPERTY_FLAG", default)
        except ImproperlyConfigured:
            assert raw.strip().lower() not in (*TRUE_WORDS, *FALSE_WORDS, "")
            return
    word = raw.strip().lower()
    assert value is (default if word == "" else word in TRUE_WORDS)


@PURE
@given(
    raw=st.one_of(ENV_TEXT, st.integers(-(10**30), 10**30).map(lambda n: f" {n} ")),
    minimum=st.integers(0, 5),
)
def test_a_whole_number_setting_reads_its_number_or_start_up_stops(raw: str, minimum: int) -> None:
    expected: int | None
    try:
        expected = int(raw.strip()) if raw.strip() else 7
    except ValueError:
        expected = None
    if expected is not None and raw.strip() and expected < minimum:
        expected = None
    with with_env("PROPERTY_COUNT", raw):
        try:
            value = env.envint("PROPERTY_COUNT", 7, minimum=minimum)
        except ImproperlyConfigured as exc:
            assert expected is None and "DASHVAULT_PROPERTY_COUNT" in str(exc)
            return
    assert value == expected


@PURE
@given(items=st.lists(ENV_TEXT.filter(lambda s: "," not in s and s.strip()), max_size=5))
def test_a_list_setting_reads_back_its_items(items: list[str]) -> None:
    with with_env("PROPERTY_LIST", " , ".join(items) + ","):
        assert env.envlist("PROPERTY_LIST") == [i.strip() for i in items]


# == SSO: the ID token's claims ==================================================================

TENANT = "11111111-2222-3333-4444-555555555555"
CLAIM_VALUES = st.one_of(JSON_LEAF, st.lists(JSON_LEAF, max_size=3), JSON)


@st.composite
def claims(draw: Any) -> dict[str, Any]:
    """An ID token's claims: mostly the right tenant and an address, with near misses."""
    out: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), CLAIM_VALUES, max_size=3))
    if draw(st.integers(0, 3)):
        out["tid"] = TENANT
    elif draw(st.booleans()):
        out["tid"] = draw(st.sampled_from([TENANT.upper(), " " + TENANT, "", None]) | CLAIM_VALUES)
    how = draw(st.integers(0, 4))
    if how in (0, 1):
        out["email"] = draw(
            st.sampled_from(
                ["ann@a.example", " Ann@A.EXAMPLE ", "ann@b.example", "ann@sub.a.example",
                 "ann@a.example@b.example", "b.example@a.example", "ann@a.example."]
            )
        )  # fmt: skip
    elif how == 2:
        out["email"] = draw(st.text(max_size=10).map(lambda s: s + "@a.example"))
    elif how == 3:
        out["email"] = draw(st.sampled_from(["ann", "@", ""]) | CLAIM_VALUES)
    return out


@pytest.fixture
def azure_org(org_a: Any) -> IdentityProvider:
    EmailDomain.objects.create(org=org_a, domain="a.example")
    return IdentityProvider.objects.create(
        org=org_a, kind="azure", client_id="c", client_secret=b"", tenant_id=TENANT
    )


def expected_refusal(token: dict[str, Any]) -> str:
    """The contract's order (sso.signin): tenant, verified address, domain, then the account."""
    if str(token.get("tid", "")) != TENANT:
        return "wrong_tenant"
    email = str(token.get("email") or "").strip().lower()
    if "@" not in email:
        return "email_missing"
    if email.rsplit("@", 1)[1] != "a.example":
        return "domain_not_allowed"
    return "not_added"  # federation is off and nobody has the address


@DB
@given(token=claims(), wrapped=st.booleans())
def test_any_claims_are_refused_in_the_contracts_order_and_create_nothing(
    azure_org: IdentityProvider, token: dict[str, Any], wrapped: bool
) -> None:
    users = User.objects.count()
    extra = {"id_token": token} if wrapped else token
    login = SocialLogin(
        user=User(email="x@a.example"),
        account=SocialAccount(provider=azure_org.provider_id, uid="oid-1", extra_data=extra),
    )
    request = RequestFactory().get("/accounts/oidc/callback/")
    with pytest.raises(ImmediateHttpResponse) as refused:
        admit(request, login)
    assert refused.value.response.status_code == 403
    last = AuditEntry.objects.filter(action="sso.refused").order_by("-id").first()
    assert last is not None and last.detail["reason"] == expected_refusal(token)
    event(last.detail["reason"])
    assert User.objects.count() == users


@DB
@given(
    groups_claim=st.one_of(
        st.lists(st.one_of(st.sampled_from(["g-sales", "g-ops", "admins"]), JSON_LEAF)),
        CLAIM_VALUES,
    ),
    roles_claim=st.one_of(st.sampled_from(["admins", "g-ops", ["editors"]]), CLAIM_VALUES),
)
def test_mapped_groups_and_role_follow_exactly_the_claims_values(
    org_a: Any, admin_a: User, viewer_a: User, groups_claim: Any, roles_claim: Any
) -> None:
    sales = Group.objects.get_or_create(org=org_a, name="Sales")[0]
    ops = Group.objects.get_or_create(org=org_a, name="Ops")[0]
    other = Group.objects.get_or_create(org=org_a, name="Unmapped")[0]
    if not ClaimMapping.objects.filter(org=org_a).exists():
        ClaimMapping.objects.create(org=org_a, value="g-sales", group=sales)
        ClaimMapping.objects.create(org=org_a, value="g-ops", group=ops, role=Role.EDITOR)
        ClaimMapping.objects.create(org=org_a, value="admins", role=Role.ADMIN)
    other.members.add(viewer_a)
    token = {"groups": groups_claim, "roles": roles_claim}
    apply_mappings(viewer_a, org_a, token)

    def values(claim: Any) -> set[str]:
        if isinstance(claim, list):
            return {str(v) for v in claim}
        return {claim} if isinstance(claim, str) and claim else set()

    seen = values(groups_claim) | values(roles_claim)
    mine = set(viewer_a.dashboard_groups.filter(org=org_a))
    assert (sales in mine) is ("g-sales" in seen)
    assert (ops in mine) is ("g-ops" in seen)
    assert other in mine  # groups without a mapping are the admins' to set
    viewer_a.refresh_from_db()
    expected = Role.ADMIN if "admins" in seen else Role.EDITOR if "g-ops" in seen else Role.VIEWER
    assert viewer_a.role == expected


# == numbers shown on screens ===================================================================


@PURE
@given(
    value=st.one_of(st.none(), st.floats(), st.integers(-(10**15), 10**15)),
    unit=st.one_of(st.sampled_from(["number", "currency", "percent", "duration"]), st.text()),
    currency=st.one_of(st.sampled_from(["EUR", "jpy", "SEK", " usd ", ""]), st.text(max_size=5)),
)
def test_any_stored_value_unit_and_currency_format_without_failing(
    value: float | None, unit: str, currency: str
) -> None:
    text = format_value(value, unit, currency)
    if value is None or not math.isfinite(value):
        assert text == MISSING
        return
    assert any(c.isdigit() for c in text)
    if unit == "percent":
        assert text == format_value(value, "number") + "%"
    if unit not in ("currency", "percent", "duration"):
        assert text == format_value(value, "number")


# == the log filter ==============================================================================


@PURE
@given(
    text=st.one_of(
        st.text(max_size=80),
        st.lists(
            st.one_of(
                st.text(max_size=8),
                st.sampled_from(
                    [
                        "ann@a.example",
                        "dvk_AAAAAAAAAAAA",
                        "dvp_abcdefgh_-12",
                        "/kiosk/",
                        "token=",
                        "Bearer ",
                        "password: ",
                        "@",
                        ".",
                        "-",
                        " ",
                        '"',
                    ]
                ),
            ),
            max_size=10,
        ).map("".join),
    )
)
@example(text="x@a.b-dvk_AAAAAAAA")
@example(text="/kiosk/dvk_AAAAAAAAAAAA?next=ann@a.example")
def test_a_redacted_line_holds_no_address_or_token(text: str) -> None:
    clean = redact(text)
    assert not LEAK_RE.search(clean), clean


# == regressions: bugs the properties above found, since fixed =====================================


def test_a_replacement_in_newfoundlands_repeated_hour_keeps_the_rollup_exact(
    zoned_org: Any,
) -> None:
    org = zoned_org
    org.time_zone = "America/St_Johns"
    org.save(update_fields=["time_zone"])
    ts = dt.datetime(1999, 10, 31, 2, 40, tzinfo=dt.UTC)  # 23:10 NST on 30 Oct, the 2nd time
    do_ingest(org, [PointIn("deals", ts, 5.0, "", "e1")])
    do_ingest(org, [PointIn("deals", ts, 7.0, "", "e1")])  # the same id: replaces
    assert [(r.day, r.total) for r in Rollup.objects.filter(org=org)] == [
        (dt.date(1999, 10, 30), 7.0)
    ]


def test_an_address_for_an_address_column_has_no_zone_id() -> None:
    found = ip_or_none("fe80::1%eth0")
    assert found is not None and "%" not in found


def test_a_huge_integer_target_is_refused() -> None:
    with pytest.raises(ValidationError):
        validate_config("kpi", {"target": 10**400}, has_metric=True)
