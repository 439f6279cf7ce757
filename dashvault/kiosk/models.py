"""Kiosk links: a revocable URL that shows a chosen set of an org's dashboards on a TV."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from dashvault.dashboards.models import Dashboard

MIN_ROTATION, MAX_ROTATION = 10, 3600  # seconds per dashboard in TV mode


class KioskLink(models.Model):
    """Only the SHA-256 of the link's token is stored; the full URL is shown once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)  # first characters, to recognise it in lists
    dashboards: models.ManyToManyField[Dashboard, KioskEntry] = models.ManyToManyField(
        "dashboards.Dashboard", through="KioskEntry", related_name="kiosk_links"
    )
    rotation_seconds = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(MIN_ROTATION), MaxValueValidator(MAX_ROTATION)]
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    # CIDR strings admitted on top of the org's own filter (policy.ipfilter); empty: no more.
    networks = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["org", "created_at"], name="kiosklink_org_created")]

    def __str__(self) -> str:
        return f"{self.prefix}…"

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"


class KioskEntry(models.Model):
    """One dashboard of a link, at its place in the rotation."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    link = models.ForeignKey(KioskLink, on_delete=models.CASCADE, related_name="entries")
    dashboard = models.ForeignKey(
        "dashboards.Dashboard", on_delete=models.CASCADE, related_name="kiosk_entries"
    )
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        indexes = [models.Index(fields=["org", "link"], name="kioskentry_org_link")]
        constraints = [
            models.UniqueConstraint(fields=["link", "dashboard"], name="kioskentry_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.link_id} #{self.position}"
