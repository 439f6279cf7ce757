"""Metrics, their raw data points, and the daily rollups every widget reads."""

from __future__ import annotations

import uuid

from django.core.validators import RegexValidator
from django.db import models

METRIC_KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
METRIC_KEY = RegexValidator(
    METRIC_KEY_PATTERN,
    "Use 1-64 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit.",
)


class Unit(models.TextChoices):
    NUMBER = "number", "Number"
    CURRENCY = "currency", "Currency"
    PERCENT = "percent", "Percent"
    DURATION = "duration", "Duration (seconds)"


class Aggregation(models.TextChoices):
    SUM = "sum", "Sum"
    COUNT = "count", "Count"
    AVERAGE = "average", "Average"
    MIN = "min", "Minimum"
    MAX = "max", "Maximum"
    LATEST = "latest", "Latest"


class Metric(models.Model):
    """A named series of data points of one organization."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64, validators=[METRIC_KEY])
    name = models.CharField(max_length=120)
    unit = models.CharField(max_length=10, choices=Unit.choices, default=Unit.NUMBER)
    currency = models.CharField(max_length=3, blank=True, help_text="ISO 4217 code, e.g. EUR")
    aggregation = models.CharField(
        max_length=10, choices=Aggregation.choices, default=Aggregation.SUM
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["org", "key"], name="metric_unique_key_per_org"),
        ]

    def __str__(self) -> str:
        return self.key


class DataPoint(models.Model):
    """One raw value. A point with an external id replaces the earlier point with that id."""

    id = models.BigAutoField(primary_key=True)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    metric = models.ForeignKey(Metric, on_delete=models.CASCADE, related_name="+")
    ts = models.DateTimeField()
    value = models.FloatField()
    dimension = models.CharField(max_length=120, blank=True, default="")
    # NULL, not "": points without an external id are exempt from the uniqueness constraint.
    external_id = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001

    class Meta:
        indexes = [models.Index(fields=["org", "metric", "ts"], name="point_org_metric_ts")]
        constraints = [
            models.UniqueConstraint(
                fields=["metric", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="point_unique_external_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric_id}@{self.ts.isoformat()}"


class Rollup(models.Model):
    """Aggregates of one metric, dimension and day (in the org's time zone).

    Kept exact on every insert, replacement and delete (metrics.ingest), so widgets read at
    most one row per day and dimension whatever the raw volume.
    """

    id = models.BigAutoField(primary_key=True)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    metric = models.ForeignKey(Metric, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    dimension = models.CharField(max_length=120, blank=True, default="")
    total = models.FloatField()
    count = models.PositiveIntegerField()
    minimum = models.FloatField()
    maximum = models.FloatField()
    latest_ts = models.DateTimeField()
    latest_value = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["org", "metric", "day"], name="rollup_org_metric_day")]
        constraints = [
            models.UniqueConstraint(
                fields=["metric", "day", "dimension"], name="rollup_unique_metric_day_dim"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric_id} {self.day} {self.dimension}"
