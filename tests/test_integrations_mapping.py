"""Records to data points: numbers and times read strictly, never guessed."""

from __future__ import annotations

import datetime as dt

import pytest

from dashvault.integrations.connectors.rest import _later
from dashvault.integrations.connectors.session import SyncError
from dashvault.integrations.mapping import points
from dashvault.lib import http

MAPPING = {"timestamp": "t", "value": "v", "dimension": "d", "id": "i"}


def one(value: object, **mapping: str) -> float:
    record = {"t": "2026-11-27T10:00:00Z", "v": value, "d": "x", "i": 1}
    return points([record], {**MAPPING, **mapping}, "m").points[0].value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(12, 12.0), (12.5, 12.5), ("12.5", 12.5), ("1,234.5", 1234.5), ("-1,000", -1000.0)],
)
def test_numbers_with_a_decimal_point(raw: object, expected: float) -> None:
    assert one(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("12,5", 12.5), ("1.234,5", 1234.5), ("1 234,5", 1234.5), ("7", 7.0)]
)
def test_numbers_with_a_decimal_comma(raw: str, expected: float) -> None:
    assert one(raw, decimal=",") == expected


@pytest.mark.parametrize("raw", ["12,5", "1,23", "abc", True, "1e999", "NaN"])
def test_a_number_that_cannot_be_read_for_sure_stops_the_sync(raw: object) -> None:
    with pytest.raises(SyncError, match=r"Record 1: 'v' is (not a number|out of range)"):
        one(raw)


def test_times_in_iso_form_dates_and_epoch_seconds_or_milliseconds() -> None:
    def when(raw: object) -> dt.datetime:
        record = {"t": raw, "v": 1}
        return points([record], {"timestamp": "t", "value": "v"}, "m").points[0].ts

    expected = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    assert when("2026-11-27") == expected
    assert when("2026-11-27T00:00:00Z") == expected
    assert when(int(expected.timestamp())) == expected
    assert when(str(int(expected.timestamp() * 1000))) == expected
    with pytest.raises(SyncError, match="Record 1: 't' is not a time"):
        when("yesterday")


def test_records_without_a_value_are_skipped_and_counted() -> None:
    mapped = points([{"t": "2026-11-27", "v": None}, {"t": "2026-11-27", "v": ""}], MAPPING, "m")
    assert (mapped.points, mapped.skipped) == ([], 2)


def test_an_incremental_cursor_compares_numbers_as_numbers() -> None:
    assert _later("10", "9") and not _later("9", "10")
    assert _later("2026-11-27T10:00:00Z", "2026-11-26T23:00:00Z")
    assert _later("1", "")


def test_a_ca_certificate_that_is_not_pem_is_a_tls_error() -> None:
    policy = http.Policy(ca_pem="not a certificate")
    with pytest.raises(http.OutboundError) as caught:
        http._pool("https", "example.com", http.ipaddress.ip_address("93.184.216.34"), 443, policy)
    assert caught.value.kind == "tls"
