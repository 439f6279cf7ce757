"""Widget options and widget data: what each kind of tile shows, computed from rollups.

`validate_config` is the one check of a widget's options before they are saved.
`dashboard_data` is what a dashboard page, a kiosk screen and a live update send: its JSON
shape is a contract with the browser code, documented on the function.

Security contract: a widget only ever reads the metric it points to, and only when that
metric belongs to the widget's own organization (anything else shows as "no data"). Callers
decide who may see the dashboard (policy.access) before calling `dashboard_data`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from dashvault.dashboards.models import Dashboard, Widget, WidgetKind
from dashvault.lib.numbers import format_value
from dashvault.metrics import queries
from dashvault.metrics.models import Aggregation, Metric
from dashvault.metrics.periods import (
    BUCKETS,
    PERIODS,
    bucket_labels,
    period_days,
    period_label,
    previous_days,
    today_in,
)
from dashvault.orgs.models import Organization

TEXT_MAX = 2000
TOP_N_MAX = 50

DEFAULTS: dict[str, Any] = {
    "period": "this_month",
    "bucket": "day",
    "by_dimension": False,
    "target": None,
    "top_n": 5,
    "aggregation": None,
    "text": "",
}

# The options each kind takes; any other key is refused.
KIND_KEYS: dict[str, tuple[str, ...]] = {
    WidgetKind.KPI: ("period", "aggregation", "target"),
    WidgetKind.LINE: ("period", "bucket", "by_dimension", "aggregation"),
    WidgetKind.BAR: ("period", "bucket", "by_dimension", "aggregation"),
    WidgetKind.LEADERBOARD: ("period", "aggregation", "top_n"),
    WidgetKind.GAUGE: ("period", "aggregation", "target"),
    WidgetKind.TEXT: ("text",),
}

_KIND_NAMES: dict[str, str] = {
    WidgetKind.KPI: "a KPI",
    WidgetKind.LINE: "a line chart",
    WidgetKind.BAR: "a bar chart",
    WidgetKind.LEADERBOARD: "a leaderboard",
    WidgetKind.GAUGE: "a gauge",
    WidgetKind.TEXT: "a text",
}


def _check_period(value: Any) -> str:
    if not isinstance(value, str) or value not in PERIODS:
        raise ValueError(f"period must be one of: {', '.join(PERIODS)} (got {value!r}).")
    return value


def _check_bucket(value: Any) -> str:
    if not isinstance(value, str) or value not in BUCKETS:
        raise ValueError(f"bucket must be one of: {', '.join(BUCKETS)} (got {value!r}).")
    return value


def _check_by_dimension(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"by_dimension must be true or false (got {value!r}).")
    return value


def _check_target(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"target must be a number or empty (got {value!r}).")
    try:
        target = float(value)
    except OverflowError:  # a JSON integer beyond a double, such as 10**400
        target = math.inf
    if not math.isfinite(target) or target < 0:
        raise ValueError(f"target must be a finite number of 0 or more (got {value!r}).")
    return target


def _check_top_n(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= TOP_N_MAX:
        raise ValueError(f"top_n must be a whole number from 1 to {TOP_N_MAX} (got {value!r}).")
    return value


def _check_aggregation(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in Aggregation.values:
        raise ValueError(
            f"aggregation must be empty (the metric's own) or one of: "
            f"{', '.join(Aggregation.values)} (got {value!r})."
        )
    return value


def _check_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"text must be a string (got {type(value).__name__}).")
    if len(value) > TEXT_MAX:
        raise ValueError(f"text must be at most {TEXT_MAX} characters (got {len(value)}).")
    return value


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "period": _check_period,
    "bucket": _check_bucket,
    "by_dimension": _check_by_dimension,
    "target": _check_target,
    "top_n": _check_top_n,
    "aggregation": _check_aggregation,
    "text": _check_text,
}


def validate_config(kind: str, config: Any, *, has_metric: bool) -> dict[str, Any]:
    """The complete options of a widget of `kind`, checked strictly; raises ValidationError.

    `config` is a JSON object (dict) holding some of the kind's options (KIND_KEYS); missing
    ones get DEFAULTS. Refused, all at once: an unknown kind, a non-dict config, a key the
    kind does not take, a value of the wrong type or range, a missing metric for kpi, line,
    bar, leaderboard and gauge, and a metric on a text widget. The error's `message_dict`
    maps each offending field ("kind", "config", "metric" or the option's key) to messages
    that name the field. The result holds exactly the kind's keys, with JSON types: period
    and bucket names, by_dimension bool, target float or None, top_n int, aggregation name or
    None (the metric's own), text str.
    """
    if kind not in KIND_KEYS:
        raise ValidationError(
            {"kind": [f"kind must be one of: {', '.join(KIND_KEYS)} (got {kind!r})."]}
        )
    if not isinstance(config, Mapping):
        raise ValidationError(
            {"config": [f"config must be a JSON object (got {type(config).__name__})."]}
        )
    errors: dict[str, list[str]] = {}
    allowed = KIND_KEYS[kind]
    for key in config:
        if key not in allowed:
            errors[str(key)] = [
                f"{key} is not an option of {_KIND_NAMES[kind]} widget "
                f"(its options: {', '.join(allowed)})."
            ]
    if kind == WidgetKind.TEXT and has_metric:
        errors["metric"] = ["metric: a text widget shows no metric; leave it empty."]
    elif kind != WidgetKind.TEXT and not has_metric:
        errors["metric"] = [f"metric: {_KIND_NAMES[kind]} widget needs a metric."]
    cleaned: dict[str, Any] = {}
    for key in allowed:
        try:
            cleaned[key] = _CHECKS[key](config[key]) if key in config else DEFAULTS[key]
        except ValueError as error:
            errors[key] = [str(error)]
    if errors:
        raise ValidationError(errors)
    return cleaned


def read_config(widget: Widget) -> dict[str, Any]:
    """The options of a stored widget, forgivingly: a value that no longer passes its check
    (or was saved around validate_config) falls back to its default, so one stale widget
    never breaks a whole dashboard."""
    stored = widget.config if isinstance(widget.config, dict) else {}
    options: dict[str, Any] = {}
    for key in KIND_KEYS.get(widget.kind, ()):
        try:
            options[key] = _CHECKS[key](stored[key]) if key in stored else DEFAULTS[key]
        except ValueError:
            options[key] = DEFAULTS[key]
    return options


def widget_data(widget: Widget, today: dt.date) -> dict[str, Any]:
    """The JSON payload of one widget on the local date `today` (the org's time zone).

    Reads only rollups: 2 queries for a KPI whose period has a previous one (1 for
    "all_time"), 1 for line, bar, leaderboard and gauge, none for text. `widget.metric`
    should be loaded with select_related. Shapes (values are floats or None; "display" is
    lib.numbers.format_value of the value in the metric's unit):
      kpi: kind, title, value, display, previous, change_pct, target, progress_pct,
           period (label). change_pct = (value - previous) / |previous| * 100, None when
           either is None or previous is 0; progress_pct = value / target * 100, None
           without a value or a positive target.
      line, bar: kind, title, labels [str], series [{name, values [float|None]}], unit,
           currency. One label and one value per bucket, empty buckets included.
      leaderboard: kind, title, rows [{dimension, value, display}], largest first.
      gauge: kind, title, value, display, target, max (the target, or the value without
           one; at least 1).
      text: kind, title, text.
    """
    options = read_config(widget)
    metric = _own_metric(widget)
    title = widget.title or (metric.name if metric is not None else "")
    base: dict[str, Any] = {"kind": widget.kind, "title": title}
    if widget.kind == WidgetKind.TEXT:
        return base | {"text": options["text"]}

    aggregation = options["aggregation"] or (metric.aggregation if metric else Aggregation.SUM)
    period = options["period"]
    first, last = period_days(period, today)
    unit = metric.unit if metric is not None else ""
    currency = metric.currency if metric is not None else ""

    if widget.kind in (WidgetKind.LINE, WidgetKind.BAR):
        if metric is None:
            return base | {"labels": [], "series": [], "unit": unit, "currency": currency}
        starts, named = queries.series(
            metric, first, last, options["bucket"], aggregation, options["by_dimension"]
        )
        return base | {
            "labels": bucket_labels(starts, options["bucket"]),
            "series": [{"name": name, "values": values} for name, values in named.items()],
            "unit": unit,
            "currency": currency,
        }

    if widget.kind == WidgetKind.LEADERBOARD:
        ranked = (
            queries.leaderboard(metric, first, last, aggregation, options["top_n"])
            if metric is not None
            else []
        )
        return base | {
            "rows": [
                {"dimension": dim, "value": value, "display": format_value(value, unit, currency)}
                for dim, value in ranked
            ]
        }

    value = queries.aggregate_value(metric, first, last, aggregation) if metric else None
    display = format_value(value, unit, currency)
    target = options["target"]
    if widget.kind == WidgetKind.GAUGE:
        top = target if target is not None else (value or 0.0)
        return base | {
            "value": value,
            "display": display,
            "target": target,
            "max": max(1.0, top),
        }

    previous_range = previous_days(period, today)
    previous = (
        queries.aggregate_value(metric, *previous_range, aggregation)
        if metric is not None and previous_range is not None
        else None
    )
    return base | {
        "value": value,
        "display": display,
        "previous": previous,
        "change_pct": _change_pct(value, previous),
        "target": target,
        "progress_pct": _finite(value / target * 100) if value is not None and target else None,
        "period": period_label(period),
    }


def dashboard_data(dashboard: Dashboard, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Every widget's payload of `dashboard` at the aware instant `now` (default: now).

    Returns {"dashboard": "<uuid>", "generated_at": "<ISO 8601 UTC>",
    "widgets": {"<widget uuid>": payload}} (payloads: widget_data), JSON-serialisable, widgets
    in grid order (y, x). Queries: one Organization read for the time zone, one for the
    widgets with their metrics, then widget_data's constant count per widget; rollups only,
    so the cost does not grow with raw data. Callers check access to `dashboard` first.
    """
    now = now or timezone.now()
    time_zone = Organization.objects.values_list("time_zone", flat=True).get(pk=dashboard.org_id)
    today = today_in(time_zone, now)
    widgets = Widget.objects.filter(org_id=dashboard.org_id, dashboard=dashboard).select_related(
        "metric"
    )
    return {
        "dashboard": str(dashboard.pk),
        "generated_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "widgets": {str(widget.pk): widget_data(widget, today) for widget in widgets},
    }


def _own_metric(widget: Widget) -> Metric | None:
    """The widget's metric if it belongs to the widget's organization, else None."""
    if widget.metric_id is None or widget.kind == WidgetKind.TEXT:
        return None
    metric = widget.metric
    if metric is None or metric.org_id != widget.org_id:
        return None
    return metric


def _change_pct(value: float | None, previous: float | None) -> float | None:
    if value is None or previous is None or previous == 0:
        return None
    return _finite((value - previous) / abs(previous) * 100)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
