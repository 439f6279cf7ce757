from __future__ import annotations

import uuid

from django.db import models


class Dashboard(models.Model):
    """A dashboard of an organization: a grid of widgets (below)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]
        indexes = [models.Index(fields=["org", "title"], name="dashboard_org_title")]

    def __str__(self) -> str:
        return self.title


class WidgetKind(models.TextChoices):
    KPI = "kpi", "Big number (KPI)"
    LINE = "line", "Line chart"
    BAR = "bar", "Bar chart"
    LEADERBOARD = "leaderboard", "Leaderboard"
    GAUGE = "gauge", "Gauge"
    TEXT = "text", "Text"


class Widget(models.Model):
    """One tile of a dashboard, placed on a 12-column grid.

    `config` holds the kind's options, validated by dashboards.widgets before saving:
    period, bucket, per-dimension series, target, top N, aggregation override, text.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="widgets")
    kind = models.CharField(max_length=12, choices=WidgetKind.choices)
    title = models.CharField(max_length=120, blank=True)
    metric = models.ForeignKey(
        # PROTECT: deleting a metric that a widget shows is refused (409) rather than silently
        # emptying dashboards.
        "metrics.Metric",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    config = models.JSONField(default=dict, blank=True)
    x = models.PositiveSmallIntegerField(default=0)
    y = models.PositiveSmallIntegerField(default=0)
    w = models.PositiveSmallIntegerField(default=4)
    h = models.PositiveSmallIntegerField(default=2)

    class Meta:
        ordering = ["y", "x"]
        indexes = [models.Index(fields=["org", "dashboard"], name="widget_org_dashboard")]

    def __str__(self) -> str:
        return self.title or self.kind
