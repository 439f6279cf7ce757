from __future__ import annotations

import uuid

from django.db import models


class Dashboard(models.Model):
    """A dashboard of an organization. Widgets come with the metrics issue."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]
        indexes = [models.Index(fields=["org", "title"], name="dashboard_org_title")]

    def __str__(self) -> str:
        return self.title
