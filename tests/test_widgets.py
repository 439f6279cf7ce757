"""Widget numbers against hand-computed expectations, from points stored with do_ingest.

The org is in Europe/Helsinki; "today" is Thursday 14 May 2026 unless a test says otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from dashvault.dashboards.models import Dashboard, Widget
from dashvault.dashboards.widgets import (
    DEFAULTS,
    KIND_KEYS,
    dashboard_data,
    validate_config,
    widget_data,
)
from dashvault.metrics import queries
from dashvault.metrics.ingest import PointIn, do_ingest
from dashvault.metrics.models import Metric
from dashvault.metrics.periods import BUCKETS, PERIODS, bucket_range, period_days

HELSINKI = ZoneInfo("Europe/Helsinki")
TODAY = dt.date(2026, 5, 14)
D = dt.date


def local(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=HELSINKI)


# (local time, value, dimension). Daily sums: 31 Dec 2025: 7; 10 Apr: 1000; 4 May: 150;
# 11 May: 210; 12 May: 320; 14 May: 5; 15 May (tomorrow, never in a period ending today): 999.
POINTS = [
    (local(2025, 12, 31), 7.0, "alice"),
    (local(2026, 4, 10), 1000.0, "carol"),
    (local(2026, 5, 4, 10), 100.0, "alice"),
    (local(2026, 5, 4, 11), 50.0, "bob"),
    (local(2026, 5, 11, 9), 200.0, "alice"),
    (local(2026, 5, 11, 12), 10.0, ""),
    (local(2026, 5, 12, 8), 300.0, "bob"),
    (local(2026, 5, 12, 18), 20.0, "bob"),
    (local(2026, 5, 14, 7), 5.0, "alice"),
    (local(2026, 5, 15, 10), 999.0, ""),
]


@pytest.fixture
def org(org_a):
    org_a.time_zone = "Europe/Helsinki"
    org_a.save()
    return org_a


@pytest.fixture
def revenue(org):
    metric = Metric.objects.create(
        org=org, key="revenue", name="Revenue", unit="currency", currency="EUR"
    )
    do_ingest(org, [PointIn("revenue", ts, value, dim) for ts, value, dim in POINTS])
    return metric


@pytest.fixture
def dashboard(org):
    return Dashboard.objects.create(org=org, title="Sales")


def make_widget(dashboard, kind, metric=None, title="", **config):
    return Widget.objects.create(
        org=dashboard.org,
        dashboard=dashboard,
        kind=kind,
        title=title,
        metric=metric,
        config=validate_config(kind, config, has_metric=metric is not None),
    )


def kpi(dashboard, metric, today=TODAY, **config):
    return widget_data(make_widget(dashboard, "kpi", metric, **config), today)


# -- aggregations and periods ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aggregation", "value", "previous"),
    [
        ("sum", 685.0, 1000.0),
        ("count", 7.0, 1.0),
        ("average", 685.0 / 7, 1000.0),
        ("min", 5.0, 1000.0),
        ("max", 300.0, 1000.0),
        ("latest", 5.0, 1000.0),  # 14 May 07:00 is the newest point of May so far
    ],
)
def test_every_aggregation_of_this_month(dashboard, revenue, aggregation, value, previous):
    data = kpi(dashboard, revenue, aggregation=aggregation)
    assert data["value"] == pytest.approx(value)
    assert data["previous"] == pytest.approx(previous)
    assert queries.aggregate_value(revenue, D(2026, 5, 1), TODAY, aggregation) == pytest.approx(
        value
    )


@pytest.mark.parametrize(
    ("period", "value", "previous", "change_pct"),
    [
        ("today", 5.0, 0.0, None),
        ("yesterday", 0.0, 320.0, -100.0),
        ("this_week", 535.0, 150.0, (535 - 150) / 150 * 100),
        ("this_month", 685.0, 1000.0, -31.5),
        ("this_quarter", 1685.0, 0.0, None),
        ("this_year", 1685.0, 0.0, None),
        ("last_7_days", 535.0, 150.0, (535 - 150) / 150 * 100),
        ("last_30_days", 685.0, 1000.0, -31.5),
        ("last_90_days", 1685.0, 7.0, (1685 - 7) / 7 * 100),
        ("last_12_months", 1692.0, 0.0, None),
        ("all_time", 1692.0, None, None),
    ],
)
def test_every_period_sums_its_days_and_compares_with_the_previous(
    dashboard, revenue, period, value, previous, change_pct
):
    data = kpi(dashboard, revenue, period=period)
    assert data["value"] == pytest.approx(value)
    assert data["previous"] == (pytest.approx(previous) if previous is not None else None)
    assert data["change_pct"] == (pytest.approx(change_pct) if change_pct is not None else None)
    assert data["period"] == PERIODS[period]


def test_aggregations_without_data_are_zero_for_sums_and_counts_and_empty_otherwise(revenue):
    empty = (D(2026, 5, 5), D(2026, 5, 10))
    assert queries.aggregate_value(revenue, *empty, "sum") == 0.0
    assert queries.aggregate_value(revenue, *empty, "count") == 0.0
    for aggregation in ("average", "min", "max", "latest"):
        assert queries.aggregate_value(revenue, *empty, aggregation) is None


def test_the_metrics_own_aggregation_applies_unless_overridden(org, dashboard):
    metric = Metric.objects.create(
        org=org, key="response", name="Response time", unit="duration", aggregation="average"
    )
    do_ingest(org, [PointIn("response", local(2026, 5, 14, h), v) for h, v in ((8, 100), (9, 300))])
    assert kpi(dashboard, metric, period="today")["value"] == 200.0
    assert kpi(dashboard, metric, period="today")["display"] == "3m 20s"
    assert kpi(dashboard, metric, period="today", aggregation="max")["value"] == 300.0


# -- KPI change and target ---------------------------------------------------------------------


def test_kpi_shows_display_target_and_progress(dashboard, revenue):
    data = kpi(dashboard, revenue, title="May revenue", target=1000)
    assert data == {
        "kind": "kpi",
        "title": "May revenue",
        "value": 685.0,
        "display": "€685",
        "previous": 1000.0,
        "change_pct": -31.5,
        "target": 1000.0,
        "progress_pct": 68.5,
        "period": "This month",
    }


def test_kpi_progress_needs_a_positive_target_and_a_value(dashboard, revenue):
    assert kpi(dashboard, revenue, target=0)["progress_pct"] is None
    assert kpi(dashboard, revenue)["progress_pct"] is None
    assert kpi(dashboard, revenue, target=500)["progress_pct"] == pytest.approx(137.0)
    no_value = kpi(dashboard, revenue, target=500, aggregation="average", period="yesterday")
    assert no_value["value"] is None and no_value["progress_pct"] is None
    assert no_value["display"] == "–"


def test_kpi_change_against_a_negative_previous_value_keeps_its_sign(org, dashboard):
    metric = Metric.objects.create(org=org, key="profit", name="Profit")
    do_ingest(
        org,
        [
            PointIn("profit", local(2026, 4, 3), -100.0),
            PointIn("profit", local(2026, 5, 3), 50.0),
        ],
    )
    data = kpi(dashboard, metric)
    assert (data["value"], data["previous"], data["change_pct"]) == (50.0, -100.0, 150.0)


def test_the_title_defaults_to_the_metric_name(dashboard, revenue):
    assert kpi(dashboard, revenue)["title"] == "Revenue"


# -- charts and buckets ------------------------------------------------------------------------


def chart(dashboard, metric, kind="line", today=TODAY, **config):
    return widget_data(make_widget(dashboard, kind, metric, **config), today)


def test_a_daily_line_chart_of_this_month_has_every_day(dashboard, revenue):
    data = chart(dashboard, revenue)
    assert data["labels"] == [f"{day} May" for day in range(1, 15)]
    values = [0.0] * 14
    values[3], values[10], values[11], values[13] = 150.0, 210.0, 320.0, 5.0
    assert data["series"] == [{"name": "Revenue", "values": values}]
    assert (data["kind"], data["unit"], data["currency"]) == ("line", "currency", "EUR")


@pytest.mark.parametrize(
    ("aggregation", "values"),
    [
        ("sum", [0.0, 150.0, 535.0]),
        ("count", [0.0, 2.0, 5.0]),
        ("average", [None, 75.0, 107.0]),
        ("min", [None, 50.0, 5.0]),
        ("max", [None, 100.0, 300.0]),
        ("latest", [None, 50.0, 5.0]),  # bob's 11:00 point is the newest of 4 May
    ],
)
def test_weekly_bars_of_this_month_for_every_aggregation(dashboard, revenue, aggregation, values):
    data = chart(dashboard, revenue, "bar", bucket="week", aggregation=aggregation)
    # May 2026 starts on a Friday: the first bucket is the ISO week from Monday 27 April.
    assert data["labels"] == ["W18", "W19", "W20"]
    assert data["series"] == [{"name": "Revenue", "values": values}]


def test_monthly_line_of_the_last_12_months_spans_two_years(dashboard, revenue):
    data = chart(dashboard, revenue, period="last_12_months", bucket="month")
    assert data["labels"] == [
        "Jun 2025", "Jul 2025", "Aug 2025", "Sep 2025", "Oct 2025", "Nov 2025",
        "Dec 2025", "Jan 2026", "Feb 2026", "Mar 2026", "Apr 2026", "May 2026",
    ]  # fmt: skip
    assert data["series"][0]["values"] == [0.0] * 6 + [7.0, 0.0, 0.0, 0.0, 1000.0, 685.0]


def test_an_all_time_chart_starts_at_the_first_data(dashboard, revenue):
    data = chart(dashboard, revenue, period="all_time", bucket="month")
    assert data["labels"] == [
        "Dec 2025",
        "Jan 2026",
        "Feb 2026",
        "Mar 2026",
        "Apr 2026",
        "May 2026",
    ]
    assert data["series"][0]["values"] == [7.0, 0.0, 0.0, 0.0, 1000.0, 685.0]


def test_an_all_time_chart_without_data_has_no_buckets(org, dashboard):
    metric = Metric.objects.create(org=org, key="empty", name="Empty")
    data = chart(dashboard, metric, period="all_time", by_dimension=True)
    assert (data["labels"], data["series"]) == ([], [])
    data = chart(dashboard, metric, period="all_time")
    assert (data["labels"], data["series"]) == ([], [{"name": "Empty", "values": []}])


@pytest.mark.parametrize("period", sorted(PERIODS))
@pytest.mark.parametrize("bucket", sorted(BUCKETS))
def test_buckets_add_up_to_the_period(revenue, period, bucket):
    first, last = period_days(period, TODAY)
    combines = {
        "sum": sum,
        "count": sum,
        "max": lambda values: max(values, default=None),
        "min": lambda values: min(values, default=None),
    }
    for aggregation, combine in combines.items():
        starts, named = queries.series(revenue, first, last, bucket, aggregation, False)
        values = named["Revenue"]
        expected = queries.aggregate_value(revenue, first, last, aggregation)
        if first is not None:
            assert starts == bucket_range(first, last, bucket)
        present = [v for v in values if v is not None]
        assert combine(present) == (None if expected is None else pytest.approx(expected))
        by_dim = queries.series(revenue, first, last, bucket, aggregation, True)[1]
        dim_values = [v for vs in by_dim.values() for v in vs if v is not None]
        if dim_values:
            assert combine(dim_values) == pytest.approx(expected)


def test_per_dimension_series_are_ordered_largest_first(dashboard, revenue):
    data = chart(dashboard, revenue, bucket="week", by_dimension=True)
    assert data["series"] == [
        {"name": "bob", "values": [0.0, 50.0, 320.0]},
        {"name": "alice", "values": [0.0, 100.0, 205.0]},
        {"name": "(none)", "values": [0.0, 0.0, 10.0]},
    ]


def test_per_dimension_series_past_the_limit_merge_into_other(revenue):
    _, named = queries.series(revenue, D(2026, 5, 1), TODAY, "week", "sum", True, max_series=2)
    assert named == {"bob": [0.0, 50.0, 320.0], "(other)": [0.0, 100.0, 215.0]}
    _, named = queries.series(revenue, D(2026, 5, 1), TODAY, "week", "max", True, max_series=2)
    assert named == {"bob": [None, 50.0, 300.0], "(other)": [None, 100.0, 200.0]}


# -- leaderboard -------------------------------------------------------------------------------


def test_leaderboard_ranks_dimensions_and_leaves_out_points_without_one(dashboard, revenue):
    data = widget_data(make_widget(dashboard, "leaderboard", revenue), TODAY)
    assert data == {
        "kind": "leaderboard",
        "title": "Revenue",
        "rows": [
            {"dimension": "bob", "value": 370.0, "display": "€370"},
            {"dimension": "alice", "value": 305.0, "display": "€305"},
        ],
    }


def test_leaderboard_keeps_the_top_n(dashboard, revenue):
    data = widget_data(
        make_widget(dashboard, "leaderboard", revenue, period="all_time", top_n=2), TODAY
    )
    assert [(r["dimension"], r["value"]) for r in data["rows"]] == [
        ("carol", 1000.0),
        ("bob", 370.0),
    ]


@pytest.mark.parametrize(
    ("aggregation", "rows"),
    [
        ("count", [("alice", 3.0), ("bob", 3.0), ("carol", 1.0)]),  # ties by name
        ("average", [("carol", 1000.0), ("bob", 370 / 3), ("alice", 305 / 3)]),
        ("min", [("carol", 1000.0), ("bob", 20.0), ("alice", 5.0)]),
        ("latest", [("carol", 1000.0), ("bob", 20.0), ("alice", 5.0)]),
    ],
)
def test_leaderboard_for_other_aggregations(revenue, aggregation, rows):
    first, last = D(2026, 4, 1), TODAY
    assert queries.leaderboard(revenue, first, last, aggregation, 10) == [
        (name, pytest.approx(value)) for name, value in rows
    ]


def test_a_leaderboard_of_zero_rows_is_empty(revenue):
    assert queries.leaderboard(revenue, D(2026, 5, 1), TODAY, "sum", 0) == []


# -- gauge and text ----------------------------------------------------------------------------


def test_gauge_runs_to_its_target_or_to_the_value(dashboard, revenue):
    data = widget_data(make_widget(dashboard, "gauge", revenue, target=1000), TODAY)
    assert data == {
        "kind": "gauge",
        "title": "Revenue",
        "value": 685.0,
        "display": "€685",
        "target": 1000.0,
        "max": 1000.0,
    }
    assert widget_data(make_widget(dashboard, "gauge", revenue), TODAY)["max"] == 685.0
    empty = widget_data(make_widget(dashboard, "gauge", revenue, period="yesterday"), TODAY)
    assert (empty["value"], empty["max"]) == (0.0, 1.0)
    zero_target = widget_data(make_widget(dashboard, "gauge", revenue, target=0), TODAY)
    assert zero_target["max"] == 1.0


def test_text_widget_shows_its_text(dashboard):
    widget = make_widget(dashboard, "text", title="Note", text="Quarter ends Friday")
    assert widget_data(widget, TODAY) == {
        "kind": "text",
        "title": "Note",
        "text": "Quarter ends Friday",
    }


# -- time zones and DST ------------------------------------------------------------------------


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


SPRING = [  # Helsinki moves from UTC+2 to UTC+3 at 01:00 UTC on 29 March 2026
    (utc(2026, 3, 28, 21, 59), 1.0),  # 23:59 on the 28th
    (utc(2026, 3, 28, 22, 0), 2.0),  # 00:00 on the 29th
    (utc(2026, 3, 29, 20, 59), 4.0),  # 23:59 on the 29th (a 23-hour day)
    (utc(2026, 3, 29, 21, 0), 8.0),  # 00:00 on the 30th
]
AUTUMN = [  # and back to UTC+2 at 01:00 UTC on 25 October 2026
    (utc(2026, 10, 24, 20, 59), 1.0),  # 23:59 on the 24th
    (utc(2026, 10, 24, 21, 0), 2.0),  # 00:00 on the 25th
    (utc(2026, 10, 25, 21, 59), 4.0),  # 23:59 on the 25th (a 25-hour day)
    (utc(2026, 10, 25, 22, 0), 8.0),  # 00:00 on the 26th
]


@pytest.mark.parametrize(
    ("points", "today", "labels", "values"),
    [
        (SPRING, D(2026, 3, 30), ["28 Mar", "29 Mar", "30 Mar"], [1.0, 6.0, 8.0]),
        (AUTUMN, D(2026, 10, 26), ["24 Oct", "25 Oct", "26 Oct"], [1.0, 6.0, 8.0]),
    ],
)
def test_days_follow_helsinki_across_dst_changes(org, dashboard, points, today, labels, values):
    Metric.objects.create(org=org, key="signups", name="Signups")
    do_ingest(org, [PointIn("signups", ts, value) for ts, value in points])
    metric = Metric.objects.get(org=org, key="signups")
    data = chart(dashboard, metric, period="last_7_days", today=today)
    assert data["labels"][-3:] == labels
    assert data["series"][0]["values"] == [0.0] * 4 + values


def test_today_is_the_orgs_local_day_when_the_dashboard_loads(org, dashboard):
    metric = Metric.objects.create(org=org, key="signups", name="Signups")
    do_ingest(org, [PointIn("signups", ts, value) for ts, value in SPRING])
    widget = make_widget(dashboard, "kpi", metric, period="today")
    # 20:30 UTC on 29 March is 23:30 in Helsinki; 21:30 UTC is already 00:30 on the 30th.
    late = dashboard_data(dashboard, now=utc(2026, 3, 29, 20, 30))["widgets"][str(widget.pk)]
    after = dashboard_data(dashboard, now=utc(2026, 3, 29, 21, 30))["widgets"][str(widget.pk)]
    assert (late["value"], late["previous"]) == (6.0, 1.0)
    assert (after["value"], after["previous"]) == (8.0, 6.0)


def test_a_utc_org_cuts_days_at_utc_midnight(org_b):
    metric = Metric.objects.create(org=org_b, key="signups", name="Signups")
    do_ingest(org_b, [PointIn("signups", ts, value) for ts, value in SPRING])
    starts, named = queries.series(metric, D(2026, 3, 28), D(2026, 3, 30), "day", "sum", False)
    assert named["Signups"] == [3.0, 12.0, 0.0]


# -- organization scoping ----------------------------------------------------------------------


def test_numbers_never_include_another_orgs_metric(org, org_b, dashboard, revenue):
    Metric.objects.create(org=org_b, key="revenue", name="Revenue B")
    do_ingest(org_b, [PointIn("revenue", local(2026, 5, 12), 1e6, "bob")])
    assert kpi(dashboard, revenue)["value"] == 685.0
    assert queries.leaderboard(revenue, D(2026, 5, 1), TODAY, "sum", 5)[0] == ("bob", 370.0)


def test_a_widget_pointing_at_another_orgs_metric_shows_nothing(org_b, dashboard):
    foreign = Metric.objects.create(org=org_b, key="secret", name="Secret B")
    do_ingest(org_b, [PointIn("secret", local(2026, 5, 12), 42.0, "x")])
    # Saved around the actions that check the org: the widget must still not read it.
    kinds = ("kpi", "line", "leaderboard", "gauge")
    widgets = [make_widget(dashboard, kind, foreign) for kind in kinds]
    data = dashboard_data(dashboard, now=utc(2026, 5, 14, 9))["widgets"]
    kpi_data, line, board, gauge = (data[str(w.pk)] for w in widgets)
    assert kpi_data["value"] is None and kpi_data["title"] == ""
    assert (line["labels"], line["series"]) == ([], [])
    assert board["rows"] == []
    assert gauge["value"] is None
    payloads = json.dumps(list(data.values()))  # the keys are UUIDs: look at the values only
    assert "42" not in payloads and "Secret" not in payloads


# -- dashboard_data: shape and query count ------------------------------------------------------


def six_widgets(dashboard, metric):
    return [
        make_widget(dashboard, "kpi", metric, target=1000),
        make_widget(dashboard, "line", metric, bucket="week"),
        make_widget(dashboard, "bar", metric, by_dimension=True, period="last_12_months"),
        make_widget(dashboard, "leaderboard", metric, top_n=3),
        make_widget(dashboard, "gauge", metric, target=2000),
        make_widget(dashboard, "text", text="Hello"),
    ]


def test_dashboard_data_has_the_agreed_shape(dashboard, revenue):
    widgets = six_widgets(dashboard, revenue)
    data = dashboard_data(dashboard, now=utc(2026, 5, 14, 9, 30))
    assert json.loads(json.dumps(data)) == data
    assert data["dashboard"] == str(dashboard.pk)
    assert data["generated_at"] == "2026-05-14T09:30:00+00:00"
    assert list(data["widgets"]) == [str(w.pk) for w in widgets]
    shapes = {
        "kpi": {"value", "display", "previous", "change_pct", "target", "progress_pct", "period"},
        "line": {"labels", "series", "unit", "currency"},
        "bar": {"labels", "series", "unit", "currency"},
        "leaderboard": {"rows"},
        "gauge": {"value", "display", "target", "max"},
        "text": {"text"},
    }
    for widget in widgets:
        payload = data["widgets"][str(widget.pk)]
        assert set(payload) == {"kind", "title"} | shapes[widget.kind]
        assert payload["kind"] == widget.kind


def test_dashboard_data_runs_a_constant_number_of_queries(
    org, dashboard, revenue, django_assert_num_queries
):
    six_widgets(dashboard, revenue)
    now = utc(2026, 5, 14, 9)
    # organization + widgets, then kpi 2, line 1, bar 1, leaderboard 1, gauge 1, text 0
    with django_assert_num_queries(8):
        dashboard_data(dashboard, now=now)
    # A year of data for 20 dimensions changes nothing but the numbers.
    start = local(2025, 5, 15)
    do_ingest(
        org,
        [
            PointIn("revenue", start + dt.timedelta(hours=7 * i), 1.0, f"rep{i % 20}")
            for i in range(1250)
        ],
    )
    with django_assert_num_queries(8):
        data = dashboard_data(dashboard, now=now)
    bar = next(p for p in data["widgets"].values() if p["kind"] == "bar")
    assert len(bar["series"]) == 10  # nine dimensions and "(other)"


def test_a_stale_stored_option_falls_back_to_its_default(dashboard, revenue):
    widget = Widget.objects.create(
        org=dashboard.org,
        dashboard=dashboard,
        kind="kpi",
        metric=revenue,
        config={"period": "fortnight", "target": "lots", "bucket": "day"},
    )
    data = widget_data(widget, TODAY)
    assert (data["period"], data["value"], data["target"]) == ("This month", 685.0, None)


# -- validate_config ---------------------------------------------------------------------------


def test_defaults_fill_each_kinds_options():
    assert validate_config("line", {}, has_metric=True) == {
        "period": "this_month",
        "bucket": "day",
        "by_dimension": False,
        "aggregation": None,
    }
    assert validate_config("kpi", {"target": 100, "period": "today"}, has_metric=True) == {
        "period": "today",
        "aggregation": None,
        "target": 100.0,
    }
    assert validate_config("leaderboard", {"top_n": 50}, has_metric=True)["top_n"] == 50
    assert validate_config("text", {}, has_metric=False) == {"text": ""}
    for kind, keys in KIND_KEYS.items():
        cleaned = validate_config(kind, {}, has_metric=kind != "text")
        assert cleaned == {key: DEFAULTS[key] for key in keys}


@pytest.mark.parametrize(
    ("kind", "config", "has_metric", "field", "message"),
    [
        ("pie", {}, True, "kind", "kind must be one of: kpi, line"),
        ("kpi", ["period"], True, "config", "config must be a JSON object"),
        ("kpi", {"period": "fortnight"}, True, "period", "period must be one of: today"),
        ("kpi", {"period": 7}, True, "period", "period must be one of"),
        ("kpi", {"bucket": "day"}, True, "bucket", "bucket is not an option of a KPI widget"),
        ("kpi", {"colour": "red"}, True, "colour", "colour is not an option of a KPI"),
        ("text", {"period": "today"}, False, "period", "period is not an option of a text"),
        ("line", {"bucket": "hour"}, True, "bucket", "bucket must be one of: day, week, month"),
        ("bar", {"by_dimension": 1}, True, "by_dimension", "by_dimension must be true or false"),
        ("kpi", {"target": -1}, True, "target", "target must be a finite number of 0 or more"),
        ("kpi", {"target": "100"}, True, "target", "target must be a number or empty"),
        ("gauge", {"target": True}, True, "target", "target must be a number or empty"),
        ("gauge", {"target": float("inf")}, True, "target", "target must be a finite number"),
        ("leaderboard", {"top_n": 0}, True, "top_n", "top_n must be a whole number from 1 to 50"),
        ("leaderboard", {"top_n": 51}, True, "top_n", "top_n must be a whole number"),
        ("leaderboard", {"top_n": 5.0}, True, "top_n", "top_n must be a whole number"),
        ("leaderboard", {"top_n": True}, True, "top_n", "top_n must be a whole number"),
        ("kpi", {"aggregation": "median"}, True, "aggregation", "aggregation must be empty"),
        ("text", {"text": "x" * 2001}, False, "text", "text must be at most 2000 characters"),
        ("text", {"text": 5}, False, "text", "text must be a string"),
        ("text", {}, True, "metric", "metric: a text widget shows no metric"),
        ("kpi", {}, False, "metric", "metric: a KPI widget needs a metric"),
        ("line", {}, False, "metric", "metric: a line chart widget needs a metric"),
    ],
)
def test_validate_config_refuses_bad_input_naming_the_field(
    kind, config, has_metric, field, message
):
    with pytest.raises(ValidationError) as error:
        validate_config(kind, config, has_metric=has_metric)
    assert list(error.value.message_dict) == [field]
    assert message in error.value.message_dict[field][0]


def test_validate_config_reports_every_problem_at_once():
    with pytest.raises(ValidationError) as error:
        validate_config("kpi", {"period": "x", "target": -5, "top_n": 3}, has_metric=False)
    assert set(error.value.message_dict) == {"period", "target", "top_n", "metric"}
