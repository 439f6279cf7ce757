from __future__ import annotations

import uuid

from django.db import models


class Scope(models.TextChoices):
    PUSH = "push", "Push data and manage metrics"
    READ = "read", "Read metrics and series"
    INTEGRATIONS = "integrations", "Manage integrations (settings and write-only credentials)"


class ApiToken(models.Model):
    """An org API token. Only the SHA-256 of the token is stored; it is shown once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=12)  # first characters, to recognise it in lists
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["org", "created_at"], name="apitoken_org_created")]

    def __str__(self) -> str:
        return f"{self.prefix}…"


class IdempotencyRecord(models.Model):
    """The answer given to a request with an Idempotency-Key, replayed on retries."""

    id = models.BigAutoField(primary_key=True)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "key"], name="idempotency_unique_key"),
        ]

    def __str__(self) -> str:
        return self.key
