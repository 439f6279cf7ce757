from __future__ import annotations

from django.db import models


class AuditEntry(models.Model):
    """One audited event: ids, an action name, a time and an address. Nothing about a person.

    Append-only. Entries of one organization (org set) or of the platform (org null) will form
    one keyed hash chain each (audit issue): `id` gives the append order within the table.
    """

    id = models.BigAutoField(primary_key=True)
    org = models.ForeignKey(
        "orgs.Organization",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        # No FK constraint: entries outlive a deleted org (its erasure is itself audited).
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=64)
    actor_kind = models.CharField(max_length=16)  # user | staff | system | anonymous
    actor_id = models.UUIDField(null=True, blank=True)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)  # ids and enum values only

    class Meta:
        indexes = [models.Index(fields=["org", "id"], name="audit_org_id")]

    def __str__(self) -> str:
        return f"{self.id} {self.action}"
