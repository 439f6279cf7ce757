"""Property tests (hypothesis) for the integrations' parsers of outside input (issue 9, item 3):
records to data points (mapping), the connectors reading another service's answers (JSON pages,
CSV files), the outbound client's reading of answers, and the settings an admin or an API
client sends (integrations.config).

The contracts under test: a record either becomes a point that satisfies the push API's own
invariants, is skipped (no value), or stops the whole sync with a SyncError naming its number,
so nothing is half-stored and no other exception escapes; a connector fed any answer yields
lists of records (dicts) or raises SyncError; the settings check returns a stored form that it
accepts again unchanged, or raises ConfigErrors whose messages never repeat a value.

Hand-written examples: test_integrations_mapping.py, test_integrations_sync.py,
test_http_client.py. Bugs found here (since fixed) have regression tests at the end.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import string
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import trustme
from django import forms
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st

from dashvault.integrations import config as integration_config
from dashvault.integrations.connectors import for_kind
from dashvault.integrations.connectors.session import Session, SyncError, dig
from dashvault.integrations.mapping import FIRST, LAST, points
from dashvault.integrations.sync import session_for
from dashvault.lib import http
from dashvault.metrics.ingest import MAX_MAGNITUDE

PURE = settings(max_examples=120, deadline=None)
ZONES = sorted(zoneinfo.available_timezones())

# Any text, with what broke parsers before (see the regression tests at the end): non-ASCII
# digits ("²", "٣": str.isdigit() says yes to them, int() then fails) and lone surrogates
# (JSON's "\ud800" escape: no UTF-8 text).
ANY_CHARS = st.characters(exclude_categories=())
ANY_TEXT = st.text(ANY_CHARS, max_size=20)
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.floats(allow_nan=False, allow_infinity=False),
    ANY_TEXT,
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=15,
)


# == mapping: numbers ============================================================================


def read_number(raw: Any, decimal: str = ".") -> float:
    record = {"t": "2026-05-01T12:00:00Z", "v": raw}
    mapped = points([record], {"timestamp": "t", "value": "v", "decimal": decimal}, "m")
    assert mapped.skipped == 0 and len(mapped.points) == 1
    return mapped.points[0].value


def outcome(raw: Any, decimal: str) -> float | str:
    try:
        return read_number(raw, decimal)
    except SyncError as exc:
        assert str(exc).startswith("Record 1: 'v' is ")
        return "refused"


@PURE
@given(
    raw=st.one_of(
        JSON_LEAF,
        st.text(alphabet="0123456789.,+-eE _", max_size=14),
        st.sampled_from(["NaN", "nan", "inf", "-Infinity", "1e999", "-1e400", "0x10", "1e15"]),
        st.floats(),  # NaN and infinities as JSON numbers
    ),
    decimal=st.sampled_from([".", ","]),
)
def test_a_value_is_a_finite_bounded_number_or_the_sync_stops(raw: Any, decimal: str) -> None:
    if raw is None or raw == "":
        return  # no value: skipped (test_integrations_mapping)
    result = outcome(raw, decimal)
    if result == "refused":
        return
    assert isinstance(result, float)
    assert math.isfinite(result) and abs(result) <= MAX_MAGNITUDE
    assert not isinstance(raw, bool)  # true is not 1
    if isinstance(raw, int | float):
        assert result == float(raw)


@st.composite
def written_numbers(draw: Any) -> tuple[Decimal, str, str]:
    """(exact value, decimal mark, the way a spreadsheet or an API writes it)."""
    whole = draw(st.integers(0, 10**12))
    decimals = draw(st.integers(0, 4))
    fraction = draw(st.integers(0, 10**decimals - 1)) if decimals else 0
    negative = draw(st.booleans())
    mark = draw(st.sampled_from([".", ","]))
    grouping = draw(st.sampled_from(["", "thousands", "spaces"]))
    digits = str(whole)
    if grouping and whole >= 1000:
        sep = " " if grouping == "spaces" else ("," if mark == "." else ".")
        head = len(digits) % 3 or 3
        groups = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
        digits = sep.join(groups)
    text = digits + (mark + str(fraction).zfill(decimals) if decimals else "")
    sign = "-" if negative else draw(st.sampled_from(["", "+"]))
    exact = Decimal(f"{'-' if negative else ''}{whole}.{str(fraction).zfill(decimals) or '0'}")
    return exact, mark, draw(st.sampled_from(["", " "])) + sign + text


@PURE
@given(written=written_numbers())
def test_numbers_written_with_either_decimal_mark_and_grouping_read_back_exactly(
    written: tuple[Decimal, str, str],
) -> None:
    exact, mark, text = written
    assert read_number(text, mark) == float(exact)


@PURE
@given(
    text=st.text(alphabet="0123456789,", min_size=1, max_size=12).filter(
        lambda t: any(c.isdigit() for c in t)
    )
)
def test_with_the_decimal_point_a_comma_is_only_ever_a_thousands_separator(text: str) -> None:
    # "12,5" could be twelve and a half or a hundred and twenty-five: never a guess.
    grouped = grouped_by_thousands(text)
    result = outcome(text, ".")
    if grouped:
        assert result == float(text.replace(",", ""))
    elif "," in text:
        assert result == "refused"


def grouped_by_thousands(text: str) -> bool:
    """Whether `text` is digits in groups of three after the first (1,234 or 12,345,678)."""
    head, *groups = text.split(",")
    return (
        bool(groups)
        and 1 <= len(head) <= 3
        and head.isdigit()
        and all(len(g) == 3 and g.isdigit() for g in groups)
    )


@PURE
@given(value=st.floats(min_value=-MAX_MAGNITUDE, max_value=MAX_MAGNITUDE))
def test_a_json_number_and_its_text_read_the_same(value: float) -> None:
    assert read_number(value) == value
    assert read_number(repr(value)) == value
    assert read_number(json.dumps(value)) == value


# == mapping: times ==============================================================================


def read_time(raw: Any, tz: dt.tzinfo = dt.UTC) -> dt.datetime | str:
    record = {"t": raw, "v": 1}
    try:
        return points([record], {"timestamp": "t", "value": "v"}, "m", tz=tz).points[0].ts
    except SyncError as exc:
        assert str(exc).startswith("Record 1: 't' ")
        return "refused"


@PURE
@given(
    raw=st.one_of(
        JSON_LEAF,
        st.floats(),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.text(alphabet="0123456789-:TZ+. ", max_size=32),
        st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    ),
    zone=st.sampled_from(ZONES),
)
def test_any_time_value_is_an_aware_instant_between_1900_and_2200_or_the_sync_stops(
    raw: Any, zone: str
) -> None:
    when = read_time(raw, zoneinfo.ZoneInfo(zone))
    if when == "refused":
        return
    assert isinstance(when, dt.datetime) and when.utcoffset() is not None
    assert FIRST <= when < LAST


@PURE
@given(
    when=st.datetimes(
        min_value=dt.datetime(1900, 1, 2),
        max_value=dt.datetime(2199, 12, 30),
        timezones=st.timezones(),
    ),
    zulu=st.booleans(),
)
def test_an_iso_time_with_an_offset_is_that_instant(when: dt.datetime, zulu: bool) -> None:
    text = when.isoformat()
    if zulu:
        text = when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    got = read_time(text)
    assert isinstance(got, dt.datetime)
    # Compared in UTC: Python never finds an instant in a DST gap or fold equal to another zone's.
    assert got.astimezone(dt.UTC) == when.astimezone(dt.UTC)


@PURE
@given(
    local=st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2199, 12, 30)),
    zone=st.sampled_from(ZONES),
    date_only=st.booleans(),
)
def test_a_time_without_an_offset_is_read_on_the_orgs_clock(
    local: dt.datetime, zone: str, date_only: bool
) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    text = local.date().isoformat() if date_only else local.isoformat()
    when = read_time(text, tz)
    assert isinstance(when, dt.datetime)
    expected = dt.datetime.combine(local.date(), dt.time()) if date_only else local
    assert when.tzinfo is tz and when.replace(tzinfo=None) == expected


@PURE
@given(
    seconds=st.integers(
        min_value=0, max_value=int(dt.datetime(2200, 1, 1, tzinfo=dt.UTC).timestamp()) - 1
    ),
    as_text=st.booleans(),
    millis=st.booleans(),
)
def test_epoch_seconds_and_milliseconds_are_that_instant(
    seconds: int, as_text: bool, millis: bool
) -> None:
    assume(not millis or seconds * 1000 > 1e11)  # milliseconds are told apart by their size
    assume(millis or seconds <= 1e11)
    raw: Any = seconds * 1000 if millis else seconds
    if as_text:
        raw = str(raw)
    assert read_time(raw) == dt.datetime.fromtimestamp(seconds, dt.UTC)


# == mapping: whole records ======================================================================

PATHS = st.sampled_from(["", "v", "t", "d", "i", "a.b", "a.0", "a.1.b", "list.0", "0", "x.y.z"])
MAPPINGS = st.one_of(
    st.just({"timestamp": "t", "value": "v", "dimension": "d", "id": "i"}),
    st.fixed_dictionaries(
        {"timestamp": PATHS, "value": PATHS},
        optional={"dimension": PATHS, "id": PATHS, "decimal": st.sampled_from([".", ",", "x"])},
    ),
)
GOOD_RECORD = st.fixed_dictionaries(
    {
        "t": st.one_of(
            st.datetimes(
                min_value=dt.datetime(1900, 1, 2),
                max_value=dt.datetime(2199, 12, 30),
                timezones=st.none() | st.timezones(),
            ).map(lambda d: d.isoformat()),
            st.integers(0, 7_000_000_000),
        ),
        "v": st.one_of(
            st.floats(min_value=-MAX_MAGNITUDE, max_value=MAX_MAGNITUDE),
            st.sampled_from(["1,234.5", "-7", "", None]),
        ),
    },
    optional={
        "d": st.one_of(ANY_TEXT, st.text(max_size=130), st.integers(), st.none()),
        "i": st.one_of(st.integers(), st.text(max_size=210), st.just("")),
    },
)
ANY_RECORD = st.dictionaries(
    st.sampled_from(["v", "t", "d", "i", "a", "list", "0", "x"]),
    st.one_of(
        JSON,
        st.sampled_from(["2026-05-01T12:00:00Z", "2026-05-01", "1714564800", "1.234,5"]),
        st.text(max_size=130).map(lambda s: s + "\x00"),
    ),
    max_size=6,
)
RECORD = st.one_of(GOOD_RECORD, GOOD_RECORD, ANY_RECORD)


@settings(max_examples=120, deadline=None)
@given(records=st.lists(RECORD, max_size=6), mapping=MAPPINGS, prefix=st.sampled_from(["", "i1:"]))
def test_records_become_valid_points_or_skips_or_the_whole_sync_stops(
    records: list[dict[str, Any]], mapping: dict[str, str], prefix: str
) -> None:
    try:
        mapped = points(records, mapping, "deals", id_prefix=prefix)
        event(f"{len(mapped.points)} points")
    except SyncError as exc:
        event("stopped")
        number = int(str(exc).split(":")[0].removeprefix("Record "))
        assert 1 <= number <= len(records)
        return
    # Nothing refused: each record is a point or a skip (no value), in order.
    assert len(mapped.points) + mapped.skipped == len(records)
    with_value = [r for r in records if dig(r, mapping["value"]) not in (None, "")]
    assert len(mapped.points) == len(with_value)
    for point in mapped.points:
        assert point.metric_key == "deals"
        assert math.isfinite(point.value) and abs(point.value) <= MAX_MAGNITUDE
        assert point.ts.utcoffset() is not None and FIRST <= point.ts < LAST
        assert len(point.dimension) <= 120 and "\x00" not in point.dimension
        if point.external_id is not None:
            assert point.external_id.startswith(prefix) and point.external_id != prefix
            assert len(point.external_id) <= 200 and "\x00" not in point.external_id


@st.composite
def nested(draw: Any) -> tuple[Any, str, Any]:
    """(data, a dotted path into it, the value at that path)."""
    leaf = draw(JSON)
    parts = draw(st.lists(st.one_of(st.text(string.ascii_letters, min_size=1, max_size=5),
                                    st.integers(0, 3)), max_size=4))  # fmt: skip
    data = leaf
    for part in reversed(parts):
        if isinstance(part, int):
            filler = draw(st.lists(JSON, min_size=part, max_size=part))
            data = [*filler, data]
        else:
            data = {**draw(st.dictionaries(st.text(string.digits, max_size=2), JSON, max_size=2)),
                    part: data}  # fmt: skip
    return data, ".".join(str(p) for p in parts), leaf


@settings(max_examples=100, deadline=None)
@given(found=nested())
def test_dig_finds_what_is_at_a_path(found: tuple[Any, str, Any]) -> None:
    data, path, leaf = found
    assert dig(data, path) == leaf
    assert dig(data, path + ".") == leaf  # empty parts are skipped
    assert dig(data, "." + path) == leaf


@PURE
@given(data=JSON, path=st.text(alphabet=ANY_CHARS, max_size=20))
def test_dig_never_raises_on_any_answer_and_any_path(data: Any, path: str) -> None:
    dig(data, path)  # any value or None; a malformed answer is not an exception


# == connectors: another service's answers =======================================================


@dataclass
class Answering(Session):
    """A Session whose service answers from a list (200 with each body in turn); OAuth2 token
    requests get a token. Everything above _send (auth headers, params, JSON) is the real one."""

    answers: list[bytes] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> http.Response:
        if url.endswith("/services/oauth2/token"):
            return http.Response(200, url, body=b'{"access_token": "t0ken"}')
        self.urls.append(url)
        return http.Response(200, url, body=self.answers.pop(0) if self.answers else b"")


def fetch_all(kind: str, config: dict[str, Any], answers: list[bytes], state: str = "") -> Any:
    shaped = session_for(kind, config, "s3cret", http.Policy()).config
    session = Answering(config=shaped, secret="s3cret", policy=http.Policy(), answers=answers)
    session.state = state
    pages = list(for_kind(kind).fetch(session, session.config, False))
    assert isinstance(session.state, str)
    return pages, session


def assert_pages_of_records(pages: Any) -> list[dict[str, Any]]:
    assert isinstance(pages, list)
    records = []
    for page in pages:
        assert isinstance(page, list) and all(isinstance(r, dict) for r in page)
        records.extend(page)
    return records


RECORDS = st.lists(st.one_of(st.dictionaries(ANY_TEXT, JSON, max_size=4), JSON), max_size=5)
NEXT = st.one_of(
    st.none(),
    st.sampled_from(["", "/api/deals?page=2", "https://crm.example/api/deals?after=9", "?p=3", 0]),
    ANY_TEXT,
    st.just("http://[x"),  # not a valid address (urljoin raises ValueError)
)
REST_CONFIGS = st.fixed_dictionaries(
    {
        "url": st.just("https://crm.example/api/deals"),
        "records_path": st.sampled_from(["", "data", "data.items"]),
        "pagination": st.sampled_from(["none", "next_link", "cursor", "page"]),
        "next_path": st.just("next"),
        "cursor_path": st.just("meta.cursor"),
        "page_size": st.sampled_from([1, 2, 100]),
    },
    optional={"since_param": st.just("since"), "since_field": st.sampled_from(["updated", "id"])},
)


@st.composite
def rest_answers(draw: Any, config: dict[str, Any]) -> list[bytes]:
    answers = []
    for _ in range(draw(st.integers(0, 4))):
        records = draw(RECORDS)
        page: Any = {"next": draw(NEXT), "meta": {"cursor": draw(NEXT)}}
        if config["records_path"] == "":
            page = records
        elif config["records_path"] == "data":
            page["data"] = records
        else:
            page["data"] = {"items": records}
        if draw(st.integers(0, 9)) == 0:
            page = draw(JSON)  # an answer of another shape altogether
        answers.append(json.dumps(page).encode())
    if draw(st.integers(0, 9)) == 0:
        answers.append(draw(st.binary(max_size=20)))  # not JSON
    return answers


@settings(max_examples=100, deadline=None)
@given(data=st.data(), config=REST_CONFIGS, state=st.sampled_from(["", "5", "2026-05-01"]))
def test_the_rest_connector_yields_records_or_a_sync_error_for_any_answers(
    data: Any, config: dict[str, Any], state: str
) -> None:
    answers = data.draw(rest_answers(config))
    try:
        pages, _ = fetch_all("rest", config, answers, state)
    except SyncError:
        event("sync error")
        return
    event(f"{len(assert_pages_of_records(pages))} records")


@PURE
@given(
    deals=st.lists(
        st.one_of(
            st.fixed_dictionaries({"id": JSON_LEAF, "properties": st.fixed_dictionaries(
                {"amount": JSON_LEAF, "hs_lastmodifieddate": st.one_of(
                    st.integers(0, 2**41).map(str),
                    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
                    JSON_LEAF)},
                optional={"dealstage": JSON_LEAF})}),
            st.fixed_dictionaries(
                {"id": JSON_LEAF, "properties": st.dictionaries(ANY_TEXT, JSON, max_size=3)}),
            st.fixed_dictionaries({"id": JSON_LEAF}),
            JSON_LEAF,  # not a deal object: left out
        ),
        max_size=4,
    ),
    after=st.one_of(st.none(), st.sampled_from(["", "100", "9900", "abc"]), JSON_LEAF),
    pages=st.integers(1, 3),
    state=st.sampled_from(["", "1714564800000"]),
)  # fmt: skip
def test_the_hubspot_connector_yields_records_or_a_sync_error(
    deals: list[Any], after: Any, pages: int, state: str
) -> None:
    page = {"results": deals, "paging": {"next": {"after": after}}}
    answers = [json.dumps(page).encode()] * pages + [b'{"results": []}']
    try:
        found, session = fetch_all("hubspot", {"url": "https://api.hubapi.com"}, answers, state)
    except SyncError:
        return
    records = assert_pages_of_records(found)
    assert all("id" in r for r in records)
    assert session.state == "" or session.state.isdigit()  # milliseconds, for the next search


@PURE
@given(
    deals=st.lists(st.dictionaries(ANY_TEXT, JSON, max_size=3) | JSON, max_size=4),
    success=st.sampled_from([True, False, None, "yes"]),
    cursor=st.one_of(st.none(), st.sampled_from(["", "c2"]), JSON_LEAF),
    pages=st.integers(1, 3),
)
def test_the_pipedrive_connector_yields_records_or_a_sync_error(
    deals: list[Any], success: Any, cursor: Any, pages: int
) -> None:
    page = {"success": success, "data": deals, "additional_data": {"next_cursor": cursor}}
    answers = [json.dumps(page).encode()] * pages + [b'{"data": []}']
    try:
        found, session = fetch_all("pipedrive", {"url": "https://acme.pipedrive.com"}, answers)
    except SyncError:
        return
    records = assert_pages_of_records(found)
    # The cursor for the next run: the largest update_time seen, as text.
    times = [str(r.get("update_time") or "") for r in records]
    assert session.state == max(["", *times])


@PURE
@given(
    records=st.lists(st.dictionaries(ANY_TEXT, JSON, max_size=3) | JSON, max_size=4),
    done=st.sampled_from([True, False, None]),
    following=st.one_of(
        st.none(), st.sampled_from(["/services/data/v62.0/query/01g-2000", "", "next"])
    ),
    query=st.sampled_from(["SELECT Id FROM Opportunity", "select Id from X", "DELETE x"]),
)
def test_the_salesforce_connector_yields_records_without_attributes_or_a_sync_error(
    records: list[Any], done: Any, following: Any, query: str
) -> None:
    page = {"records": records, "done": done, "nextRecordsUrl": following}
    config = {"url": "https://acme.my.salesforce.com", "query": query, "client_id": "k"}
    try:
        found, _ = fetch_all("salesforce", config, [json.dumps(page).encode()] * 3)
    except SyncError:
        return
    assert query.lower().startswith("select ")
    assert all("attributes" not in r for r in assert_pages_of_records(found))


HEADER_NAMES = st.lists(
    st.text(min_size=1, max_size=8).filter(lambda s: not s.startswith("\ufeff")),
    min_size=1,
    max_size=4,
    unique=True,
)


@PURE
@given(data=st.data(), names=HEADER_NAMES, delimiter=st.sampled_from([",", ";", "\t", "|"]))
def test_a_csv_file_reads_back_the_rows_written(
    data: Any, names: list[str], delimiter: str
) -> None:
    rows = data.draw(
        st.lists(st.fixed_dictionaries({n: st.text(max_size=10) for n in names}), max_size=6)
    )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, delimiter=delimiter, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    bom = data.draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))  # Excel's UTF-8 files start so
    config = {"url": "https://files.example/deals.csv", "delimiter": delimiter}
    pages, _ = fetch_all("csv", config, [bom + out.getvalue().encode()])
    assert assert_pages_of_records(pages) == rows


@PURE
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_any_csv_file_yields_records_or_a_sync_error(body: bytes) -> None:
    config = {"url": "https://files.example/deals.csv", "delimiter": ","}
    try:
        pages, _ = fetch_all("csv", config, [body])
    except SyncError:
        return
    for record in assert_pages_of_records(pages):
        try:
            points([record], {"timestamp": "a", "value": "b", "id": "c"}, "m")
        except SyncError:
            pass


# == the outbound client reading an answer =======================================================


@PURE
@given(body=st.one_of(st.binary(max_size=100), JSON.map(lambda v: json.dumps(v).encode())))
def test_an_answer_is_json_or_an_outbound_error(body: bytes) -> None:
    response = http.Response(200, "https://crm.example/", body=body)
    try:
        value = response.json()
    except http.OutboundError as exc:
        assert exc.kind == "malformed"
        return
    assert json.loads(body) == value or value != value  # NaN is never equal to itself


LATIN1_TEXT = st.text(st.characters(codec="latin-1"), max_size=40)  # "²" and "³" too


@PURE
@given(
    value=st.one_of(
        st.none(),
        LATIN1_TEXT,
        st.integers(0, 10**400).map(str),
        st.datetimes(timezones=st.timezones()).map(
            lambda d: d.strftime("%a, %d %b %Y %H:%M:%S %z")
        ),
    )
)
def test_a_retry_after_header_is_a_wait_or_none(value: str | None) -> None:
    wait = http._retry_after(value)
    assert wait is None or wait >= 0


# == integration settings (the pages and the API alike) ==========================================

CONFIG_KEYS = sorted({k for keys in integration_config.KIND_KEYS.values() for k in keys})
MARKER = "Qz7"  # in every generated text value: no error message may repeat one
MARKED = st.text(max_size=12).map(lambda s: MARKER + s)
NOT_TEXT = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.lists(JSON_LEAF))
SETTING_VALUES = st.one_of(
    st.sampled_from(
        [
            "https://crm.example/api/deals",
            "http://crm.example/x",
            "https://user:pw@crm.example/",
            "https://crm.example/#top",
            "https://[::1",
            "https://crm.example:99999/",
            "none",
            "next_link",
            "cursor",
            "page",
            "bearer",
            "header",
            "oauth2",
            "basic",
            "X-API-Key",
            "Host",
            "SELECT Id FROM Opportunity",
            "delete from x",
            "data.items",
            "t\x01",
            ";",
            "won",
            "since",
        ]
    ),
    MARKED,
    MARKED.map(lambda s: "https://" + s),
    NOT_TEXT,
)
MAPPING_VALUES = st.one_of(
    st.sampled_from(["closed_at", "data.0.amount", "t\x01", "", "x" * 201, ".", ",", None]),
    MARKED,
    NOT_TEXT,
)
BASE_CONFIGS: dict[str, dict[str, Any]] = {  # valid settings of each kind
    "rest": {
        "url": "https://crm.example/api/deals",
        "records_path": "data",
        "auth": "bearer",
        "mapping": {"timestamp": "closed_at", "value": "amount", "id": "id"},
    },
    "csv": {
        "url": "https://files.example/deals.csv",
        "delimiter": ";",
        "mapping": {"timestamp": "date", "value": "amount", "id": "row", "decimal": ","},
    },
    "hubspot": {"url": "https://api.hubapi.com"},
    "pipedrive": {"url": "https://acme.pipedrive.com", "status": "won"},
    "salesforce": {
        "url": "https://acme.my.salesforce.com",
        "query": "SELECT Id, Amount FROM Opportunity",
        "client_id": "consumer-key",
    },
}


@st.composite
def settings_for(draw: Any, kind: str) -> dict[str, Any]:
    """The kind's valid settings changed in up to three ways (or not at all), or any object."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.dictionaries(st.sampled_from([*CONFIG_KEYS, "mapping"]), SETTING_VALUES))
    config = json.loads(json.dumps(BASE_CONFIGS.get(kind, BASE_CONFIGS["rest"])))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        how = draw(st.sampled_from(["set", "set", "drop", "unknown", "mapping", "mapping_key"]))
        if how == "set":
            config[draw(st.sampled_from(CONFIG_KEYS))] = draw(SETTING_VALUES)
        elif how == "drop" and config:
            config.pop(draw(st.sampled_from(sorted(config))))
        elif how == "unknown":
            config[draw(st.sampled_from(["properties", "mystery", "secret"]))] = draw(JSON_LEAF)
        elif how == "mapping":
            config["mapping"] = draw(st.one_of(JSON, st.just({"value": "amount"})))
        else:
            mapping = config.setdefault("mapping", {})
            if isinstance(mapping, dict):
                fields = ["timestamp", "value", "dimension", "id", "decimal", "colour"]
                mapping[draw(st.sampled_from(fields))] = draw(MAPPING_VALUES)
    return config


KINDS = st.sampled_from(sorted(integration_config.KIND_KEYS))


def messages_of(errors: dict[str, list[str]]) -> str:
    return " ".join(m for ms in errors.values() for m in ms)


@settings(max_examples=200, deadline=None)
@given(
    sent=KINDS.flatmap(lambda k: st.tuples(st.just(k), settings_for(k))), allow_http=st.booleans()
)
@example(sent=("rest", {"pagination": "Qz7x"}), allow_http=False)
@example(sent=("csv", {"delimiter": "Qz7"}), allow_http=False)
def test_settings_are_stored_in_a_form_the_check_accepts_unchanged_or_refused_without_values(
    sent: tuple[str, dict[str, Any]], allow_http: bool
) -> None:
    kind, config = sent
    try:
        stored = integration_config.clean_config(kind, config, allow_http=allow_http)
    except integration_config.ConfigErrors as exc:
        event("refused")
        assert exc.errors and all(exc.errors.values())
        assert MARKER not in messages_of(exc.errors)  # never echoes what was sent
        return
    event("accepted")
    assert integration_config.clean_config(kind, stored, allow_http=allow_http) == stored
    assert set(stored) <= {*integration_config.KIND_KEYS[kind], "mapping", "properties"}
    assert stored["mapping"]["value"] and stored["mapping"]["timestamp"]
    schemes = ("https://", "http://") if allow_http else ("https://",)
    assert stored["url"].lower().startswith(schemes)
    assert json.loads(json.dumps(stored)) == stored  # JSON as it is kept


@PURE
@given(
    value=st.one_of(
        MARKED,
        st.builds(
            lambda scheme, host, rest: f"{scheme}://{host}{rest}",
            st.sampled_from(["https", "HTTPS", "http", "ftp", "javascript", ""]),
            st.sampled_from(["crm.example", "user:pw@crm.example", "[::1]", "[::1", "", "a b",
                             "crm.example:99999", "crm.example:443", "10.0.0.1"]),
            st.text(max_size=20).map(lambda s: "/" + MARKER + s),
        ),
    ),
    allow_http=st.booleans(),
)  # fmt: skip
def test_an_address_is_accepted_only_as_a_clean_web_address(value: str, allow_http: bool) -> None:
    try:
        clean = integration_config.clean_url(value, allow_http=allow_http)
    except forms.ValidationError as exc:
        assert MARKER not in " ".join(exc.messages)  # never echoes the address
        return
    assert integration_config.clean_url(clean, allow_http=allow_http) == clean
    scheme, host, port = http.origin(clean)
    assert scheme in (("https", "http") if allow_http else ("https",))
    assert host and port is not None and port > 0
    assert not any(c.isspace() for c in clean) and "#" not in clean
    assert "@" not in clean.split("/")[2]


CA_PEM = trustme.CA().cert_pem.bytes().decode()


@PURE
@given(
    value=st.one_of(
        st.text(max_size=80),
        st.just(CA_PEM),
        st.sampled_from(["", "  \n", CA_PEM + "\n\n", "-----BEGIN PRIVATE KEY-----\nAAA\n"]),
        st.text(string.printable, max_size=20).map(lambda s: CA_PEM.replace("MII", s, 1)),
    )
)
def test_a_ca_certificate_is_accepted_only_as_pem_and_never_a_private_key(value: str) -> None:
    try:
        clean = integration_config.clean_ca_pem(value)
    except forms.ValidationError:
        return
    assert clean == "" or clean == value.strip() + "\n"
    assert integration_config.clean_ca_pem(clean) == clean
    assert "PRIVATE KEY" not in clean
    if clean:
        http._tls_context(clean)  # the outbound client takes it as it is stored


@PURE
@given(value=st.text(max_size=40))
def test_a_credential_is_accepted_only_when_it_can_go_in_a_header_as_it_is(value: str) -> None:
    try:
        clean = integration_config.clean_secret(value)
    except forms.ValidationError as exc:
        assert value not in " ".join(exc.messages) or value == ""
        return
    assert clean == value
    raw = f"Bearer {clean}".encode("latin-1")  # what http.client sends
    assert not any(b < 32 or b == 127 for b in raw)


# == regressions: bugs the properties above found, since fixed =====================================


def test_a_huge_json_integer_value_stops_the_sync_with_a_sync_error() -> None:
    with pytest.raises(SyncError, match="Record 1: 'v' is out of range"):
        read_number(10**400)


@pytest.mark.parametrize("raw", [True, False])
def test_a_boolean_is_not_a_time(raw: bool) -> None:
    assert read_time(raw) == "refused"


@PURE
@given(text=st.text(alphabet="0123456789.,", min_size=1, max_size=10))
@example(text="12.5")
def test_the_decimal_comma_is_the_mirror_image_of_the_decimal_point(text: str) -> None:
    mirrored = text.translate(str.maketrans(".,", ",."))
    assert outcome(text, ",") == outcome(mirrored, ".")


def test_dig_with_a_non_ascii_digit_over_a_list_is_none() -> None:
    assert dig(["a", "b"], "²") is None


@pytest.mark.parametrize("kind", ["rest", "salesforce"])
def test_a_malformed_next_page_link_is_a_sync_error(kind: str) -> None:
    if kind == "rest":
        config = {"url": "https://crm.example/x", "records_path": "r", "pagination": "next_link",
                  "next_path": "n"}  # fmt: skip
        answer = {"r": [], "n": "http://[x"}
    else:
        config = {"url": "https://acme.my.salesforce.com", "query": "SELECT Id FROM X",
                  "client_id": "k"}  # fmt: skip
        answer = {"records": [], "done": False, "nextRecordsUrl": "http://[x"}
    with pytest.raises(SyncError):
        fetch_all(kind, config, [json.dumps(answer).encode()])


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        ("hubspot", {"results": [{"id": "1", "properties": "ab"}]}),
        ("hubspot", {"results": [], "paging": [1]}),
        ("hubspot", {"results": [], "paging": {"next": [1]}}),
        ("pipedrive", {"data": [], "additional_data": [1]}),
    ],
)
def test_an_answer_of_another_shape_is_a_sync_error(kind: str, answer: Any) -> None:
    config = {"url": "https://api.hubapi.com" if kind == "hubspot" else "https://a.pipedrive.com"}
    with pytest.raises(SyncError):
        fetch_all(kind, config, [json.dumps(answer).encode()])


def test_a_superscript_digit_from_hubspot_is_neither_a_time_nor_a_page_number() -> None:
    # "²".isdigit() is true but int("²") raises: read like any other text that is no number.
    deal = {"id": "1", "properties": {"hs_lastmodifieddate": "²"}}
    first = {"results": [deal], "paging": {"next": {"after": "²"}}}
    answers = [json.dumps(first).encode(), b'{"results": []}']
    pages, session = fetch_all("hubspot", {"url": "https://api.hubapi.com"}, answers)
    assert pages == [[{"hs_lastmodifieddate": "²", "id": "1"}], []]  # paged on with "²"
    assert session.state == ""  # no modified date it can read: no cursor


def test_deeply_nested_json_is_a_malformed_answer() -> None:
    response = http.Response(200, "https://crm.example/", body=b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(http.OutboundError):
        response.json()


@pytest.mark.parametrize("where", ["retry-after", "content-length"])
def test_a_superscript_digit_in_a_header_is_not_a_number(where: str) -> None:
    if where == "retry-after":
        assert http._retry_after("²") is None
        return

    class Raw:
        headers = {"content-length": "²"}

        def stream(self, size: int) -> Any:
            return iter([b"ok"])

    assert http._read_limited(Raw(), 10, "crm.example") == b"ok"


def test_non_ascii_text_is_not_a_ca_certificate() -> None:
    with pytest.raises(forms.ValidationError):
        integration_config.clean_ca_pem("é")


def test_a_lone_surrogate_in_an_answer_is_a_malformed_answer() -> None:
    answer = b'{"data": [], "meta": {"cursor": "\\ud800"}}'
    config = {"url": "https://crm.example/x", "records_path": "data", "pagination": "cursor",
              "cursor_path": "meta.cursor"}  # fmt: skip
    with pytest.raises(SyncError):
        fetch_all("rest", config, [answer])
