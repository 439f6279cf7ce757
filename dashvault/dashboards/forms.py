from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from dashvault.dashboards.actions import (
    GRID_COLUMNS,
    GRID_ROWS,
    TILE_MAX_HEIGHT,
    Place,
)
from dashvault.dashboards.models import Widget, WidgetKind
from dashvault.dashboards.widgets import (
    DEFAULTS,
    KIND_KEYS,
    TOP_N_MAX,
    read_config,
    validate_config,
)
from dashvault.metrics.models import Aggregation, Metric
from dashvault.metrics.periods import BUCKETS, PERIODS
from dashvault.orgs.models import Organization


class DashboardForm(forms.Form):
    title = forms.CharField(max_length=120)


def _kinds_taking(option: str) -> str:
    return " ".join(kind for kind, keys in KIND_KEYS.items() if option in keys)


# The options of every kind, in the order a form shows them; the metric applies to all but text.
OPTION_FIELDS = ("period", "bucket", "by_dimension", "aggregation", "target", "top_n", "text")
FIELD_KINDS: dict[str, str] = {
    "metric": " ".join(kind for kind in KIND_KEYS if kind != WidgetKind.TEXT),
    **{option: _kinds_taking(option) for option in OPTION_FIELDS},
}


class MetricChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.key})"


class WidgetForm(forms.Form):
    """A widget's kind, title, metric (from the org's own metrics only) and the options of its
    kind. `clean` builds the config from the options the chosen kind takes (the others are
    ignored, as a browser without JavaScript shows them all) and checks it with
    widgets.validate_config, reporting each problem on its field."""

    kind = forms.ChoiceField(choices=WidgetKind.choices, initial=WidgetKind.KPI)
    title = forms.CharField(
        max_length=120, required=False, help_text="Leave empty to use the metric's name."
    )
    metric = MetricChoiceField(
        queryset=Metric.objects.none(), required=False, empty_label="(none: text widgets)"
    )
    period = forms.ChoiceField(choices=list(PERIODS.items()), initial=DEFAULTS["period"])
    bucket = forms.ChoiceField(
        choices=list(BUCKETS.items()), initial=DEFAULTS["bucket"], label="Group by"
    )
    by_dimension = forms.BooleanField(required=False, label="One series per dimension")
    aggregation = forms.ChoiceField(
        choices=[("", "The metric's own"), *Aggregation.choices], required=False
    )
    target = forms.FloatField(
        required=False, min_value=0, help_text="Optional, for the progress bar or gauge."
    )
    top_n = forms.IntegerField(
        min_value=1, max_value=TOP_N_MAX, initial=DEFAULTS["top_n"], label="Rows (top N)"
    )
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False)

    def __init__(
        self, *args: Any, org: Organization, widget: Widget | None = None, **kwargs: Any
    ) -> None:
        if widget is not None:
            options = read_config(widget)
            kwargs["initial"] = {
                "kind": widget.kind,
                "title": widget.title,
                "metric": widget.metric_id,
                **{k: v for k, v in options.items() if v is not None},
            }
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        metric_field = self.fields["metric"]
        assert isinstance(metric_field, forms.ModelChoiceField)  # noqa: S101  (declared above)
        metric_field.queryset = Metric.objects.filter(org=org).order_by("name")
        # Options of other kinds are ignored, so none is required at the field level.
        for name in OPTION_FIELDS:
            self.fields[name].required = False

    def fields_with_kinds(self) -> list[tuple[forms.BoundField, str]]:
        """The metric and option fields with the kinds each applies to (for the template)."""
        return [(self[name], FIELD_KINDS[name]) for name in ("metric", *OPTION_FIELDS)]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if kind is None or any(name in self.errors for name in ("metric", *OPTION_FIELDS)):
            return data
        config: dict[str, Any] = {}
        for key in KIND_KEYS[kind]:
            value = data.get(key)
            if key == "aggregation":
                config[key] = value or None
            elif key in ("period", "bucket") and not value:
                continue  # the default
            elif key == "top_n" and value is None:
                continue
            else:
                config[key] = value
        try:
            data["config"] = validate_config(
                kind, config, has_metric=data.get("metric") is not None
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        return data


class NewWidgetForm(WidgetForm):
    w = forms.IntegerField(
        min_value=1, max_value=GRID_COLUMNS, initial=4, label="Width (of 12 columns)"
    )
    h = forms.IntegerField(min_value=1, max_value=TILE_MAX_HEIGHT, initial=2, label="Height (rows)")


NUDGES: dict[str, tuple[int, int, int, int]] = {
    # nudge: (dx, dy, dw, dh)
    "left": (-1, 0, 0, 0),
    "right": (1, 0, 0, 0),
    "up": (0, -1, 0, 0),
    "down": (0, 1, 0, 0),
    "narrower": (0, 0, -1, 0),
    "wider": (0, 0, 1, 0),
    "shorter": (0, 0, 0, -1),
    "taller": (0, 0, 0, 1),
}


class ArrangeForm(forms.Form):
    """A widget's new place: either a nudge (one step, kept on the grid) or explicit x, y, w,
    h, which the action checks strictly."""

    nudge = forms.ChoiceField(choices=[(n, n) for n in NUDGES], required=False)
    x = forms.IntegerField(required=False, label="Column")
    y = forms.IntegerField(required=False, label="Row")
    w = forms.IntegerField(required=False, label="Width")
    h = forms.IntegerField(required=False, label="Height")

    def __init__(self, *args: Any, widget: Widget, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.widget = widget

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        widget = self.widget
        nudge = data.get("nudge")
        if nudge:
            dx, dy, dw, dh = NUDGES[nudge]
            w = min(max(widget.w + dw, 1), GRID_COLUMNS)
            h = min(max(widget.h + dh, 1), TILE_MAX_HEIGHT)
            x = min(max(widget.x + dx, 0), GRID_COLUMNS - w)
            y = min(max(widget.y + dy, 0), GRID_ROWS - 1)
            data["place"] = Place(x, y, w, h)
            return data
        missing = [name for name in ("x", "y", "w", "h") if data.get(name) is None]
        for name in missing:
            if name not in self.errors:
                self.add_error(name, "Give a whole number.")
        if not missing:
            data["place"] = Place(data["x"], data["y"], data["w"], data["h"])
        return data
