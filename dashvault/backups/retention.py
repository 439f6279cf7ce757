"""Which backups to keep: pure date arithmetic, so a test can check it by hand.

Rules, in this order (a backup kept by several is reported under the first):
- "last 24 hours": every backup younger than `hours` hours;
- "daily": the newest backup of each of the last `days` calendar days (UTC, today included);
- "weekly": the newest of each of the last `weeks` ISO weeks (this week included);
- "monthly": the newest of each of the last `months` calendar months (this month included).
Everything else goes. So nothing older than the first day of the month `months - 1` months ago
survives: with 13 months, at most 13 months and a few weeks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rules:
    hours: int = 24
    days: int = 7
    weeks: int = 5
    months: int = 13


def keep(
    times: Iterable[dt.datetime], now: dt.datetime, rules: Rules = Rules()
) -> dict[dt.datetime, str]:
    """The backups (by time, timezone-aware) to keep, each with the rule that keeps it."""
    ordered = sorted(set(times), reverse=True)  # newest first
    kept: dict[dt.datetime, str] = {}
    for when in ordered:
        if now - when < dt.timedelta(hours=rules.hours):
            kept.setdefault(
                when, "last 24 hours" if rules.hours == 24 else f"last {rules.hours} hours"
            )
    today = now.astimezone(dt.UTC).date()
    _newest_per(
        ordered,
        kept,
        "daily",
        lambda d: d,
        {today - dt.timedelta(days=n) for n in range(rules.days)},
    )
    this_week = today - dt.timedelta(days=today.weekday())
    weeks = {_iso_week(this_week - dt.timedelta(weeks=n)) for n in range(rules.weeks)}
    _newest_per(ordered, kept, "weekly", _iso_week, weeks)
    months = {_month_back(today, n) for n in range(rules.months)}
    _newest_per(ordered, kept, "monthly", lambda d: (d.year, d.month), months)
    return kept


def _newest_per(
    ordered: list[dt.datetime],
    kept: dict[dt.datetime, str],
    rule: str,
    period_of: Callable[[dt.date], Hashable],
    periods: Collection[Hashable],
) -> None:
    seen: set[Hashable] = set()
    for when in ordered:  # newest first: the first of a period is its newest
        period = period_of(when.astimezone(dt.UTC).date())
        if period in periods and period not in seen:
            seen.add(period)
            kept.setdefault(when, rule)


def _iso_week(day: dt.date) -> tuple[int, int]:
    year, week, _ = day.isocalendar()
    return year, week


def _month_back(today: dt.date, months: int) -> tuple[int, int]:
    index = today.year * 12 + today.month - 1 - months
    return index // 12, index % 12 + 1
