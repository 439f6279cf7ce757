"""Access grants: how platform staff see a customer's dashboards (DESIGN C10).

A staff member opens a grant for one organization with a reason and a ticket reference, for at
most GRANT_MAX_MINUTES. While it is active they may view (never edit) that org's dashboards,
and every page and socket they open is written to the org's audit log. An org may require its
admin's approval before a grant starts.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class Reason(models.TextChoices):
    SUPPORT = "support", "Support request from the customer"
    INCIDENT = "incident", "Incident investigation"
    SECURITY = "security", "Security review"
    BILLING = "billing", "Billing or account question"


class AccessGrant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    ticket = models.CharField(max_length=64)  # the support system's reference, no free text
    minutes = models.PositiveIntegerField()
    requested_at = models.DateTimeField(auto_now_add=True)
    approved_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    starts_at = models.DateTimeField(null=True, blank=True)  # None: waiting for approval
    expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)  # ended early, or denied

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["org", "requested_at"], name="grant_org_requested")]

    def __str__(self) -> str:
        return f"grant {self.pk}"

    @property
    def status(self) -> str:
        now = timezone.now()
        if self.ended_at is not None:
            return "ended" if self.starts_at else "denied"
        if self.starts_at is None:
            return "pending"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
