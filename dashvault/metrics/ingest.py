"""Writing data points and keeping the daily rollups exact, in the same transaction.

Appends update rollups incrementally with one upsert per (metric, day, dimension). Anything
that removes a point (a replacement by external id, a delete) recomputes the touched rollups
from the raw points, so min, max and latest stay exact. After commit, `metrics_changed` is
sent once per call with the metric ids, and live updates recompute affected dashboards.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.dispatch import Signal

from dashvault.metrics.models import DataPoint, Metric, Rollup
from dashvault.orgs.models import Organization

MAX_MAGNITUDE = 1e15  # sums of many such values stay far from a double's overflow

# Sent after commit with org_id and metric_ids (a frozenset of UUIDs).
metrics_changed = Signal()

RollupKey = tuple[uuid.UUID, dt.date, str]  # metric, local day, dimension


@dataclass(frozen=True, slots=True)
class PointIn:
    """A validated point to store (api.schemas validates outside input into these)."""

    metric_key: str
    ts: dt.datetime  # timezone-aware
    value: float
    dimension: str = ""
    external_id: str | None = None


class UnknownMetrics(Exception):
    def __init__(self, keys: Sequence[str]) -> None:
        super().__init__(", ".join(keys))
        self.keys = list(keys)


@dataclass(slots=True)
class _Agg:
    total: float
    count: int
    minimum: float
    maximum: float
    latest_ts: dt.datetime
    latest_value: float

    def add(self, ts: dt.datetime, value: float) -> None:
        self.total += value
        self.count += 1
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        if ts >= self.latest_ts:  # ties: the later-stored point wins, as in _recompute
            self.latest_ts, self.latest_value = ts, value


def _aggregate(rows: Iterable[tuple[RollupKey, dt.datetime, float]]) -> dict[RollupKey, _Agg]:
    aggs: dict[RollupKey, _Agg] = {}
    for key, ts, value in rows:
        agg = aggs.get(key)
        if agg is None:
            aggs[key] = _Agg(value, 1, value, value, ts, value)
        else:
            agg.add(ts, value)
    return aggs


def local_day(ts: dt.datetime, tz: ZoneInfo) -> dt.date:
    return ts.astimezone(tz).date()


def day_bounds(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants where a local day starts and the next one starts (DST-safe)."""
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def do_ingest(org: Organization, points: Sequence[PointIn]) -> int:
    """Store `points` for `org`, all or nothing; returns how many were stored.

    Security contract: metrics are looked up by key within `org` only; an unknown key raises
    UnknownMetrics before anything is written. Within one call a later point with the same
    external id replaces an earlier one. Callers audit the request that brought the points.
    """
    if not all(math.isfinite(p.value) and abs(p.value) <= MAX_MAGNITUDE for p in points):
        raise ValueError(f"data point values must be finite numbers of at most {MAX_MAGNITUDE:g}")
    keys = {p.metric_key for p in points}
    tz = ZoneInfo(org.time_zone)

    with transaction.atomic():
        # Writers of the same metrics queue here, in one order (by id): without it two pushes
        # touching the same rollups in different orders deadlock on PostgreSQL, and a re-sent
        # external id races its first copy into the unique constraint.
        locked = Metric.objects.select_for_update().filter(org=org, key__in=keys).order_by("pk")
        metrics = {m.key: m.pk for m in locked}
        unknown = sorted(keys - metrics.keys())
        if unknown:
            raise UnknownMetrics(unknown)
        # Last one wins for repeated external ids inside the batch.
        by_external: dict[tuple[uuid.UUID, str], int] = {}
        for index, point in enumerate(points):
            if point.external_id is not None:
                by_external[(metrics[point.metric_key], point.external_id)] = index
        kept = [
            p
            for i, p in enumerate(points)
            if p.external_id is None or by_external[(metrics[p.metric_key], p.external_id)] == i
        ]
        dirty = _delete_replaced(tz, by_external.keys())
        _insert_points(org, kept, metrics)
        fresh = _aggregate(
            ((metrics[p.metric_key], local_day(p.ts, tz), p.dimension), p.ts, p.value) for p in kept
        )
        _upsert_increments(org, {k: v for k, v in fresh.items() if k not in dirty})
        _recompute(org, tz, dirty)
        announce_change(org, (metrics[k] for k in keys))
    return len(kept)


def announce_change(org: Organization, metric_ids: Iterable[uuid.UUID]) -> None:
    """After commit, tell live screens these metrics changed (also for edits that are not
    new points: a metric renamed, rollups rebuilt)."""
    changed = frozenset(metric_ids)
    transaction.on_commit(
        lambda: metrics_changed.send(sender=Metric, org_id=org.pk, metric_ids=changed)
    )


def _delete_replaced(tz: ZoneInfo, external: Iterable[tuple[uuid.UUID, str]]) -> set[RollupKey]:
    """Delete stored points whose external id arrives again; return the rollups they touched."""
    by_metric: dict[uuid.UUID, list[str]] = {}
    for metric_id, external_id in external:
        by_metric.setdefault(metric_id, []).append(external_id)
    dirty: set[RollupKey] = set()
    for metric_id, external_ids in by_metric.items():
        for start in range(0, len(external_ids), 500):  # stay under SQL parameter limits
            chunk = external_ids[start : start + 500]
            old = DataPoint.objects.filter(metric_id=metric_id, external_id__in=chunk)
            rows = list(old.values_list("id", "ts", "dimension"))
            if rows:
                dirty.update((metric_id, local_day(ts, tz), dim) for _, ts, dim in rows)
                DataPoint.objects.filter(id__in=[r[0] for r in rows]).delete()
    return dirty


def _insert_points(
    org: Organization, points: Sequence[PointIn], metrics: dict[str, uuid.UUID]
) -> None:
    # Plain executemany instead of bulk_create, with values adapted once per metric and a
    # direct datetime conversion: at 10,000 points per request, model instances and Django's
    # per-value adapters cost more than the insert itself.
    org_id = _uuid_db(org.pk)
    metric_ids = {key: _uuid_db(pk) for key, pk in metrics.items()}
    adapt_ts = _datetime_adapter()
    rows = [
        (org_id, metric_ids[p.metric_key], adapt_ts(p.ts), p.value, p.dimension, p.external_id)
        for p in points
    ]
    table = DataPoint._meta.db_table
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (org_id, metric_id, ts, value, dimension, external_id) "  # noqa: S608  (fixed names)
            "VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )


def _datetime_adapter() -> Callable[[dt.datetime], str | dt.datetime]:
    """How this database takes an aware datetime: SQLite stores naive UTC text exactly as
    Django's adapter writes it; PostgreSQL's driver takes aware datetimes as they are."""
    if connection.vendor == "sqlite":
        return lambda ts: str(ts.astimezone(dt.UTC).replace(tzinfo=None))
    return lambda ts: ts


def _uuid_db(value: uuid.UUID) -> str | uuid.UUID:
    # SQLite stores UUIDs as 32 hex characters; PostgreSQL has a native uuid type.
    return value.hex if connection.vendor == "sqlite" else value


def _upsert_increments(org: Organization, aggs: dict[RollupKey, _Agg]) -> None:
    if not aggs:
        return
    least, greatest = ("MIN", "MAX") if connection.vendor == "sqlite" else ("LEAST", "GREATEST")
    table = Rollup._meta.db_table
    sql = (
        f"INSERT INTO {table} AS r (org_id, metric_id, day, dimension, total, count, minimum, "  # noqa: S608  (fixed names)
        "maximum, latest_ts, latest_value) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (metric_id, day, dimension) DO UPDATE SET "
        "total = r.total + excluded.total, count = r.count + excluded.count, "
        f"minimum = {least}(r.minimum, excluded.minimum), "
        f"maximum = {greatest}(r.maximum, excluded.maximum), "
        "latest_value = CASE WHEN excluded.latest_ts >= r.latest_ts "
        "THEN excluded.latest_value ELSE r.latest_value END, "
        f"latest_ts = {greatest}(r.latest_ts, excluded.latest_ts)"
    )
    ops = connection.ops
    adapt_ts = _datetime_adapter()
    rows = [
        (
            _uuid_db(org.pk),
            _uuid_db(metric_id),
            ops.adapt_datefield_value(day),
            dimension,
            agg.total,
            agg.count,
            agg.minimum,
            agg.maximum,
            adapt_ts(agg.latest_ts),
            agg.latest_value,
        )
        for (metric_id, day, dimension), agg in aggs.items()
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _recompute(org: Organization, tz: ZoneInfo, keys: set[RollupKey]) -> None:
    """Rebuild the given rollups from raw points (deleting those left with no point)."""
    by_series: dict[tuple[uuid.UUID, str], set[dt.date]] = {}
    for metric_id, day, dimension in keys:
        by_series.setdefault((metric_id, dimension), set()).add(day)
    one_day = dt.timedelta(days=1)
    for (metric_id, dimension), days in by_series.items():
        # A day on each side: where a clock is set back across midnight (St. John's until
        # 2011: 00:01 back to 23:01), the repeated hour belongs to the earlier day but lies
        # after day_bounds' end. local_day below keeps only the wanted days.
        start, _ = day_bounds(min(days) - one_day, tz)
        _, end = day_bounds(max(days) + one_day, tz)
        points = (
            DataPoint.objects.filter(
                metric_id=metric_id, dimension=dimension, ts__gte=start, ts__lt=end
            )
            .order_by("ts", "id")
            .values_list("ts", "value")
        )
        aggs = _aggregate(
            ((metric_id, local_day(ts, tz), dimension), ts, value)
            for ts, value in points.iterator()
            if local_day(ts, tz) in days
        )
        Rollup.objects.filter(metric_id=metric_id, dimension=dimension, day__in=days).delete()
        Rollup.objects.bulk_create(
            Rollup(org=org, metric_id=m, day=d, dimension=dim, **vars_of(agg))
            for (m, d, dim), agg in aggs.items()
        )


def vars_of(agg: _Agg) -> dict[str, object]:
    return {
        "total": agg.total,
        "count": agg.count,
        "minimum": agg.minimum,
        "maximum": agg.maximum,
        "latest_ts": agg.latest_ts,
        "latest_value": agg.latest_value,
    }


def do_delete_points(
    org: Organization,
    metric: Metric,
    start: dt.datetime,
    end: dt.datetime,
    dimension: str | None = None,
) -> int:
    """Delete `metric`'s points with start <= ts < end (optionally one dimension); returns how
    many. Rollups of days wholly inside the range are dropped, the two edge days recomputed."""
    if metric.org_id != org.pk:
        raise ValueError("metric of another organization")
    tz = ZoneInfo(org.time_zone)
    with transaction.atomic():
        Metric.objects.select_for_update().filter(pk=metric.pk).first()  # as in do_ingest
        points = DataPoint.objects.filter(metric=metric, ts__gte=start, ts__lt=end)
        if dimension is not None:
            points = points.filter(dimension=dimension)
        edge_days = {local_day(start, tz), local_day(end - dt.timedelta(microseconds=1), tz)}
        dims = set(points.values_list("dimension", flat=True).distinct())
        deleted, _ = points.delete()
        inner = Rollup.objects.filter(metric=metric, day__gt=min(edge_days), day__lt=max(edge_days))
        if dimension is not None:
            inner = inner.filter(dimension=dimension)
        inner.delete()
        _recompute(org, tz, {(metric.pk, day, dim) for day in edge_days for dim in dims})
        announce_change(org, [metric.pk])
    return deleted


def rebuild_rollups(org: Organization) -> int:
    """Drop and recompute every rollup of `org` from raw points; returns rollups written."""
    tz = ZoneInfo(org.time_zone)
    with transaction.atomic():
        Rollup.objects.filter(org=org).delete()
        written = 0
        for metric_id in Metric.objects.filter(org=org).values_list("id", flat=True):
            points = (
                DataPoint.objects.filter(org=org, metric_id=metric_id)
                .order_by("ts", "id")
                .values_list("ts", "value", "dimension")
            )
            aggs = _aggregate(
                ((metric_id, local_day(ts, tz), dim), ts, value)
                for ts, value, dim in points.iterator(chunk_size=20000)
            )
            Rollup.objects.bulk_create(
                (
                    Rollup(org=org, metric_id=m, day=d, dimension=dim, **vars_of(agg))
                    for (m, d, dim), agg in aggs.items()
                ),
                batch_size=2000,
            )
            written += len(aggs)
        announce_change(org, Metric.objects.filter(org=org).values_list("id", flat=True))
    return written
