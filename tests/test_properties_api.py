"""Property tests (hypothesis) for the API's parsers of outside input (issue 9, item 3).

Everything goes through Django's test client with a real org API token, as a client would:
every body, query string, header and path a client can send is either stored exactly as sent
(round trip through the database) or refused with a 4xx that stores nothing; never a 5xx.
Each field of a generated point or metric is drawn from a valid or an invalid family, so the
expected answer (201, 400 for an unknown metric, 422) is known without re-implementing the
schema. Bugs found here (since fixed) have regression tests at the end.

Hand-written examples of the same endpoints live in test_api.py and test_api_integrations.py.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import urllib.parse
from collections import Counter
from typing import Any

import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from dashvault.api.actions import do_create_token
from dashvault.api.models import IdempotencyRecord
from dashvault.api.schemas import EARLIEST, LATEST, MAX_MAGNITUDE
from dashvault.integrations import config as integration_config
from dashvault.integrations.models import Integration
from dashvault.metrics.ingest import PointIn, do_ingest
from dashvault.metrics.models import METRIC_KEY_PATTERN, DataPoint, Metric, Rollup
from dashvault.metrics.periods import bucket_range, bucket_start
from tests.conftest import SecureClient
from tests.test_properties_integrations import BASE_CONFIGS, settings_for

DB_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KNOWN = ("revenue", "calls")  # the org's metrics
KEY_RE = re.compile(METRIC_KEY_PATTERN)


@pytest.fixture
def metrics(org_a: Any) -> dict[str, Metric]:
    return {
        "revenue": Metric.objects.create(
            org=org_a, key="revenue", name="Revenue", unit="currency", currency="EUR"
        ),
        "calls": Metric.objects.create(org=org_a, key="calls", name="Calls", aggregation="count"),
    }


@pytest.fixture
def token(org_a: Any, admin_a: Any) -> str:
    scopes = ["push", "read", "integrations"]
    return do_create_token(org_a, "fuzz", scopes, expires_at=None, acting=admin_a)[1]


def api(token: str, **headers: str) -> SecureClient:
    return SecureClient(headers={"Authorization": f"Bearer {token}", **headers})


def post_json(client: SecureClient, url: str, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(url, data, content_type="application/json", headers=headers)


def fresh(org: Any) -> None:
    """Each example starts from no points (examples share the test's transaction)."""
    DataPoint.objects.filter(org=org).delete()
    Rollup.objects.filter(org=org).delete()
    IdempotencyRecord.objects.filter(org=org).delete()
    cache.clear()


# == strategies: each field from a valid ("ok") or an invalid ("bad") family ====================
#
# A generated object takes every field from its valid family, except (about a third of the
# time) one or two fields taken from an invalid family: so valid and refused inputs both come
# up often, and the expected answer is known from which families were drawn.

OK, BAD, UNKNOWN = "ok", "bad", "unknown"

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
instants = st.datetimes(
    min_value=dt.datetime(1890, 1, 1), max_value=dt.datetime(2210, 1, 1), timezones=offsets
)
in_range = instants.filter(lambda when: EARLIEST <= when < LATEST)
near_bounds = st.sampled_from([EARLIEST, LATEST]).flatmap(
    lambda bound: st.tuples(st.integers(-90_000, 90_000), offsets).map(
        lambda t: (bound + dt.timedelta(seconds=t[0])).astimezone(t[1])
    )
)


def iso(when: dt.datetime, zulu: bool) -> str:
    text = when.isoformat()
    return text.replace("+00:00", "Z") if zulu else text


@st.composite
def instant_texts(draw: Any) -> tuple[str, dt.datetime]:
    when = draw(st.one_of(in_range, near_bounds))
    return iso(when, draw(st.booleans())), when


BAD_TIMES = st.one_of(
    st.sampled_from(
        [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30T12:00:00Z",
            "2026-05-01T25:00:00Z",
            "2026-05-01T12:00:00",  # naive
            "2026-05-01",  # a date: no time, no offset
            "2026-05-01T12:00:00+24:00",
            "",
        ]
    ),
    instants.map(lambda w: w.replace(tzinfo=None).isoformat()),  # naive
    st.text(max_size=12),  # too short for a time with an offset
    st.integers(),  # Unix time, as a number or as text
    st.integers().map(str),
    st.sampled_from([None, True, 1700000000.5, [], {}, ["2026-05-01T12:00:00Z"]]),
)
GOOD_VALUES = st.one_of(
    st.floats(min_value=-MAX_MAGNITUDE, max_value=MAX_MAGNITUDE),
    st.integers(min_value=-(10**15), max_value=10**15),
)
BAD_VALUES = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1.7e308, -1e16, MAX_MAGNITUDE * 1.0001]),
    st.floats(min_value=MAX_MAGNITUDE, exclude_min=True),
    st.integers(min_value=10**15 + 1, max_value=10**400),
    st.text(max_size=12),  # numeric text too: a value is a JSON number
    GOOD_VALUES.map(str),
    st.sampled_from([None, True, False, [], {}, [1.0]]),
)
GOOD_KEYS = st.sampled_from(KNOWN)
UNKNOWN_KEYS = st.from_regex(KEY_RE, fullmatch=True).filter(lambda k: k not in KNOWN)
BAD_KEYS = st.one_of(
    st.text(max_size=70).filter(lambda k: not KEY_RE.fullmatch(k)),
    st.sampled_from(["Revenue", "revenue\n", " revenue", "a" * 65, "", None, 7, ["revenue"]]),
)
ABSENT = object()
GOOD_DIMENSIONS = st.one_of(
    st.just(ABSENT),
    st.sampled_from(["", "alice", "bob"]),
    st.text(max_size=120).filter(lambda s: "\x00" not in s),
)
BAD_DIMENSIONS = st.one_of(
    st.text(min_size=121, max_size=130),
    st.text(max_size=10).map(lambda s: s + "\x00"),
    st.sampled_from([None, 3, ["a"]]),
)
GOOD_EXTERNAL_IDS = st.one_of(
    st.just(ABSENT),
    st.none(),
    st.sampled_from(["deal-1", "deal-2", "ü-3"]),  # repeats: replacements within a batch
    st.text(min_size=1, max_size=200).filter(lambda s: "\x00" not in s),
)
BAD_EXTERNAL_IDS = st.one_of(
    st.just(""),
    st.text(min_size=201, max_size=210),
    st.just("a\x00b"),
    st.sampled_from([5, ["x"]]),
)
POINT_FIELDS = ("metric", "ts", "value", "dimension", "external_id", "extra")


@st.composite
def bad_fields(draw: Any, fields: tuple[str, ...], one_in: int = 3) -> set[str]:
    """No field (but one time in `one_in`: one or two fields) to draw from invalid families."""
    if draw(st.integers(1, one_in)) != 1:
        return set()
    return set(draw(st.lists(st.sampled_from(fields), min_size=1, max_size=2)))


@st.composite
def points(draw: Any) -> tuple[dict[str, Any], str, PointIn | None]:
    """(JSON object, ok|bad|unknown, the point a 201 must store)."""
    bad = draw(bad_fields(POINT_FIELDS, one_in=6))
    unknown = not bad and draw(st.integers(0, 9)) == 0
    key = draw(BAD_KEYS if "metric" in bad else UNKNOWN_KEYS if unknown else GOOD_KEYS)
    if "ts" in bad:
        ts, when = draw(BAD_TIMES), None
    else:
        ts, when = draw(instant_texts())
        if not EARLIEST <= when < LATEST:
            bad.add("ts")
    value = draw(BAD_VALUES if "value" in bad else GOOD_VALUES)
    dimension = draw(BAD_DIMENSIONS if "dimension" in bad else GOOD_DIMENSIONS)
    external = draw(BAD_EXTERNAL_IDS if "external_id" in bad else GOOD_EXTERNAL_IDS)
    body: dict[str, Any] = {"metric": key, "ts": ts, "value": value}
    if dimension is not ABSENT:
        body["dimension"] = dimension
    if external is not ABSENT:
        body["external_id"] = external
    if "extra" in bad:
        body[draw(st.sampled_from(["colour", "Value", "metric_key"]))] = "red"
    if bad:
        return body, BAD, None
    if unknown:
        return body, UNKNOWN, None
    assert when is not None
    stored = PointIn(
        key,
        when.astimezone(dt.UTC),
        float(value),
        "" if dimension is ABSENT else dimension,
        None if external is ABSENT else external,
    )
    return body, OK, stored


def expected_rows(sent: list[PointIn]) -> Counter[tuple[Any, ...]]:
    """What a 201 stores: every point, a later one replacing an earlier one with its id."""
    last: dict[tuple[str, str], int] = {}
    for index, p in enumerate(sent):
        if p.external_id is not None:
            last[(p.metric_key, p.external_id)] = index
    kept = [
        p
        for i, p in enumerate(sent)
        if p.external_id is None or last[(p.metric_key, p.external_id)] == i
    ]
    return Counter((p.metric_key, p.ts, p.value, p.dimension, p.external_id) for p in kept)


def stored_rows(org: Any) -> Counter[tuple[Any, ...]]:
    rows = DataPoint.objects.filter(org=org).values_list(
        "metric__key", "ts", "value", "dimension", "external_id"
    )
    return Counter(rows)


def assert_nothing_stored(org: Any) -> None:
    assert not DataPoint.objects.filter(org=org).exists()
    assert not Rollup.objects.filter(org=org).exists()


# == POST /api/v1/datapoints =====================================================================


LAST_INSTANT = dt.datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
AT_THE_LIMITS = (  # the latest instant and the largest value the API takes
    {"metric": "revenue", "ts": "2199-12-31T23:59:59.999999Z", "value": 1e15},
    OK,
    PointIn("revenue", LAST_INSTANT, 1e15),
)


@DB_SETTINGS
@given(batch=st.lists(points(), min_size=1, max_size=4))
@example(batch=[AT_THE_LIMITS])
def test_a_push_stores_exactly_what_was_sent_or_nothing(
    org_a: Any, metrics: Any, token: str, batch: list[Any]
) -> None:
    fresh(org_a)
    kinds = {kind for _, kind, _ in batch}
    response = post_json(api(token), "/api/v1/datapoints", {"points": [b for b, _, _ in batch]})
    event(f"status {response.status_code}")
    if BAD in kinds:
        assert response.status_code == 422, response.content
        assert response.json()["errors"]
    elif UNKNOWN in kinds:
        assert response.status_code == 400, response.content
    else:
        assert response.status_code == 201, response.content
        sent = [p for _, _, p in batch if p is not None]
        expected = expected_rows(sent)
        assert response.json() == {"stored": sum(expected.values())}
        assert stored_rows(org_a) == expected
        for key in KNOWN:  # the rollups account for every stored point
            values = [row[2] for row in expected.elements() if row[0] == key]
            rollups = Rollup.objects.filter(metric=metrics[key])
            assert sum(r.count for r in rollups) == len(values)
            total = sum(r.total for r in rollups)
            assert math.isclose(total, math.fsum(values), rel_tol=1e-9, abs_tol=1e-3)
        return
    assert_nothing_stored(org_a)


CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain", "", "x/y"]


@DB_SETTINGS
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        JSON.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(["points", "point", "data"]), JSON, max_size=2).map(
            lambda v: json.dumps(v).encode()
        ),
        st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    ),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_any_body_gets_a_4xx_or_a_201_never_a_5xx(
    org_a: Any, metrics: Any, token: str, body: bytes, content_type: str
) -> None:
    fresh(org_a)
    response = api(token).post("/api/v1/datapoints", body, content_type=content_type)
    event(f"status {response.status_code}")
    assert response.status_code in (201, 400, 413, 415, 422), response.content
    assert response.json()["detail" if response.status_code != 201 else "stored"] is not None
    if response.status_code != 201:
        assert_nothing_stored(org_a)


HEADER_TEXT = st.text(
    alphabet=st.characters(codec="latin-1", exclude_categories=["Cc"], exclude_characters="\x7f"),
    max_size=230,
)


@DB_SETTINGS
@given(key=HEADER_TEXT)
def test_an_idempotency_key_either_deduplicates_a_retry_or_is_refused(
    org_a: Any, metrics: Any, token: str, key: str
) -> None:
    fresh(org_a)
    body = {"points": [{"metric": "calls", "ts": "2026-05-01T12:00:00Z", "value": 1}]}
    first = post_json(api(token), "/api/v1/datapoints", body, **{"Idempotency-Key": key})
    again = post_json(api(token), "/api/v1/datapoints", body, **{"Idempotency-Key": key})
    if len(key) > 200:
        assert (first.status_code, again.status_code) == (422, 422)
        assert_nothing_stored(org_a)
    elif key == "":  # no key: two pushes, two points
        assert (first.status_code, again.status_code) == (201, 201)
        assert DataPoint.objects.filter(org=org_a).count() == 2
    else:
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json() == again.json() == {"stored": 1}
        assert DataPoint.objects.filter(org=org_a).count() == 1
        assert IdempotencyRecord.objects.get(org=org_a).key == key


# == bearer tokens ==============================================================================


@st.composite
def near_tokens(draw: Any, token: str) -> str:
    """Tokens a guesser or a typo produces: the real one changed a little, or anything."""
    how = draw(st.sampled_from(["char", "cut", "longer", "case", "any", "prefix"]))
    if how == "char":
        i = draw(st.integers(0, len(token) - 1))
        c = draw(st.characters(codec="latin-1").filter(lambda c: c != token[i]))
        return token[:i] + c + token[i + 1 :]
    if how == "cut":
        return token[: draw(st.integers(0, len(token) - 1))]
    if how == "longer":
        return token + draw(st.text(min_size=1, max_size=80))
    if how == "case":
        swapped = token.swapcase()
        return swapped if swapped != token else token + "x"
    if how == "prefix":
        return "dvp_" + draw(st.text(alphabet="ABCdef0123_-", max_size=60))
    return draw(HEADER_TEXT)


@DB_SETTINGS
@given(data=st.data())
def test_only_the_issued_token_opens_the_api(
    org_a: Any, metrics: Any, token: str, data: Any
) -> None:
    cache.clear()  # the guessing guard would block this address after a few examples
    presented = data.draw(near_tokens(token))
    scheme = data.draw(st.sampled_from(["Bearer ", "bearer ", "Basic ", ""]))
    client = SecureClient(headers={"Authorization": scheme + presented})
    response = client.get("/api/v1/metrics")
    event(f"status {response.status_code}")
    assert response.status_code == 401, (scheme, presented, response.status_code)
    assert api(token).get("/api/v1/metrics").status_code == 200


# == metrics ====================================================================================

UNITS = ["number", "currency", "percent", "duration"]
BAD_UNITS = st.sampled_from(["NUMBER", "money", "", None, 1])
BAD_CURRENCIES = st.one_of(
    st.sampled_from(["eur", "EURO", "€", "EU", "EUR\n", None, 978]),
    st.text(max_size=4).filter(lambda c: not re.fullmatch(r"([A-Z]{3})?", c)),
)
AGGREGATIONS = ["sum", "count", "average", "min", "max", "latest"]
BAD_AGGREGATIONS = st.sampled_from(["SUM", "median", "", None])
GOOD_NAMES = st.text(min_size=1, max_size=120).filter(lambda s: "\x00" not in s)
BAD_NAMES = st.one_of(st.sampled_from(["", "a\x00b", None, 5]), st.text(min_size=121, max_size=125))
METRIC_FIELDS = ("key", "name", "unit", "currency", "aggregation", "extra")


@st.composite
def metric_bodies(draw: Any) -> tuple[dict[str, Any], bool]:
    """(JSON object, whether the schema takes it)."""
    bad = draw(bad_fields(METRIC_FIELDS))
    key = draw(BAD_KEYS if "key" in bad else st.one_of(GOOD_KEYS, UNKNOWN_KEYS))
    body: dict[str, Any] = {"key": key, "name": draw(BAD_NAMES if "name" in bad else GOOD_NAMES)}
    unit = draw(st.sampled_from(UNITS))
    if "unit" in bad:
        body["unit"] = draw(BAD_UNITS)
    elif unit != "number" or draw(st.booleans()):
        body["unit"] = unit
    if "currency" in bad:
        body["currency"] = draw(BAD_CURRENCIES)
    elif unit == "currency":
        body["currency"] = draw(st.sampled_from(["EUR", "SEK", "ABC", "JPY"]))
    elif draw(st.booleans()):
        # "" always goes with any other unit; a code with one is refused (a mismatch).
        body["currency"] = draw(st.sampled_from(["", "", "", "USD"]))
        if body["currency"]:
            bad.add("currency")
    if "aggregation" in bad:
        body["aggregation"] = draw(BAD_AGGREGATIONS)
    elif draw(st.booleans()):
        body["aggregation"] = draw(st.sampled_from(AGGREGATIONS))
    if "extra" in bad:
        body["colour"] = "red"
    return body, not bad


@DB_SETTINGS
@given(sent=metric_bodies())
def test_a_metric_is_created_exactly_as_sent_or_refused(
    org_a: Any, metrics: Any, token: str, sent: tuple[dict[str, Any], bool]
) -> None:
    body, valid = sent
    before = set(Metric.objects.filter(org=org_a).values_list("pk", flat=True))
    response = post_json(api(token), "/api/v1/metrics", body)
    event(f"status {response.status_code}")
    if not valid:
        assert response.status_code == 422, response.content
    elif body["key"] in KNOWN:
        assert response.status_code == 409, response.content
    else:
        assert response.status_code == 201, response.content
        metric = Metric.objects.get(org=org_a, key=body["key"])
        expected = {"unit": "number", "currency": "", "aggregation": "sum", **body}
        for field in ("key", "name", "unit", "currency", "aggregation"):
            assert getattr(metric, field) == expected[field]
            assert response.json()[field] == expected[field]
        metric.delete()
        return
    assert set(Metric.objects.filter(org=org_a).values_list("pk", flat=True)) == before


PATCH_FIELDS = ("name", "unit", "currency", "aggregation", "extra")
FIELD_VALUES: dict[str, Any] = {
    "name": (GOOD_NAMES, BAD_NAMES.filter(lambda v: v is not None)),
    "unit": (st.sampled_from(UNITS), BAD_UNITS.filter(lambda v: v is not None)),
    "currency": (
        st.sampled_from(["", "USD", "JPY"]),
        BAD_CURRENCIES.filter(lambda v: v is not None),
    ),
    "aggregation": (
        st.sampled_from(AGGREGATIONS),
        BAD_AGGREGATIONS.filter(lambda v: v is not None),
    ),
}


@st.composite
def metric_patches(draw: Any) -> tuple[dict[str, Any], bool]:
    """(JSON object, whether the schema takes it): each field absent, null (kept), or set."""
    bad = draw(bad_fields(PATCH_FIELDS))
    body: dict[str, Any] = {}
    for name, (good, wrong) in FIELD_VALUES.items():
        if name in bad:
            body[name] = draw(wrong)
        elif draw(st.integers(0, 2)) == 0:
            body[name] = draw(st.one_of(st.none(), good))
        elif draw(st.booleans()):
            body[name] = draw(good)
    if "extra" in bad:
        body["key"] = "renamed"  # the key is not a field one can change
    return body, not bad


@DB_SETTINGS
@given(sent=metric_patches())
def test_a_metric_change_is_applied_exactly_or_refused(
    org_a: Any, metrics: Any, token: str, sent: tuple[dict[str, Any], bool]
) -> None:
    body, schema_ok = sent
    fields = ("name", "unit", "currency", "aggregation")
    start = {"name": "Revenue", "unit": "currency", "currency": "EUR", "aggregation": "sum"}
    Metric.objects.filter(pk=metrics["revenue"].pk).update(**start)
    response = api(token).patch("/api/v1/metrics/revenue", json.dumps(body), "application/json")
    event(f"status {response.status_code}")
    after = Metric.objects.values(*fields).get(pk=metrics["revenue"].pk)
    wanted = {**start, **{k: v for k, v in body.items() if v is not None}}
    consistent = (wanted["unit"] == "currency") == bool(wanted["currency"])
    if schema_ok and consistent:
        assert response.status_code == 200, (body, response.content)
        assert after == wanted
        assert {k: response.json()[k] for k in fields} == wanted
    else:
        assert response.status_code == 422, (body, response.content)
        assert after == start


@DB_SETTINGS
@given(
    key=st.one_of(st.sampled_from(KNOWN), st.text(max_size=80)),
    method=st.sampled_from(["get", "delete"]),
)
def test_any_metric_key_in_the_path_is_found_only_when_it_is_the_orgs(
    org_a: Any, metrics: Any, token: str, key: str, method: str
) -> None:
    url = "/api/v1/metrics/" + urllib.parse.quote(key, safe="")
    if method == "delete":
        url += "/points?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z"
    response = getattr(api(token), method)(url)
    event(f"status {response.status_code}")
    assert response.status_code == (200 if key in KNOWN else 404), (key, response.status_code)


# == series and point deletion: query strings ===================================================

days = st.dates(min_value=dt.date(1890, 1, 1), max_value=dt.date(2210, 12, 31))
BAD_DAYS = st.one_of(
    st.sampled_from(["2026-02-30", "2026-13-01", "yesterday", "", "20260501", "2026-5-1"]),
    st.text(max_size=12).filter(lambda s: not any(c.isdigit() for c in s)),
)
SERIES_FIELDS = ("start", "end", "bucket", "aggregation", "by_dimension")


@st.composite
def series_queries(draw: Any) -> tuple[dict[str, str], dt.date | None, dt.date | None, bool]:
    """(query, first day, last day, whether it is valid)."""
    bad = draw(bad_fields(SERIES_FIELDS))
    first = draw(st.one_of(days, st.sampled_from([EARLIEST.date(), dt.date(2199, 12, 31)])))
    length = draw(st.one_of(st.integers(0, 400), st.integers(-3, 3700)))
    last = first + dt.timedelta(days=length)  # days stay far from date's own limits
    query = {"start": first.isoformat(), "end": last.isoformat()}
    if "start" in bad:
        query["start"], first = draw(BAD_DAYS), None
    if "end" in bad:
        query["end"], last = draw(BAD_DAYS), None
    query["bucket"] = draw(
        st.sampled_from(["hour", "", "DAY"] if "bucket" in bad else ["day", "week", "month"])
    )
    if "aggregation" in bad:
        query["aggregation"] = draw(st.sampled_from(["median", "", "SUM"]))
    elif draw(st.booleans()):
        query["aggregation"] = draw(st.sampled_from(AGGREGATIONS))
    if "by_dimension" in bad:
        query["by_dimension"] = draw(st.sampled_from(["maybe", "2", ""]))
    elif draw(st.booleans()):
        query["by_dimension"] = draw(st.sampled_from(["true", "false", "1", "0"]))
    valid = (
        not bad
        and first is not None
        and last is not None
        and EARLIEST.date() <= first < LATEST.date()
        and EARLIEST.date() <= last < LATEST.date()
        and first <= last
        and (last - first).days <= 3660
    )
    return query, first, last, valid


@DB_SETTINGS
@given(sent=series_queries())
def test_a_series_query_answers_every_bucket_of_the_range_or_a_422(
    org_a: Any, metrics: Any, token: str, sent: tuple[dict[str, str], Any, Any, bool]
) -> None:
    query, first, last, valid = sent
    url = "/api/v1/metrics/revenue/series?" + urllib.parse.urlencode(query)
    response = api(token).get(url)
    event(f"status {response.status_code}")
    assert response.status_code == (200 if valid else 422), (query, response.content)
    if valid:
        body = response.json()
        starts = [dt.date.fromisoformat(s) for s in body["starts"]]
        assert starts == bucket_range(first, last, query["bucket"])
        assert starts[0] == bucket_start(first, query["bucket"])
        assert all(len(values) == len(starts) for values in body["series"].values())
        if query.get("by_dimension") not in ("true", "1"):
            assert list(body["series"]) == ["Revenue"]  # one series, named after the metric


SEEDED = [  # (ts, dimension) of the points each deletion example starts from
    (dt.datetime(2026, 5, 1, 0, 0, tzinfo=dt.UTC), ""),
    (dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC), "alice"),
    (dt.datetime(2026, 5, 2, 23, 59, 59, 999999, tzinfo=dt.UTC), ""),
    (dt.datetime(2026, 5, 3, 6, 30, tzinfo=dt.UTC), "bob"),
]
BAD_RANGE_TEXT = st.sampled_from(
    ["2026-05-01", "2026-05-01T00:00:00", "0001-01-01T00:00:00Z", "2026-05-01T00:00:00+24:00",
     "nope", "", "1777593600"]  # the last: Unix time, not ISO 8601
)  # fmt: skip


@st.composite
def deletions(draw: Any) -> tuple[dict[str, str], dt.datetime | None, dt.datetime | None]:
    """(query, start, end): instants near the seeded points, often exactly on one."""
    near = st.one_of(
        st.sampled_from([ts for ts, _ in SEEDED]),
        st.datetimes(min_value=dt.datetime(2026, 4, 30), max_value=dt.datetime(2026, 5, 4),
                     timezones=st.just(dt.UTC)),
    )  # fmt: skip
    first: dt.datetime | None = draw(near)
    assert first is not None
    last: dt.datetime | None = draw(
        st.one_of(
            near, st.integers(-120, 4 * 24 * 60).map(lambda m: first + dt.timedelta(minutes=m))
        )
    )
    bad = draw(bad_fields(("start", "end", "dimension")))
    query = {
        "start": iso(first.astimezone(draw(offsets)), draw(st.booleans())),
        "end": iso(last.astimezone(draw(offsets)), draw(st.booleans())),
    }
    if "start" in bad:
        query["start"], first = draw(BAD_RANGE_TEXT), None
    if "end" in bad:
        query["end"], last = draw(BAD_RANGE_TEXT), None
    if "dimension" in bad:
        query["dimension"] = "a\x00b"
    elif draw(st.booleans()):
        query["dimension"] = draw(st.sampled_from(["", "alice", "bob", "carol"]))
    return query, first, last


@DB_SETTINGS
@given(sent=deletions())
def test_deleting_a_range_removes_exactly_its_points(
    org_a: Any, metrics: Any, token: str, sent: tuple[dict[str, str], Any, Any]
) -> None:
    query, first, last = sent
    fresh(org_a)
    do_ingest(org_a, [PointIn("revenue", ts, 1.0, dim) for ts, dim in SEEDED])
    response = api(token).delete("/api/v1/metrics/revenue/points?" + urllib.parse.urlencode(query))
    event(f"status {response.status_code}")
    left = sorted(DataPoint.objects.filter(org=org_a).values_list("ts", "dimension"))
    dimension = query.get("dimension")
    valid = first is not None and last is not None and first < last and dimension != "a\x00b"
    if not valid:
        assert response.status_code == 422, response.content
        assert left == SEEDED
        return
    assert first is not None and last is not None
    assert response.status_code == 200, response.content
    gone = [
        (ts, dim)
        for ts, dim in SEEDED
        if first <= ts < last and (dimension is None or dim == dimension)
    ]
    assert response.json() == {"deleted": len(gone)}
    assert left == [p for p in SEEDED if p not in gone]
    assert sum(r.count for r in Rollup.objects.filter(org=org_a)) == len(left)


# == integrations: settings ======================================================================


def cleaned_or_none(kind: str, config: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return integration_config.clean_config(kind, config, allow_http=False)
    except integration_config.ConfigErrors:
        return None


@DB_SETTINGS
@given(
    kind=st.sampled_from([*BASE_CONFIGS, "ftp"]),
    data=st.data(),
    credential=st.one_of(
        st.just("s3cret-Value-7"), st.sampled_from([None, "", "line\nbreak", "€uro"])
    ),
    name=st.one_of(st.just("CRM"), st.sampled_from([" Deals ", "", "  ", "x" * 121])),
)
def test_an_integration_is_stored_with_its_cleaned_settings_or_refused(
    org_a: Any,
    metrics: Any,
    token: str,
    kind: str,
    data: Any,
    credential: str | None,
    name: str,
) -> None:
    config = data.draw(settings_for(kind))
    body: dict[str, Any] = {"name": name, "kind": kind, "metric": "revenue", "config": config}
    if credential is not None:
        body["credential"] = credential
    response = post_json(api(token), "/api/v1/integrations", body)
    event(f"status {response.status_code}")
    assert response.status_code in (201, 422), response.content
    if credential:
        assert credential not in response.content.decode()
    cleaned = None if kind == "ftp" else cleaned_or_none(kind, config)
    acceptable = (
        cleaned is not None
        and name.strip() != ""
        and len(name.strip()) <= integration_config.MAX_NAME
        and credential not in ("line\nbreak", "€uro")
        and (
            bool(credential)
            or not integration_config.needs_secret(kind, cleaned.get("auth", "none"))
        )
    )
    assert (response.status_code == 201) is acceptable, (body, response.content)
    if response.status_code == 422:
        assert not Integration.objects.filter(org=org_a).exists()
        return
    # Accepted: stored is what the one settings check makes of what was sent.
    stored = Integration.objects.get(org=org_a)
    assert stored.config == cleaned
    assert stored.name == name.strip()
    assert response.json()["config"] == stored.config
    assert response.json()["credential"] == ("set" if credential else "not set")
    stored.delete()


# == regressions: bugs the properties above found, since fixed =====================================


@pytest.mark.parametrize("value", [True, "12.5", "1_000"])
def test_a_value_that_is_not_a_json_number_is_refused(
    org_a: Any, metrics: Any, token: str, value: Any
) -> None:
    body = {"points": [{"metric": "calls", "ts": "2026-05-01T12:00:00Z", "value": value}]}
    response = post_json(api(token), "/api/v1/datapoints", body)
    assert response.status_code == 422
    assert_nothing_stored(org_a)


@pytest.mark.parametrize("ts", [1700000000, "1700000000"])
def test_a_timestamp_that_is_not_iso_text_is_refused(
    org_a: Any, metrics: Any, token: str, ts: Any
) -> None:
    body = {"points": [{"metric": "calls", "ts": ts, "value": 1}]}
    response = post_json(api(token), "/api/v1/datapoints", body)
    assert response.status_code == 422
    assert_nothing_stored(org_a)


def test_a_ca_certificate_with_non_ascii_text_is_refused_not_a_500(
    org_a: Any, metrics: Any, token: str
) -> None:
    body = {
        "name": "Files",
        "kind": "csv",
        "metric": "revenue",
        "config": BASE_CONFIGS["csv"],
        "ca_pem": "é",
    }
    client = SecureClient(
        headers={"Authorization": f"Bearer {token}"}, raise_request_exception=False
    )
    response = post_json(client, "/api/v1/integrations", body)
    assert response.status_code == 422
    assert not Integration.objects.filter(org=org_a).exists()
