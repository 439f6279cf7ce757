"""Read path: a dashboard's widget data over 1 million and over 10 million raw points.

Issue 3: widgets read daily rollups, never raw points, so their cost must not grow with the
raw volume: per widget, 10M/1M time ratio at most 1.2 and p95 at most 20 ms.

How: two throwaway data directories, each with a database made by `dashvault migrate`. Each
gets the same organization shape (UTC), one metric and one dashboard with a KPI (two
aggregations), a line by day over a year (one series, and one per rep), a bar by month, a
leaderboard and a gauge. The metric's raw points (a year, eight reps) are bulk-inserted with
executemany; rollups are computed from them in SQL exactly as `rebuild_rollups` would for a UTC
organization (checked against `rebuild_rollups` itself on the smaller database). Then
`widget_data` runs for every widget on both databases, interleaved round by round (each
database on its own open connection), so machine noise hits both sizes alike.

The ratio is taken on medians (the robust measure of cost); p95 is held to the absolute
target on both sizes. It also checks that no widget query reads raw points or uses Django's
date truncation functions (a Python call per row on SQLite).

    .venv/bin/python bench/read_path.py            # 1M and 10M points (a few minutes)
    .venv/bin/python bench/read_path.py --quick    # 100k and 1M, fewer rounds (trial runs)
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c

TARGET_RATIO = 1.2
TARGET_P95 = 0.020  # seconds

# (label, kind, options): what a sales dashboard shows, each option validated by the product.
WIDGETS: list[tuple[str, str, dict[str, Any]]] = [
    ("kpi sum, this month vs previous", "kpi", {"period": "this_month", "target": 250_000.0}),
    ("kpi latest, last 30 days", "kpi", {"period": "last_30_days", "aggregation": "latest"}),
    ("line by day, last 12 months", "line", {"period": "last_12_months", "bucket": "day"}),
    (
        "line by day per rep, 12 months",
        "line",
        {"period": "last_12_months", "bucket": "day", "by_dimension": True},
    ),
    ("bar by month, last 12 months", "bar", {"period": "last_12_months", "bucket": "month"}),
    ("leaderboard top 5, 12 months", "leaderboard", {"period": "last_12_months", "top_n": 5}),
    ("gauge, this quarter", "gauge", {"period": "this_quarter", "target": 1_000_000.0}),
]
WHOLE = "dashboard_data (all widgets)"
# SQL that must never run on the read path: raw points, or ORM date truncation on SQLite.
FORBIDDEN_SQL = (
    c.POINT_TABLE,
    "django_date_trunc",
    "django_datetime_trunc",
    "django_datetime_cast",
)


@dataclass
class Dataset:
    label: str
    points: int
    data_dir: Path
    conn: Any = None
    org: Any = None
    dashboard: Any = None
    widgets: list[Any] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)
    bad_sql: list[str] = field(default_factory=list)
    stored: int = 0
    rollups: int = 0


def label_of(points: int) -> str:
    return f"{points // 1_000_000}M" if points % 1_000_000 == 0 else f"{points // 1000}k"


def use(dataset: Dataset) -> None:
    """Make `dataset`'s open connection Django's default one (both stay open)."""
    from django.db import connections

    connections["default"] = dataset.conn


def open_connection(db_path: Path) -> Any:
    from django.db import connections
    from django.db.utils import load_backend

    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    settings_dict["NAME"] = str(db_path)
    return load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, "default")


def create_rows(dataset: Dataset) -> None:
    from dashvault.dashboards.models import Dashboard, Widget
    from dashvault.dashboards.widgets import validate_config
    from dashvault.metrics.models import Metric
    from dashvault.orgs.models import Organization

    use(dataset)
    org = Organization.objects.create(name=f"Bench {dataset.label}", time_zone="UTC")
    metric = Metric.objects.create(
        org=org, key="revenue", name="Revenue", unit="currency", currency="EUR", aggregation="sum"
    )
    dashboard = Dashboard.objects.create(org=org, title="Sales")
    for index, (label, kind, options) in enumerate(WIDGETS):
        Widget.objects.create(
            org=org,
            dashboard=dashboard,
            kind=kind,
            title=label,
            metric=metric,
            config=validate_config(kind, options, has_metric=True),
            x=(index % 3) * 4,
            y=(index // 3) * 2,
        )
    dataset.org, dataset.dashboard = org, dashboard
    dataset.conn.close()  # the bulk load below uses its own connection


def load_points(dataset: Dataset, last_day: dt.date) -> None:
    from dashvault.metrics.models import Metric

    use(dataset)
    metric = Metric.objects.get(org=dataset.org, key="revenue")
    dataset.conn.close()
    db = dataset.data_dir / "dashvault.sqlite3"
    org_hex, metric_hex = dataset.org.pk.hex, metric.pk.hex
    started = time.perf_counter()
    dataset.stored = c.bulk_insert_points(
        db, c.year_of_points(org_hex, metric_hex, dataset.points, last_day, seed=7)
    )
    loaded = time.perf_counter()
    dataset.rollups = c.build_rollups_utc(db, org_hex, metric_hex)
    print(
        f"{dataset.label}: {dataset.stored:,} raw points inserted in {loaded - started:.1f} s, "
        f"{dataset.rollups:,} rollups built in SQL in {time.perf_counter() - loaded:.1f} s",
        flush=True,
    )


def rollups_match_product(dataset: Dataset) -> list[str]:
    """Rebuild the SQL-built rollups with dashvault's own rebuild_rollups: both must agree."""
    from dashvault.metrics.ingest import rebuild_rollups

    db = dataset.data_dir / "dashvault.sqlite3"
    built = c.rollup_snapshot(db, dataset.org.pk.hex)
    use(dataset)
    started = time.perf_counter()
    rebuild_rollups(dataset.org)
    dataset.conn.close()
    print(
        f"{dataset.label}: rebuild_rollups took {time.perf_counter() - started:.1f} s", flush=True
    )
    return c.snapshot_differences(built, c.rollup_snapshot(db, dataset.org.pk.hex))


def load_widgets(dataset: Dataset) -> None:
    from dashvault.dashboards.models import Widget

    use(dataset)
    dataset.widgets = list(
        Widget.objects.filter(org=dataset.org, dashboard=dataset.dashboard)
        .select_related("metric")
        .order_by("y", "x")
    )
    dataset.times = {name: [] for name in [*(w.title for w in dataset.widgets), WHOLE]}


def inspect_queries(dataset: Dataset, today: dt.date) -> None:
    """Run each widget once with SQL captured: count queries, flag forbidden SQL."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from dashvault.dashboards.widgets import widget_data

    use(dataset)
    for widget in dataset.widgets:
        with CaptureQueriesContext(connection) as captured:
            widget_data(widget, today)
        dataset.queries[widget.title] = len(captured.captured_queries)
        for query in captured.captured_queries:
            if any(word in query["sql"] for word in FORBIDDEN_SQL):
                dataset.bad_sql.append(f"{widget.title}: {query['sql'][:200]}")


def one_round(dataset: Dataset, today: dt.date, now: dt.datetime, record: bool) -> None:
    from dashvault.dashboards.widgets import dashboard_data, widget_data

    use(dataset)
    clock = time.perf_counter
    for widget in dataset.widgets:
        started = clock()
        widget_data(widget, today)
        elapsed = clock() - started
        if record:
            dataset.times[widget.title].append(elapsed)
    started = clock()
    payload = dashboard_data(dataset.dashboard, now=now)
    elapsed = clock() - started
    if record:
        dataset.times[WHOLE].append(elapsed)
    assert len(payload["widgets"]) == len(WIDGETS)  # noqa: S101  (a broken run must not pass)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100k vs 1M points, 60 rounds")
    parser.add_argument("--small", type=int, help="raw points of the small metric (1,000,000)")
    parser.add_argument("--big", type=int, help="raw points of the big metric (10,000,000)")
    parser.add_argument("--rounds", type=int, help="timed rounds per widget and size (300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed rounds first (20)")
    parser.add_argument(
        "--max-seconds", type=float, default=300, help="time cap of the timed rounds"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the rebuild_rollups check")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    small = args.small or (100_000 if args.quick else 1_000_000)
    big = args.big or (1_000_000 if args.quick else 10_000_000)
    rounds = args.rounds or (60 if args.quick else 300)

    with c.scratch_dir("read", keep=args.keep) as root:
        datasets = [Dataset(label_of(n), n, root / label_of(n)) for n in (small, big)]
        for dataset in datasets:
            c.migrate(dataset.data_dir)
        c.setup_django(datasets[0].data_dir)  # settings (keys) from the first directory
        from django.db import connections
        from django.utils import timezone

        from dashvault.metrics.periods import today_in

        now = timezone.now()
        today = today_in("UTC", now)
        datasets[0].conn = connections["default"]
        datasets[1].conn = open_connection(datasets[1].data_dir / "dashvault.sqlite3")

        mismatches: list[str] = []
        for dataset in datasets:
            create_rows(dataset)
            load_points(dataset, today)
        if not args.no_verify:
            mismatches = rollups_match_product(datasets[0])

        for dataset in datasets:
            load_widgets(dataset)
            inspect_queries(dataset, today)
        for _ in range(args.warmup):
            for dataset in datasets:
                one_round(dataset, today, now, record=False)
        deadline = time.monotonic() + args.max_seconds
        done = 0
        while done < rounds and time.monotonic() < deadline:
            order = datasets if done % 2 == 0 else datasets[::-1]
            for dataset in order:
                one_round(dataset, today, now, record=True)
            done += 1
        for dataset in datasets:
            dataset.conn.close()

        return report(datasets, done, rounds, mismatches, args.no_verify)


def report(
    datasets: list[Dataset], done: int, rounds: int, mismatches: list[str], no_verify: bool
) -> int:
    small, big = datasets
    print(f"\nwidget data, {done} timed rounds per widget and size (interleaved)")
    rows = []
    checks: list[c.Check] = []
    for name in small.times:
        s, b = small.times[name], big.times[name]
        s50, s95, b50, b95 = (
            c.percentile(s, 50),
            c.percentile(s, 95),
            c.percentile(b, 50),
            c.percentile(b, 95),
        )
        queries = small.queries.get(name, "-")
        rows.append(
            (
                name,
                queries,
                c.ms(s50),
                c.ms(s95),
                c.ms(b50),
                c.ms(b95),
                f"{b50 / s50:.2f}",
                f"{b95 / s95:.2f}",
            )
        )
        if name == WHOLE:
            continue  # information: the targets are per widget
        checks.append(
            c.Check(
                f"{name}: p50 {big.label}/{small.label}",
                c.ms(b50),
                c.ms(s50),
                f"{b50 / s50:.2f}",
                f"<= {TARGET_RATIO}",
                b50 / s50 <= TARGET_RATIO,
            )
        )
        worst = max(s95, b95)
        checks.append(
            c.Check(
                f"{name}: p95",
                f"{c.ms(b95)} ({big.label})",
                f"{c.ms(s95)} ({small.label})",
                f"{b95 / s95:.2f}",
                f"<= {TARGET_P95 * 1000:.0f} ms",
                worst <= TARGET_P95,
            )
        )
    c.print_table(
        (
            "widget",
            "queries",
            f"p50 {small.label}",
            f"p95 {small.label}",
            f"p50 {big.label}",
            f"p95 {big.label}",
            "ratio p50",
            "ratio p95",
        ),
        rows,
    )
    bad_sql = small.bad_sql + big.bad_sql
    checks.append(
        c.Check(
            "only rollups read (no raw points, no Trunc)",
            f"{len(bad_sql)} bad queries",
            "-",
            "-",
            "0",
            not bad_sql,
        )
    )
    checks.append(
        c.Check(
            "same widget query counts on both sizes",
            str(sum(big.queries.values())),
            str(sum(small.queries.values())),
            "-",
            "equal",
            big.queries == small.queries,
        )
    )
    for dataset in datasets:
        checks.append(
            c.Check(
                f"raw points in the {dataset.label} metric",
                f"{dataset.stored:,}",
                f"{dataset.points:,}",
                "-",
                "all stored",
                dataset.stored == dataset.points and dataset.rollups > 0,
            )
        )
    if not no_verify:
        checks.append(
            c.Check(
                f"SQL rollups == rebuild_rollups ({small.label})",
                f"{len(mismatches)} differ",
                f"{small.rollups:,} rollups",
                "-",
                "0 differ",
                not mismatches,
            )
        )
    checks.append(
        c.Check(
            "timed rounds",
            str(done),
            str(rounds),
            "-",
            f">= {min(rounds, 50)}",
            done >= min(rounds, 50),
        )
    )
    notes = [f"{line}" for line in (bad_sql + mismatches)[:10]]
    return c.finish("read path", checks, notes)


if __name__ == "__main__":
    sys.exit(main())
