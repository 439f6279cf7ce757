from __future__ import annotations

import uuid
import zoneinfo

from django.core.exceptions import ValidationError
from django.db import models


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone (e.g. Europe/Helsinki)")


class Organization(models.Model):
    """A customer (tenant). Every tenant row points here; users belong to exactly one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    require_mfa = models.BooleanField(
        default=False, help_text="Every member must enrol a second factor before using dashvault."
    )
    # IP filter (DESIGN C6), set by platform staff: CIDR strings; empty means no filter.
    allowed_networks = models.JSONField(default=list, blank=True)
    # Single sign-on (dashvault.sso): first-time SSO users of an allowed domain are created
    # (federation); password sign-in may be turned off except for one break-glass admin.
    # Platform staff's access grants (dashvault.grants) wait for an org admin's approval.
    grant_approval_required = models.BooleanField(default=False)
    sso_federation = models.BooleanField(default=False)
    password_signin = models.BooleanField(default=True)
    break_glass = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class DataKey(models.Model):
    """An organization's AES-256 data key, stored only wrapped by a master key (lib.crypto)."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="data_keys")
    version = models.PositiveIntegerField()
    wrapped = models.BinaryField()
    master_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "version"], name="datakey_org_version"),
        ]

    def __str__(self) -> str:
        return f"data key {self.version} of {self.org_id}"


class Group(models.Model):
    """A set of users granted a set of dashboards; members see the union of their groups'."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=120)
    members = models.ManyToManyField("accounts.User", related_name="dashboard_groups", blank=True)
    dashboards = models.ManyToManyField(
        "dashboards.Dashboard", related_name="granted_to", blank=True
    )
    sso_default = models.BooleanField(
        default=False, help_text="People created by SSO federation join this group."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["org", "name"], name="group_org_name")]
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="group_unique_name_per_org"),
        ]

    def __str__(self) -> str:
        return self.name
