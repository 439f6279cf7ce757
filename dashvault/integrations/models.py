"""An organization's integrations (a connector, its settings, its sealed credential) and the
record of each sync run."""

from __future__ import annotations

import uuid

from django.db import models


class Kind(models.TextChoices):
    REST = "rest", "JSON REST API"
    CSV = "csv", "CSV file by URL"
    HUBSPOT = "hubspot", "HubSpot (deals)"
    PIPEDRIVE = "pipedrive", "Pipedrive (deals)"
    SALESFORCE = "salesforce", "Salesforce (SOQL query)"


class Integration(models.Model):
    """One connector of one org, feeding one metric.

    `config` holds the non-secret settings (address, where the records are, field mapping,
    pagination, how to authenticate); the secret (API key, token, password or OAuth2 client
    secret) is only in `credential`, sealed with the org's data key bound to this row
    (orgs.keys.encrypt_field), never shown again and opened only inside a sync.
    `allow_http` is platform staff's exception, at the customer's request, for this one
    integration. `state` is the connector's incremental cursor.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    metric = models.ForeignKey("metrics.Metric", on_delete=models.CASCADE, related_name="+")
    config = models.JSONField(default=dict)
    credential = models.BinaryField(default=b"")  # sealed; empty: none set
    ca_pem = models.TextField(blank=True)  # the org's own CA for this service, if any
    allow_http = models.BooleanField(default=False)
    every_minutes = models.PositiveIntegerField(default=15)
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=200, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    running_since = models.DateTimeField(null=True, blank=True)  # claimed by a sync
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)  # consecutive failed runs
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["org", "name"], name="integration_org_name"),
            models.Index(fields=["enabled", "next_run_at"], name="integration_due"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_credential(self) -> bool:
        return bool(self.credential)

    @property
    def failing(self) -> bool:
        """Flagged in the UI: three runs in a row failed."""
        return self.failures >= 3


class SyncRun(models.Model):
    """One run of an integration's sync: when, how long, what came of it. `error` is a
    sentence for people (no credential, no response body, nothing about a person)."""

    id = models.BigAutoField(primary_key=True)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="runs")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    full = models.BooleanField(default=False)
    ok = models.BooleanField(default=False)
    records = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["org", "integration", "-started_at"], name="syncrun_recent")
        ]

    def __str__(self) -> str:
        return f"{self.integration_id} {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
