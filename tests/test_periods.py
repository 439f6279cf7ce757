"""Periods, comparison periods and buckets: pure date arithmetic on local days."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashvault.metrics.periods import (
    BUCKETS,
    PERIODS,
    bucket_label,
    bucket_labels,
    bucket_range,
    bucket_start,
    period_days,
    period_label,
    previous_days,
    today_in,
)

D = dt.date
TODAY = D(2026, 5, 14)  # a Thursday in the second quarter


@pytest.mark.parametrize(
    ("period", "first", "last"),
    [
        ("today", D(2026, 5, 14), D(2026, 5, 14)),
        ("yesterday", D(2026, 5, 13), D(2026, 5, 13)),
        ("this_week", D(2026, 5, 11), D(2026, 5, 14)),
        ("this_month", D(2026, 5, 1), D(2026, 5, 14)),
        ("this_quarter", D(2026, 4, 1), D(2026, 5, 14)),
        ("this_year", D(2026, 1, 1), D(2026, 5, 14)),
        ("last_7_days", D(2026, 5, 8), D(2026, 5, 14)),
        ("last_30_days", D(2026, 4, 15), D(2026, 5, 14)),
        ("last_90_days", D(2026, 2, 14), D(2026, 5, 14)),
        ("last_12_months", D(2025, 6, 1), D(2026, 5, 14)),
        ("all_time", None, D(2026, 5, 14)),
    ],
)
def test_each_period_covers_the_expected_days(period, first, last):
    assert period_days(period, TODAY) == (first, last)


@pytest.mark.parametrize(
    ("period", "first", "last"),
    [
        ("today", D(2026, 5, 13), D(2026, 5, 13)),
        ("yesterday", D(2026, 5, 12), D(2026, 5, 12)),
        ("this_week", D(2026, 5, 4), D(2026, 5, 7)),  # Monday to Thursday a week earlier
        ("this_month", D(2026, 4, 1), D(2026, 4, 14)),
        ("this_quarter", D(2026, 1, 1), D(2026, 2, 13)),  # 44 days from 1 January
        ("this_year", D(2025, 1, 1), D(2025, 5, 14)),
        ("last_7_days", D(2026, 5, 1), D(2026, 5, 7)),
        ("last_30_days", D(2026, 3, 16), D(2026, 4, 14)),
        ("last_90_days", D(2025, 11, 16), D(2026, 2, 13)),
        ("last_12_months", D(2024, 6, 1), D(2025, 5, 14)),
    ],
)
def test_each_period_compares_with_the_expected_previous_days(period, first, last):
    assert previous_days(period, TODAY) == (first, last)


def test_all_time_has_no_previous_period():
    assert previous_days("all_time", TODAY) is None


@pytest.mark.parametrize(
    ("today", "previous"),
    [
        (D(2026, 3, 15), (D(2026, 2, 1), D(2026, 2, 15))),
        (D(2026, 3, 28), (D(2026, 2, 1), D(2026, 2, 28))),
        (D(2026, 3, 31), (D(2026, 2, 1), D(2026, 2, 28))),  # clamped at February's end
        (D(2024, 3, 31), (D(2024, 2, 1), D(2024, 2, 29))),  # leap year
        (D(2026, 1, 31), (D(2025, 12, 1), D(2025, 12, 31))),  # across the year
        (D(2026, 5, 31), (D(2026, 4, 1), D(2026, 4, 30))),
        (D(2026, 3, 1), (D(2026, 2, 1), D(2026, 2, 1))),
    ],
)
def test_this_month_so_far_compares_with_as_many_days_of_the_previous_month(today, previous):
    assert previous_days("this_month", today) == previous


@pytest.mark.parametrize(
    ("today", "current", "previous"),
    [
        (D(2026, 1, 1), (D(2026, 1, 1), D(2026, 1, 1)), (D(2025, 10, 1), D(2025, 10, 1))),
        (D(2026, 3, 31), (D(2026, 1, 1), D(2026, 3, 31)), (D(2025, 10, 1), D(2025, 12, 29))),
        (D(2026, 9, 30), (D(2026, 7, 1), D(2026, 9, 30)), (D(2026, 4, 1), D(2026, 6, 30))),
        (D(2026, 12, 31), (D(2026, 10, 1), D(2026, 12, 31)), (D(2026, 7, 1), D(2026, 9, 30))),
        (D(2026, 6, 30), (D(2026, 4, 1), D(2026, 6, 30)), (D(2026, 1, 1), D(2026, 3, 31))),
    ],
)
def test_quarters_start_in_january_april_july_and_october(today, current, previous):
    assert period_days("this_quarter", today) == current
    assert previous_days("this_quarter", today) == previous


def test_a_year_so_far_after_a_leap_year_counts_elapsed_days():
    # 31 Dec 2025 is day 365; 2024 had 366 days, so the comparison stops on 30 Dec 2024.
    assert previous_days("this_year", D(2025, 12, 31)) == (D(2024, 1, 1), D(2024, 12, 30))
    # 31 Dec 2024 is day 366 of a leap year: clamped at the end of 2023.
    assert previous_days("this_year", D(2024, 12, 31)) == (D(2023, 1, 1), D(2023, 12, 31))


def test_the_iso_week_runs_across_the_year_boundary():
    # Thursday 1 January 2026 belongs to ISO week 1, which began on Monday 29 December 2025.
    assert period_days("this_week", D(2026, 1, 1)) == (D(2025, 12, 29), D(2026, 1, 1))
    assert previous_days("this_week", D(2026, 1, 1)) == (D(2025, 12, 22), D(2025, 12, 25))
    assert bucket_start(D(2026, 1, 3), "week") == D(2025, 12, 29)
    assert bucket_label(D(2025, 12, 29), "week") == "W01"
    assert bucket_label(D(2025, 12, 29), "week", with_year=True) == "W01 2026"
    # 2026 has 53 ISO weeks: Monday 28 December 2026 starts week 53.
    assert bucket_label(D(2026, 12, 28), "week") == "W53"


def test_last_12_months_in_january_reaches_back_to_february():
    assert period_days("last_12_months", D(2026, 1, 10)) == (D(2025, 2, 1), D(2026, 1, 10))
    # As many days (344) from 1 February a year earlier: 2024's leap day shifts the end by one.
    assert previous_days("last_12_months", D(2026, 1, 10)) == (D(2024, 2, 1), D(2025, 1, 9))


@pytest.mark.parametrize(
    ("bucket", "first", "last", "starts"),
    [
        ("day", D(2026, 2, 27), D(2026, 3, 2),
         [D(2026, 2, 27), D(2026, 2, 28), D(2026, 3, 1), D(2026, 3, 2)]),
        ("week", D(2026, 5, 1), D(2026, 5, 14), [D(2026, 4, 27), D(2026, 5, 4), D(2026, 5, 11)]),
        ("month", D(2025, 11, 15), D(2026, 2, 1),
         [D(2025, 11, 1), D(2025, 12, 1), D(2026, 1, 1), D(2026, 2, 1)]),
        ("month", D(2026, 5, 14), D(2026, 5, 14), [D(2026, 5, 1)]),
        ("day", D(2026, 5, 14), D(2026, 5, 13), []),
    ],
)  # fmt: skip
def test_bucket_ranges_list_every_bucket_start_including_empty_ones(bucket, first, last, starts):
    assert bucket_range(first, last, bucket) == starts


@pytest.mark.parametrize(
    ("day", "bucket", "start"),
    [
        (D(2026, 5, 14), "day", D(2026, 5, 14)),
        (D(2026, 5, 14), "week", D(2026, 5, 11)),
        (D(2026, 5, 11), "week", D(2026, 5, 11)),
        (D(2026, 5, 17), "week", D(2026, 5, 11)),  # Sunday ends the ISO week
        (D(2026, 5, 14), "month", D(2026, 5, 1)),
    ],
)
def test_a_day_belongs_to_its_bucket(day, bucket, start):
    assert bucket_start(day, bucket) == start


def test_labels_are_short_and_gain_the_year_when_a_chart_spans_years():
    assert bucket_label(D(2026, 3, 27), "day") == "27 Mar"
    assert bucket_label(D(2026, 3, 1), "month") == "Mar"
    assert bucket_label(D(2026, 3, 23), "week") == "W13"
    assert bucket_labels([D(2026, 1, 1), D(2026, 2, 1)], "month") == ["Jan", "Feb"]
    assert bucket_labels([D(2025, 12, 1), D(2026, 1, 1)], "month") == ["Dec 2025", "Jan 2026"]
    assert bucket_labels([D(2025, 12, 31), D(2026, 1, 1)], "day") == ["31 Dec 2025", "1 Jan 2026"]
    # The week of 29 Dec 2025 is ISO week 1 of 2026: one ISO year, no year needed.
    assert bucket_labels([D(2025, 12, 29), D(2026, 1, 5)], "week") == ["W01", "W02"]


def test_every_period_has_a_label():
    assert period_label("last_12_months") == "Last 12 months"
    assert all(period_label(p) for p in PERIODS)


def test_unknown_periods_and_buckets_are_refused():
    with pytest.raises(ValueError, match="unknown period 'fortnight'"):
        period_days("fortnight", TODAY)
    with pytest.raises(ValueError, match="unknown period"):
        previous_days("fortnight", TODAY)
    with pytest.raises(ValueError, match="unknown bucket 'hour'"):
        bucket_start(TODAY, "hour")
    with pytest.raises(ValueError, match="unknown bucket"):
        bucket_range(TODAY, TODAY, "hour")
    with pytest.raises(ValueError, match="unknown bucket"):
        bucket_label(TODAY, "hour")


def test_today_follows_the_time_zone_across_dst_changes():
    helsinki = "Europe/Helsinki"
    # Before the March change Helsinki is UTC+2: 21:59 UTC is still the 28th, 22:00 the 29th.
    assert today_in(helsinki, dt.datetime(2026, 3, 28, 21, 59, tzinfo=dt.UTC)) == D(2026, 3, 28)
    assert today_in(helsinki, dt.datetime(2026, 3, 28, 22, 0, tzinfo=dt.UTC)) == D(2026, 3, 29)
    # After it (UTC+3) midnight comes at 21:00 UTC.
    assert today_in(helsinki, dt.datetime(2026, 3, 29, 20, 59, tzinfo=dt.UTC)) == D(2026, 3, 29)
    assert today_in(helsinki, dt.datetime(2026, 3, 29, 21, 0, tzinfo=dt.UTC)) == D(2026, 3, 30)
    # Back to UTC+2 on 25 October: that day ends at 22:00 UTC.
    assert today_in(helsinki, dt.datetime(2026, 10, 25, 21, 59, tzinfo=dt.UTC)) == D(2026, 10, 25)
    assert today_in(helsinki, dt.datetime(2026, 10, 25, 22, 0, tzinfo=dt.UTC)) == D(2026, 10, 26)
    assert today_in("UTC", dt.datetime(2026, 3, 28, 23, 59, tzinfo=dt.UTC)) == D(2026, 3, 28)


def test_today_refuses_a_naive_instant_and_an_unknown_zone():
    with pytest.raises(ValueError, match="timezone-aware"):
        today_in("UTC", dt.datetime(2026, 3, 28, 12, 0))  # naive on purpose
    with pytest.raises(zoneinfo.ZoneInfoNotFoundError):
        today_in("Mars/Olympus_Mons", dt.datetime(2026, 3, 28, tzinfo=dt.UTC))


days = st.dates(min_value=D(1990, 1, 1), max_value=D(2100, 12, 31))
periods = st.sampled_from(sorted(PERIODS))
buckets = st.sampled_from(sorted(BUCKETS))


@given(period=periods, today=days)
def test_a_period_is_a_non_empty_range_ending_by_today(period, today):
    first, last = period_days(period, today)
    assert last <= today
    assert first is None or first <= last
    if period != "yesterday":
        assert last == today


@given(period=periods, today=days)
def test_the_previous_period_ends_before_the_current_and_is_never_longer(period, today):
    previous = previous_days(period, today)
    first, last = period_days(period, today)
    if first is None:
        assert previous is None
        return
    assert previous is not None
    prev_first, prev_last = previous
    assert prev_first <= prev_last < first
    assert (prev_last - prev_first) <= (last - first)
    if period in ("today", "yesterday", "last_7_days", "last_30_days", "last_90_days"):
        # Rolling periods: the same length, right before.
        assert prev_last == first - dt.timedelta(days=1)
        assert prev_last - prev_first == last - first
    else:
        # Calendar periods: from the previous period's start, as many days as elapsed unless
        # that period is shorter; it ends the day before the current one starts.
        prev_period_first, _ = period_days(period, first - dt.timedelta(days=1))
        assert prev_first == prev_period_first
        assert prev_last - prev_first == last - first or prev_last == first - dt.timedelta(days=1)


@given(first=days, length=st.integers(min_value=0, max_value=800), bucket=buckets)
def test_every_day_of_a_range_falls_in_exactly_one_bucket(first, length, bucket):
    last = first + dt.timedelta(days=length)
    starts = bucket_range(first, last, bucket)
    assert starts == sorted(set(starts))
    assert starts[0] <= first
    assert all(bucket_start(start, bucket) == start for start in starts)
    day = first
    while day <= last:
        assert starts.count(bucket_start(day, bucket)) == 1
        day += dt.timedelta(days=1)
    # and every bucket holds at least one day of the range
    assert bucket_start(last, bucket) == starts[-1]
    labels = bucket_labels(starts, bucket)
    assert len(set(labels)) == len(labels)


@given(period=periods, today=days, bucket=buckets)
def test_a_periods_buckets_cover_it(period, today, bucket):
    first, last = period_days(period, today)
    if first is None:
        return
    starts = bucket_range(first, last, bucket)
    assert starts[0] == bucket_start(first, bucket)
    assert starts[-1] == bucket_start(last, bucket)
