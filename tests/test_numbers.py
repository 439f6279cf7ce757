"""Values read the same on every screen: separators, decimals, currencies, percent, duration."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashvault.lib.numbers import format_value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (7, "7"),
        (1234567, "1,234,567"),
        (1234.5, "1,234.5"),
        (1234.567, "1,234.57"),
        (2.50, "2.5"),
        (1 / 3, "0.33"),
        (0.001, "0"),
        (-0.001, "0"),
        (-1234.5, "-1,234.5"),
        (12345.678, "12,346"),
        (9999.999, "10,000"),
        (1e12, "1,000,000,000,000"),
    ],
)
def test_numbers_get_separators_and_at_most_two_decimals(value, text):
    assert format_value(value, "number") == text


@pytest.mark.parametrize(
    ("value", "currency", "text"),
    [
        (1234.5, "EUR", "€1,234.50"),
        (1234, "eur", "€1,234"),
        (99.999, "USD", "$100"),
        (0.5, "GBP", "£0.50"),
        (1234.4, "JPY", "¥1,234"),
        (1234.5, "SEK", "1,234.50 kr"),
        (-5, "EUR", "-€5"),
        (-1234.5, "SEK", "-1,234.50 kr"),
        (1234567.89, "USD", "$1,234,568"),
        (1234, "ABC", "1,234 ABC"),
        (1234.25, "", "1,234.25"),
        (1234, "CHF", "CHF 1,234"),
        (-0.001, "EUR", "€0"),
    ],
)
def test_currencies_use_their_symbol_or_code(value, currency, text):
    assert format_value(value, "currency", currency) == text


@pytest.mark.parametrize(
    ("value", "text"), [(12.5, "12.5%"), (100, "100%"), (33.333, "33.33%"), (-4, "-4%")]
)
def test_percent_values_are_percent_points(value, text):
    assert format_value(value, "percent") == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (2.5, "2.5s"),
        (45, "45s"),
        (59.4, "59s"),
        (59.6, "1m 00s"),
        (200, "3m 20s"),
        (3599, "59m 59s"),
        (3600, "1h 00m"),
        (3900, "1h 05m"),
        (86_399, "23h 59m"),
        (2 * 86_400 + 3 * 3600 + 59, "2d 03h"),
        (-200, "-3m 20s"),
    ],
)
def test_durations_read_as_hours_minutes_and_seconds(seconds, text):
    assert format_value(seconds, "duration") == text


@pytest.mark.parametrize("unit", ["number", "currency", "percent", "duration", "unknown"])
@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
def test_a_missing_or_non_finite_value_is_a_dash(unit, value):
    assert format_value(value, unit, "EUR") == "–"


def test_an_unknown_unit_reads_as_a_number():
    assert format_value(1234.5, "furlongs") == "1,234.5"


@given(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False))
def test_a_plain_number_round_trips_within_its_shown_precision(value):
    text = format_value(value, "number")
    half_step = 0.5 if abs(value) >= 1e4 else 0.005  # plus float noise at exact halves
    assert abs(float(text.replace(",", "")) - value) <= half_step * 1.000001
