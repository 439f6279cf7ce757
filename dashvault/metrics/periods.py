"""Widget periods and chart buckets: pure date arithmetic on local days, no database.

Every range is a pair of local dates (first, last), both inclusive, in the organization's time
zone (`today_in` turns an instant into that zone's date; rollups are kept per local day, so a
range of days is all the read side needs). Periods run up to and including today: "this month"
means "this month so far". Unknown period or bucket names raise ValueError.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

DayRange = tuple[dt.date, dt.date]

PERIODS: dict[str, str] = {
    "today": "Today",
    "yesterday": "Yesterday",
    "this_week": "This week",
    "this_month": "This month",
    "this_quarter": "This quarter",
    "this_year": "This year",
    "last_7_days": "Last 7 days",
    "last_30_days": "Last 30 days",
    "last_90_days": "Last 90 days",
    "last_12_months": "Last 12 months",
    "all_time": "All time",
}

BUCKETS: dict[str, str] = {"day": "Day", "week": "Week", "month": "Month"}

_ROLLING_DAYS = {"today": 1, "last_7_days": 7, "last_30_days": 30, "last_90_days": 90}
_CALENDAR = ("this_week", "this_month", "this_quarter", "this_year", "last_12_months")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def today_in(tz_name: str, now: dt.datetime) -> dt.date:
    """The local date in time zone `tz_name` at the aware instant `now`.

    Raises ValueError for a naive `now` (its zone would be a guess) and
    zoneinfo.ZoneInfoNotFoundError for an unknown zone name.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(tz_name)).date()


def period_label(period: str) -> str:
    """The human name of a period, e.g. "Last 30 days"."""
    _check_period(period)
    return PERIODS[period]


def period_days(period: str, today: dt.date) -> tuple[dt.date | None, dt.date]:
    """The local days (first, last) of `period` as seen on `today`, both inclusive.

    Every period ends on `today` except "yesterday". Calendar periods start at their calendar
    start (ISO week: Monday; quarter: 1 Jan/Apr/Jul/Oct); "last_12_months" starts on the first
    day of the month eleven months back, so it holds 12 calendar months counting the current
    one; "last_N_days" holds exactly N days. "all_time" has no first day (None).
    """
    _check_period(period)
    if period == "yesterday":
        day = today - dt.timedelta(days=1)
        return day, day
    if period == "all_time":
        return None, today
    if period in _ROLLING_DAYS:
        return today - dt.timedelta(days=_ROLLING_DAYS[period] - 1), today
    return _calendar_start(period, today), today


def previous_days(period: str, today: dt.date) -> DayRange | None:
    """The range the KPI's "change against the previous period" compares with; None for
    "all_time", which has nothing before it.

    The rule:
    - "today", "yesterday" and "last_N_days" (rolling periods): the range of the same length
      that ends the day before the current one starts.
    - Calendar periods ("this_week", "this_month", "this_quarter", "this_year", and
      "last_12_months" as the 12-month window that moves a month at a time): the previous
      period of that kind up to the same number of elapsed days, clamped at that period's
      end. On 15 March "this_month" (1-15 March, 15 days) compares with 1-15 February; on
      31 March with 1-28 February (February has only 28 days); on 15 May "last_12_months"
      (1 June - 15 May) compares with the same number of days from 1 June a year earlier.

    So the previous range always ends before the current one starts and is never longer.
    """
    first, last = period_days(period, today)
    if first is None:
        return None
    length = (last - first).days + 1
    if period not in _CALENDAR:
        end = first - dt.timedelta(days=1)
        return end - dt.timedelta(days=length - 1), end
    previous_end = first - dt.timedelta(days=1)  # the last day of the previous period
    previous_start = _calendar_start(period, previous_end)
    return previous_start, min(previous_start + dt.timedelta(days=length - 1), previous_end)


def bucket_start(day: dt.date, bucket: str) -> dt.date:
    """The first day of the bucket holding `day`: itself, its ISO week's Monday, or the 1st."""
    if bucket == "day":
        return day
    if bucket == "week":
        return day - dt.timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown bucket {bucket!r}; use one of: {', '.join(BUCKETS)}")


def bucket_range(first: dt.date, last: dt.date, bucket: str) -> list[dt.date]:
    """The start of every bucket from the one holding `first` to the one holding `last`,
    ascending, empty buckets included. The first start may lie before `first` (a week
    bucket starts on Monday); every day of [first, last] falls in exactly one bucket."""
    start = bucket_start(first, bucket)
    end = bucket_start(last, bucket)
    starts: list[dt.date] = []
    while start <= end:
        starts.append(start)
        start = _next_bucket(start, bucket)
    return starts


def bucket_label(start: dt.date, bucket: str, *, with_year: bool = False) -> str:
    """A short human label for the bucket starting on `start`: "27 Mar", "W13" (ISO week
    number), "Mar"; `with_year` appends the (ISO, for weeks) year: "27 Mar 2026", "W13 2026"."""
    if bucket == "day":
        label = f"{start.day} {_MONTHS[start.month - 1]}"
        year = start.year
    elif bucket == "week":
        iso = start.isocalendar()
        label, year = f"W{iso.week:02d}", iso.year
    elif bucket == "month":
        label, year = _MONTHS[start.month - 1], start.year
    else:
        raise ValueError(f"unknown bucket {bucket!r}; use one of: {', '.join(BUCKETS)}")
    return f"{label} {year}" if with_year else label


def bucket_labels(starts: Sequence[dt.date], bucket: str) -> list[str]:
    """Labels for consecutive bucket starts; they carry the year when the buckets span more
    than one (ISO, for weeks) year, so no two labels of one chart are the same."""
    if bucket == "week":
        years = {start.isocalendar().year for start in starts}
    else:
        years = {start.year for start in starts}
    return [bucket_label(start, bucket, with_year=len(years) > 1) for start in starts]


def _check_period(period: str) -> None:
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; use one of: {', '.join(PERIODS)}")


def _calendar_start(period: str, day: dt.date) -> dt.date:
    """The first day of the calendar period of kind `period` that holds `day`."""
    if period == "this_week":
        return day - dt.timedelta(days=day.weekday())
    if period == "this_month":
        return day.replace(day=1)
    if period == "this_quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if period == "this_year":
        return day.replace(month=1, day=1)
    if period == "last_12_months":
        return _add_months(day.replace(day=1), -11)
    raise ValueError(f"{period!r} is not a calendar period")


def _add_months(first_of_month: dt.date, months: int) -> dt.date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _next_bucket(start: dt.date, bucket: str) -> dt.date:
    if bucket == "day":
        return start + dt.timedelta(days=1)
    if bucket == "week":
        return start + dt.timedelta(days=7)
    return _add_months(start, 1)
