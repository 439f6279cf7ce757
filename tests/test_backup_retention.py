"""Backup retention (issue 8): every backup of the last 24 hours, the newest of each day for 7
days, of each ISO week for 5 weeks, of each calendar month for 13 months; nothing else.

The expectations here are worked out by hand (the literal dicts) or by a second, deliberately
different algorithm (`reference`), never by calling the code under test. Days, weeks and months
are UTC calendar periods, "this" period included, as retention.py documents; the windows are
calendar windows (a day without backups is not made up for by an older day).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import time
import types
from pathlib import Path

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dashvault.backups import pruning, snapshot
from dashvault.backups.retention import Rules, keep

UTC = dt.UTC
DEFAULT = Rules()
H24, DAILY, WEEKLY, MONTHLY = "last 24 hours", "daily", "weekly", "monthly"


def at(text: str) -> dt.datetime:
    """'2026-03-02 10:00' as UTC; a text with its own offset keeps it."""
    when = dt.datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def check(backups: dict[str, str | None], now: str, rules: Rules = DEFAULT) -> None:
    """`backups` maps each backup time to the rule expected to keep it (None: deleted)."""
    expected = {at(when): rule for when, rule in backups.items() if rule}
    assert keep([at(when) for when in backups], at(now), rules) == expected


# --- 1. Hand-worked examples ----------------------------------------------------------------


def test_hand_worked_example_just_after_a_month_boundary():
    # now: Monday 2026-03-02 10:00 UTC, ISO week 2026-W10.
    # Days kept:   2026-02-24 .. 2026-03-02 (7, today included).
    # Weeks kept:  W10 (03-02..03-08), W09 (02-23..03-01), W08 (02-16..02-22),
    #              W07 (02-09..02-15), W06 (02-02..02-08).
    # Months kept: 2025-03 .. 2026-03 (13, this month included).
    check(
        {
            "2026-03-02 09:00": H24,  # 1 h old; also the newest of today, W10, March
            "2026-03-02 00:00": H24,
            "2026-03-01 23:59": H24,  # newest of 03-01 and of W09, but 24 h comes first
            "2026-03-01 10:01": H24,  # 23:59 old: still in the last 24 hours
            "2026-03-01 10:00": None,  # exactly 24:00 old: out; not the newest of anything
            # 02-28 23:30 UTC (01:30 on 03-01 in +02:00): days are UTC days, so this is the
            # newest of 02-28 (and of February).
            "2026-03-01T01:30:00+02:00": DAILY,
            "2026-02-28 23:00": None,
            "2026-02-26 12:00": DAILY,  # 02-25 and 02-27 have no backup
            "2026-02-24 23:59": DAILY,  # the 7th day
            "2026-02-24 00:00": None,
            "2026-02-23 23:59": None,  # 8th day; W09's newest is 03-01 23:59
            "2026-02-22 23:59": WEEKLY,  # Sunday: newest of W08
            "2026-02-16 00:00": None,
            "2026-02-15 12:00": WEEKLY,  # W07
            "2026-02-02 00:00": WEEKLY,  # Monday 00:00: the first instant of W06
            "2026-02-01 23:59": None,  # W05 (Jan 26 - Feb 1): too old; February's newest is 02-28
            "2026-01-31 23:59": MONTHLY,  # January, also W05
            "2026-01-26 00:00": None,
            "2025-12-31 18:00": MONTHLY,  # (ISO week 2026-W01)
            "2025-12-01 00:00": None,
            "2025-07-15 06:00": MONTHLY,  # months without backups are simply skipped
            "2025-07-15 00:00": None,
            "2025-04-01 00:00": MONTHLY,
            "2025-03-31 23:59": MONTHLY,  # 12 months back: the oldest month kept
            "2025-03-03 12:00": None,  # ISO 2025-W10: same week number as now, a year before
            "2025-03-01 00:00": None,
            "2025-02-28 23:59": None,  # 13 months back
            "2024-03-31 23:59": None,  # March, but of 2024
        },
        now="2026-03-02 10:00",
    )


def test_hand_worked_example_where_now_is_in_the_previous_iso_year():
    # now: Saturday 2027-01-02 12:00 UTC, which is in ISO week 2026-W53 (2026 starts on a
    # Thursday, so it has 53 ISO weeks: W53 = Mon 2026-12-28 .. Sun 2027-01-03).
    # Rules: 1 day, 3 weeks, 1 month, so that weekly does the work.
    # Days: 2027-01-02. Weeks: 2026-W53, W52 (12-21..12-27), W51 (12-14..12-20). Months: 2027-01.
    check(
        {
            "2027-01-02 11:00": H24,  # also the newest of today, of W53 and of January
            "2027-01-02 06:00": H24,
            "2027-01-01 12:00": None,  # exactly 24 h; not the newest of W53 or of January
            "2026-12-28 00:00": None,  # first instant of W53
            "2026-12-27 23:59": WEEKLY,  # last instant of W52
            "2026-12-21 00:00": None,
            "2026-12-20 23:59": WEEKLY,  # W51
            "2026-12-13 23:59": None,  # W50
            "2026-01-02 12:00": None,  # ISO 2026-W01
            "2025-12-31 23:59": None,  # ISO 2026-W01, calendar 2025
        },
        now="2027-01-02 12:00",
        rules=Rules(hours=24, days=1, weeks=3, months=1),
    )


def test_hand_worked_example_across_the_iso_year_boundary_with_default_rules():
    # now: Monday 2027-01-04 10:00 UTC, the first day of ISO week 2027-W01.
    # Days: 2026-12-29 .. 2027-01-04. Weeks: 2027-W01, 2026-W53 (12-28..01-03), W52, W51, W50
    # (12-07..12-13). Months: 2026-01 .. 2027-01.
    check(
        {
            "2027-01-04 00:00": H24,  # first instant of 2027-W01
            "2027-01-03 23:59": H24,  # last instant of 2026-W53
            "2027-01-03 10:00": None,  # exactly 24 h; 01-03's newest is 23:59
            "2027-01-01 00:00": DAILY,
            "2026-12-31 23:59": DAILY,  # also December's newest
            "2026-12-28 12:00": None,  # 7 days are 12-29..01-04; W53's newest is 01-03 23:59
            "2026-12-27 23:59": WEEKLY,  # W52
            "2026-12-14 00:00": WEEKLY,  # W51
            "2026-12-13 23:59": WEEKLY,  # W50
            "2026-12-06 23:59": None,  # W49: 6 weeks back
            "2026-11-30 00:00": MONTHLY,  # November (and W49)
            "2026-01-31 00:00": MONTHLY,  # 12 months back
            "2026-01-01 00:00": None,
            "2025-12-31 23:59": None,  # 13 months back (though in ISO year 2026)
        },
        now="2027-01-04 10:00",
    )


def test_exactly_24_hours_old_is_still_kept_as_the_newest_of_its_day():
    # Not "last 24 hours", but still 03-01's newest.
    check({"2026-03-01 10:00": DAILY, "2026-03-01 09:00": None}, now="2026-03-02 10:00")
    # One second younger: 24 h keeps it, and it is the day's newest, so 10:00 goes.
    check(
        {"2026-03-01 10:00:01": H24, "2026-03-01 10:00": None, "2026-03-01 09:00": None},
        now="2026-03-02 10:00",
    )


# --- 2. Fifteen months of backups every 6 hours ----------------------------------------------


def every_6_hours(start: str, now: str) -> list[dt.datetime]:
    times, when = [], at(start)
    while when <= at(now):
        times.append(when)
        when += dt.timedelta(hours=6)
    return times


def reference(times: list[dt.datetime], now: dt.datetime, rules: Rules) -> dict[dt.datetime, str]:
    """A second implementation: the newest per (kind, period) first, then window arithmetic on
    the periods (days between dates, Mondays for ISO weeks, month indexes)."""
    today = now.astimezone(UTC).date()
    monday = today - dt.timedelta(days=today.weekday())
    newest: dict[tuple[str, object], dt.datetime] = {}
    for when in times:
        day = when.astimezone(UTC).date()
        for period in (
            (DAILY, day),
            (WEEKLY, day - dt.timedelta(days=day.weekday())),
            (MONTHLY, day.year * 12 + day.month),
        ):
            if period not in newest or when > newest[period]:
                newest[period] = when

    def in_window(kind: str, key: object) -> bool:
        if kind == DAILY:
            assert isinstance(key, dt.date)
            return 0 <= (today - key).days < rules.days
        if kind == WEEKLY:
            assert isinstance(key, dt.date)
            return 0 <= (monday - key).days // 7 < rules.weeks
        assert isinstance(key, int)
        return 0 <= today.year * 12 + today.month - key < rules.months

    label = f"last {rules.hours} hours"
    result = {when: label for when in times if now - when < dt.timedelta(hours=rules.hours)}
    for kind in (DAILY, WEEKLY, MONTHLY):
        for (k, key), when in sorted(newest.items(), key=lambda item: item[1]):
            if k == kind and in_window(kind, key):
                result.setdefault(when, kind)
    return result


def scheduled(times: list[dt.datetime], rules: Rules) -> list[dt.datetime]:
    """What a scheduler leaves: after each new backup, prune with keep() a few minutes later."""
    kept: list[dt.datetime] = []
    for when in times:
        kept = list(keep([*kept, when], when + dt.timedelta(minutes=3), rules))
    return kept


def test_fifteen_months_every_6_hours_keeps_exactly_the_hand_worked_set():
    now = at("2026-03-02 10:00")
    times = every_6_hours("2024-12-01 00:00", "2026-03-02 10:00")  # last: 03-02 06:00
    assert len(times) == 456 * 4 + 2  # 2024-12-01 .. 2026-03-01 is 456 days
    expected = {
        at("2026-03-02 06:00"): H24,  # 24 h / 6 h = 4 backups
        at("2026-03-02 00:00"): H24,
        at("2026-03-01 18:00"): H24,
        at("2026-03-01 12:00"): H24,
        **{at(f"2026-02-{d} 18:00"): DAILY for d in (24, 25, 26, 27, 28)},  # + today, 03-01
        **{at(f"2026-02-{d} 18:00"): WEEKLY for d in ("08", 15, 22)},  # W06-W08 (+ W09, W10)
        **{  # + March and February 2026: 13 months
            at(f"{m} 18:00"): MONTHLY
            for m in (
                "2026-01-31",
                "2025-12-31",
                "2025-11-30",
                "2025-10-31",
                "2025-09-30",
                "2025-08-31",
                "2025-07-31",
                "2025-06-30",
                "2025-05-31",
                "2025-04-30",
                "2025-03-31",
            )
        },
    }
    assert len(expected) == 4 + 5 + 3 + 11
    assert keep(times, now) == expected
    assert reference(times, now, Rules()) == expected
    assert dict(keep(scheduled(times, Rules()), now)) == expected
    assert set(scheduled(times, Rules())) == set(expected)  # the last prune was at 06:03


@pytest.mark.parametrize(
    "now",
    [
        "2026-03-02 10:00",  # just after a month boundary
        "2027-01-02 12:00",  # ISO week 2026-W53 in calendar 2027
        "2027-01-04 03:00",  # first day of ISO 2027-W01
        "2024-03-01 05:59",  # leap year, month boundary, just before a backup
        "2026-12-31 23:59",
    ],
)
@pytest.mark.parametrize(
    "rules", [Rules(), Rules(hours=12, days=3, weeks=2, months=6)], ids=["default", "changed"]
)
def test_fifteen_months_every_6_hours_against_a_second_algorithm(now, rules):
    end = at(now)
    start = (end - dt.timedelta(days=457)).replace(hour=0, minute=0)  # 15 months
    times = every_6_hours(start.strftime("%Y-%m-%d %H:%M"), now)
    kept = keep(times, end, rules)
    assert kept == reference(times, end, rules)

    # The scheduler's way (prune after each backup) ends with the same set and rules.
    assert dict(keep(scheduled(times, rules), end, rules)) == kept

    # Nothing older than the first day of the month `months - 1` back; that month's newest is
    # kept (the history reaches back far enough).
    index = end.year * 12 + end.month - 1 - (rules.months - 1)
    first = dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
    assert min(kept) >= first
    assert min(kept) == max(t for t in times if (t.year, t.month) == (first.year, first.month))
    assert any(t < first for t in times)

    # Counts the rules imply: backups are 6 h apart.
    young = [t for t in kept if end - t < dt.timedelta(hours=rules.hours)]
    assert len(young) == rules.hours // 6
    assert all(kept[t] == f"last {rules.hours} hours" for t in young)
    today = end.date()
    per_day = {t.date() for t in kept if (today - t.date()).days < rules.days}
    assert len(per_day) == rules.days  # every one of the last days has its newest kept
    for day in per_day:
        assert max(t for t in times if t.date() == day) in kept
    months = {(t.year, t.month) for t in kept}
    assert len(months) == rules.months  # one per month at least, never more months
    weeks = {t.isocalendar()[:2] for t in kept}
    this_week = today.isocalendar()[:2]
    assert this_week in weeks


def test_changed_counts_hand_worked():
    # Rules(hours=12, days=3, weeks=2, months=6) on the 6-hourly history, now 2026-03-02 10:00:
    # 12 h: 06:00 and 00:00 (4 h, 10 h). Days 02-28..03-02. Weeks W10, W09 (both already
    # kept). Months 2025-10 .. 2026-03.
    times = every_6_hours("2024-12-01 00:00", "2026-03-02 10:00")
    assert keep(times, at("2026-03-02 10:00"), Rules(hours=12, days=3, weeks=2, months=6)) == {
        at("2026-03-02 06:00"): "last 12 hours",
        at("2026-03-02 00:00"): "last 12 hours",
        at("2026-03-01 18:00"): DAILY,  # also W09's newest
        at("2026-02-28 18:00"): DAILY,  # also February's newest
        at("2026-01-31 18:00"): MONTHLY,
        at("2025-12-31 18:00"): MONTHLY,
        at("2025-11-30 18:00"): MONTHLY,
        at("2025-10-31 18:00"): MONTHLY,
    }


def test_changed_counts_with_a_sparser_history():
    # Rules(hours=12, days=3, weeks=2, months=6), now Monday 2026-03-02 10:00.
    check(
        {
            "2026-03-01 22:01": "last 12 hours",  # 11:59 old
            "2026-03-01 22:00": None,  # 12:00 old, and 03-01's newest is 22:01
            "2026-02-28 12:00": DAILY,
            "2026-02-27 12:00": None,  # 4th day
            "2026-02-26 12:00": None,  # W09's newest is 03-01 22:01
            "2026-02-22 12:00": None,  # W08: 3rd week back; February's newest is 02-28
            "2026-01-15 12:00": MONTHLY,
            "2025-10-01 00:00": MONTHLY,  # 5 months back
            "2025-09-30 23:59": None,  # 6 months back
        },
        now="2026-03-02 10:00",
        rules=Rules(hours=12, days=3, weeks=2, months=6),
    )


stamps = st.datetimes(
    min_value=dt.datetime(2024, 11, 1), max_value=dt.datetime(2026, 3, 2, 10, 0)
).map(lambda naive: naive.replace(tzinfo=UTC))


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    times=st.lists(stamps, max_size=120),
    rules=st.builds(
        Rules,
        hours=st.integers(1, 72),
        days=st.integers(1, 20),
        weeks=st.integers(1, 10),
        months=st.integers(1, 20),
    ),
)
def test_any_history_matches_the_second_algorithm_and_the_scheduler(times, rules):
    now = at("2026-03-02 10:00")
    kept = keep(times, now, rules)
    assert kept == reference(times, now, rules)
    assert dict(keep(scheduled(sorted(times), rules), now, rules)) == kept


# --- 4. plan(), prune() and `backup list` on a folder ------------------------------------------

NOW = at("2026-03-02 10:00")
FOLDER = {  # created_at -> the rule expected from `backup list` (None: to prune)
    "2026-03-02 09:00": H24,
    "2026-03-01 10:00": None,  # exactly 24 h; 03-01 has a newer one
    "2026-03-01 23:00": H24,
    "2026-02-28 23:30": DAILY,
    "2026-03-01T01:10:00+02:00": None,  # 02-28 23:10 UTC: older than 02-28 23:30
    "2026-02-22 12:00": WEEKLY,
    "2026-02-17 12:00": None,
    "2026-01-31 23:59": MONTHLY,
    "2026-01-15 00:00": None,
    "2025-03-31 12:00": MONTHLY,
    "2025-02-28 12:00": None,  # 13 months back
    "2024-12-24 12:00": None,
}


def name_of(when: dt.datetime) -> str:
    return "dashvault-" + when.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def fake_backup(folder: Path, when: dt.datetime) -> tuple[Path, Path]:
    """The files snapshot.create() leaves: the encrypted payload, then its manifest."""
    name = name_of(when)
    payload = folder / f"{name}.sqlite3.gz.age"
    payload.write_bytes(b"age-encryption.org/v1 fake " + name.encode())
    manifest = folder / f"{name}.json"
    manifest.write_text(
        json.dumps(
            {
                "format": snapshot.FORMAT,
                "name": name,
                "created_at": when.isoformat(),
                "engine": "sqlite",
                "file": payload.name,
                "size": payload.stat().st_size,
                "sha256": hashlib.sha256(payload.read_bytes()).hexdigest(),
                "schema": {"accounts": "0001_initial"},
                "version": "test",
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    return payload, manifest


@pytest.fixture
def folder(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.BACKUP_KEEP_HOURS = 24
    settings.BACKUP_KEEP_DAILY = 7
    settings.BACKUP_KEEP_WEEKLY = 5
    settings.BACKUP_KEEP_MONTHLY = 13
    settings.BACKUP_DIR.mkdir()
    files = {at(when): fake_backup(settings.BACKUP_DIR, at(when)) for when in FOLDER}
    return settings.BACKUP_DIR, files


@pytest.fixture
def frozen(monkeypatch):
    """pruning's idea of now (for `backup list` and `backup prune`, which take none)."""

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return NOW.astimezone(tz)

    monkeypatch.setattr(pruning, "dt", types.SimpleNamespace(datetime=Frozen, UTC=UTC))


def test_plan_gives_each_backup_its_rule_oldest_first(folder):
    rows = pruning.plan(NOW)
    assert [(b.created_at, rule) for b, rule in rows] == sorted(
        (at(when), rule) for when, rule in FOLDER.items()
    )


def test_prune_deletes_exactly_the_files_of_unkept_backups(folder):
    directory, files = folder
    gone, _ = pruning.prune(NOW)
    doomed = {at(when) for when, rule in FOLDER.items() if rule is None}
    assert {b.created_at for b in gone} == doomed
    for when, (payload, manifest) in files.items():
        assert payload.exists() is (when not in doomed)
        assert manifest.exists() is (when not in doomed)
    assert len(list(directory.iterdir())) == 2 * (len(FOLDER) - len(doomed))
    assert pruning.prune(NOW) == ([], [])  # nothing more to do
    assert all(rule for _, rule in pruning.plan(NOW))


def test_prune_follows_the_settings(folder, settings):
    settings.BACKUP_KEEP_HOURS = 12
    settings.BACKUP_KEEP_DAILY = 3
    settings.BACKUP_KEEP_WEEKLY = 2
    settings.BACKUP_KEEP_MONTHLY = 6
    assert pruning.rules() == Rules(hours=12, days=3, weeks=2, months=6)
    assert {b.created_at: rule for b, rule in pruning.plan(NOW) if rule} == {
        at("2026-03-02 09:00"): "last 12 hours",
        at("2026-03-01 23:00"): "last 12 hours",  # 11 h
        at("2026-02-28 23:30"): DAILY,
        at("2026-01-31 23:59"): MONTHLY,
    }
    assert len(pruning.prune(NOW)[0]) == len(FOLDER) - 4


def test_prune_removes_old_leftovers_of_incomplete_backups_only(folder):
    directory, _ = folder
    old = time.time() - snapshot.LEFTOVER_AGE - 60
    orphan = directory / "dashvault-20260301T000000000000Z.sqlite3.gz.age"  # no manifest
    orphan.write_bytes(b"x")
    os.utime(orphan, (old, old))
    part = directory / "dashvault-20260302T093000000000Z.sqlite3.gz.age.part"  # being written
    part.write_bytes(b"x")
    unrelated = directory / "notes.txt"
    unrelated.write_text("mine")
    os.utime(unrelated, (old, old))
    pruning.prune(NOW)
    assert not orphan.exists()
    assert part.exists()
    assert unrelated.exists()


def test_a_backup_whose_manifest_cannot_be_read_is_left_for_the_operator(folder):
    directory, _ = folder
    old = time.time() - snapshot.LEFTOVER_AGE - 60
    data = directory / "dashvault-20250101T000000000000Z.sqlite3.gz.age"
    manifest = directory / "dashvault-20250101T000000000000Z.json"
    data.write_bytes(b"x")
    manifest.write_text("{not json")
    for path in (data, manifest):
        os.utime(path, (old, old))
    pruning.prune(NOW)
    assert data.exists() and manifest.exists()
    assert all(b.file != data.name for b in snapshot.backups())  # and never listed


def test_backup_list_shows_each_backups_rule(folder, frozen):
    out = io.StringIO()
    call_command("backup", "list", stdout=out)
    lines = out.getvalue().splitlines()
    row = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d UTC)  (\S+)  [\d,]+ bytes  kept: (.+)")
    shown = [row.fullmatch(line).groups() for line in lines]  # type: ignore[union-attr]
    assert shown == sorted(  # oldest first
        (
            at(when).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            f"{name_of(at(when))}.sqlite3.gz.age",
            rule or "no (to prune)",
        )
        for when, rule in FOLDER.items()
    )


def test_backup_prune_command_then_list(folder, frozen):
    out = io.StringIO()
    call_command("backup", "prune", "--dry-run", stdout=out)
    doomed = sum(rule is None for rule in FOLDER.values())
    assert out.getvalue().splitlines()[-1] == f"{doomed} backup(s) would be pruned."
    assert len(snapshot.backups()) == len(FOLDER)
    out = io.StringIO()
    call_command("backup", "prune", stdout=out)
    assert out.getvalue().splitlines()[-1] == f"{doomed} backup(s) pruned."
    out = io.StringIO()
    call_command("backup", "list", stdout=out)
    assert "no (to prune)" not in out.getvalue()
    assert len(out.getvalue().splitlines()) == len(FOLDER) - doomed
