"""The read side of metrics: widget numbers computed from daily rollups, never raw points.

Security contract: every query filters on the metric's own organization and id, so a caller
that holds a Metric it was allowed to see reads nothing of any other metric or organization;
callers check that access (dashboards.widgets checks the widget's org against the metric's).

Cost contract: each function runs exactly one query over at most one row per local day and
dimension of the range (a year is ~365 rows per dimension), whatever the raw data volume.
Grouping uses plain values()/annotate over `day` and `dimension`; weeks and months are
bucketed in Python (ORM date truncation runs a Python function per row on SQLite).

Aggregations over a range of rollups:
- sum: sum of totals; count: sum of counts (both 0 over a range without data);
- average: sum(total) / sum(count); min / max: smallest minimum / largest maximum;
- latest: latest_value of the rollup with the greatest latest_ts;
average, min, max and latest are None over a range without data.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Max, Min, QuerySet, Sum

from dashvault.metrics.models import Aggregation, Metric, Rollup
from dashvault.metrics.periods import bucket_range, bucket_start

NO_DIMENSION = "(none)"  # series name for points stored without a dimension
OTHER = "(other)"  # series name for the dimensions past `max_series`


@dataclass(slots=True)
class _Acc:
    """Running aggregates that merge exactly, so days combine into buckets and series."""

    total: float = 0.0
    count: int = 0
    minimum: float | None = None
    maximum: float | None = None
    latest_ts: dt.datetime | None = None
    latest_value: float | None = None

    def add(
        self,
        total: float | None,
        count: int | None,
        minimum: float | None,
        maximum: float | None,
        latest_ts: dt.datetime | None = None,
        latest_value: float | None = None,
    ) -> None:
        self.total += total or 0.0
        self.count += count or 0
        if minimum is not None and (self.minimum is None or minimum < self.minimum):
            self.minimum = minimum
        if maximum is not None and (self.maximum is None or maximum > self.maximum):
            self.maximum = maximum
        # ">=": on equal timestamps the later row wins; readers order rows to make that
        # the same row aggregate_value picks (greatest day, then smallest dimension).
        if latest_ts is not None and (self.latest_ts is None or latest_ts >= self.latest_ts):
            self.latest_ts, self.latest_value = latest_ts, latest_value

    def merge(self, other: _Acc) -> None:
        self.add(
            other.total,
            other.count,
            other.minimum,
            other.maximum,
            other.latest_ts,
            other.latest_value,
        )

    def value(self, aggregation: str) -> float | None:
        if aggregation == Aggregation.SUM:
            result: float | None = self.total
        elif aggregation == Aggregation.COUNT:
            result = float(self.count)
        elif aggregation == Aggregation.AVERAGE:
            result = self.total / self.count if self.count else None
        elif aggregation == Aggregation.MIN:
            result = self.minimum
        elif aggregation == Aggregation.MAX:
            result = self.maximum
        elif aggregation == Aggregation.LATEST:
            result = self.latest_value
        else:
            raise ValueError(f"unknown aggregation {aggregation!r}")
        # Infinity and NaN are not JSON; an overflowing sum has no meaningful value anyway.
        return result if result is None or math.isfinite(result) else None


def rollups(metric: Metric, first: dt.date | None, last: dt.date) -> QuerySet[Rollup]:
    """`metric`'s rollups of local days first..last (inclusive; first None: from the start),
    filtered on the metric's organization too, which also matches the (org, metric, day)
    index."""
    rows = Rollup.objects.filter(org_id=metric.org_id, metric_id=metric.pk, day__lte=last)
    if first is not None:
        rows = rows.filter(day__gte=first)
    return rows


def aggregate_value(
    metric: Metric, first: dt.date | None, last: dt.date, aggregation: str
) -> float | None:
    """`aggregation` of `metric` over local days first..last, in one query (see module doc)."""
    _check_aggregation(aggregation)
    rows = rollups(metric, first, last)
    acc = _Acc()
    if aggregation == Aggregation.LATEST:
        latest = rows.order_by("-latest_ts", "-day", "dimension").values_list(
            "latest_ts", "latest_value"
        )[:1]
        for latest_ts, latest_value in latest:
            acc.add(0.0, 1, None, None, latest_ts, latest_value)
    else:
        sums = rows.aggregate(
            total=Sum("total"), count=Sum("count"), minimum=Min("minimum"), maximum=Max("maximum")
        )
        acc.add(sums["total"], sums["count"], sums["minimum"], sums["maximum"])
    return acc.value(aggregation)


def series(
    metric: Metric,
    first: dt.date | None,
    last: dt.date,
    bucket: str,
    aggregation: str,
    by_dimension: bool,
    *,
    max_series: int = 10,
) -> tuple[list[dt.date], dict[str, list[float | None]]]:
    """`aggregation` of `metric` per `bucket` over local days first..last, in one query.

    Returns the start of every bucket (periods.bucket_range, empty buckets included; with
    first None the range starts at the earliest rollup, and no rollup means no buckets) and
    the series: one named after the metric, or with `by_dimension` one per dimension (points
    without a dimension form NO_DIMENSION) ordered by their value over the whole range,
    largest first. Past `max_series` the remaining dimensions merge into one OTHER series.
    Each series has one value per bucket; a bucket without data holds what the aggregation
    gives over no data (0 for sum and count, otherwise None).
    """
    _check_aggregation(aggregation)
    if max_series < 1:
        raise ValueError("max_series must be at least 1")
    bucket_start(last, bucket)  # refuses an unknown bucket before querying
    rows = rollups(metric, first, last)
    grouped = _grouped_rows(rows, aggregation, by_dimension=by_dimension)
    if first is None:
        grouped = list(grouped)
        days = [row[0] for row in grouped]
        first = min(days) if days else None
    starts = bucket_range(first, last, bucket) if first is not None else []
    position = {start: index for index, start in enumerate(starts)}

    per_series: dict[str, list[_Acc]] = {}
    slot: dict[dt.date, int] = {}  # day → bucket index, computed once per distinct day
    latest = aggregation == Aggregation.LATEST
    for day, dimension, *values in grouped:
        name = (dimension or NO_DIMENSION) if by_dimension else metric.name
        accs = per_series.get(name)
        if accs is None:
            accs = per_series[name] = [_Acc() for _ in starts]
        index = slot.get(day)
        if index is None:
            index = slot[day] = position[bucket_start(day, bucket)]
        if latest:
            accs[index].add(0.0, 1, None, None, values[0], values[1])
        else:
            accs[index].add(*values)
    whole = {name: _merged(accs) for name, accs in per_series.items()}

    if not by_dimension:
        buckets = per_series.get(metric.name, [_Acc() for _ in starts])
        return starts, {metric.name: [acc.value(aggregation) for acc in buckets]}

    ranked = _rank(((name, acc.value(aggregation)) for name, acc in whole.items()))
    names = [name for name, _ in ranked]
    result = {name: [acc.value(aggregation) for acc in per_series[name]] for name in names}
    if len(names) > max_series:
        kept, rest = names[: max_series - 1], names[max_series - 1 :]
        other = [_Acc() for _ in starts]
        for name in rest:
            for index, acc in enumerate(per_series[name]):
                other[index].merge(acc)
        result = {name: result[name] for name in kept}
        result[OTHER] = [acc.value(aggregation) for acc in other]
    return starts, result


def leaderboard(
    metric: Metric, first: dt.date | None, last: dt.date, aggregation: str, n: int
) -> list[tuple[str, float]]:
    """The `n` dimensions of `metric` with the largest `aggregation` over local days
    first..last, largest first (ties by dimension name), in one query. Points without a
    dimension ("") are left out, and so is a dimension without a value."""
    _check_aggregation(aggregation)
    if n < 1:
        return []
    rows = rollups(metric, first, last).exclude(dimension="")
    totals: dict[str, _Acc] = {}
    latest = aggregation == Aggregation.LATEST
    for _day, dimension, *values in _grouped_rows(rows, aggregation, by_day=False):
        acc = totals.setdefault(dimension, _Acc())
        if latest:
            acc.add(0.0, 1, None, None, values[0], values[1])
        else:
            acc.add(*values)
    ranked = _rank((name, acc.value(aggregation)) for name, acc in totals.items())
    return [(name, value) for name, value in ranked if value is not None][:n]


def _grouped_rows(
    rows: QuerySet[Rollup], aggregation: str, *, by_dimension: bool = True, by_day: bool = True
) -> Iterable[tuple[Any, ...]]:
    """Tuples (day, dimension, total, count, minimum, maximum), or for "latest"
    (day, dimension, latest_ts, latest_value), one per day and/or dimension; a grouping left
    out reads as None.

    "latest" cannot be grouped in SQL portably (it needs the value at the greatest
    timestamp), so it reads the rollups themselves: still at most one row per day and
    dimension. Rollups are unique per day and dimension, so grouping by both is the rows
    themselves: no GROUP BY then (it costs the database a sort). Tuples, not dicts: a chart
    over a year of 8 dimensions reads ~3,000 rows and per-row overhead dominates."""
    sums = ("total", "count", "minimum", "maximum")
    if aggregation == Aggregation.LATEST:
        return rows.order_by("latest_ts", "day", "-dimension").values_list(
            "day", "dimension", "latest_ts", "latest_value"
        )
    if by_day and by_dimension:
        return rows.order_by().values_list("day", "dimension", *sums)
    keys = [k for k, on in (("day", by_day), ("dimension", by_dimension)) if on]
    grouped = (
        rows.order_by()
        .values(*keys)
        .annotate(
            total=Sum("total"), count=Sum("count"), minimum=Min("minimum"), maximum=Max("maximum")
        )
    )
    return ((row.get("day"), row.get("dimension"), *(row[k] for k in sums)) for row in grouped)


def _merged(accs: Iterable[_Acc]) -> _Acc:
    whole = _Acc()
    for acc in accs:
        whole.merge(acc)
    return whole


def _rank(values: Iterable[tuple[str, float | None]]) -> list[tuple[str, float | None]]:
    """Largest value first, valueless last, ties by name."""
    return sorted(values, key=lambda item: (item[1] is None, -(item[1] or 0.0), item[0]))


def _check_aggregation(aggregation: str) -> None:
    if aggregation not in Aggregation.values:
        raise ValueError(
            f"unknown aggregation {aggregation!r}; use one of: {', '.join(Aggregation.values)}"
        )
