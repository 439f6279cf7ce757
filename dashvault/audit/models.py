from __future__ import annotations

from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    """One audited event: ids, an action name, a time and an address. Nothing about a person.

    Append-only. Entries of one organization (org set) or of the platform (org null) form one
    keyed hash chain each (`chain`: the org id, or "platform"): `seq` counts 1, 2, ... within
    the chain, `prev` is the previous entry's `mac`, and `mac` is the HMAC-SHA256 over the
    entry's canonical encoding (dashvault.lib.hashchain) under the audit key, which is kept
    outside the database. On PostgreSQL a trigger refuses UPDATE and DELETE.
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
    # Not auto_now_add: that would replace, on save, the time the entry's MAC was computed over.
    at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    action = models.CharField(max_length=64)
    actor_kind = models.CharField(max_length=16)  # user | staff | system | anonymous
    actor_id = models.UUIDField(null=True, blank=True)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)  # ids and enum values only
    chain = models.CharField(max_length=36, default="platform")
    seq = models.BigIntegerField(default=0)
    prev = models.CharField(max_length=64, default="")
    mac = models.CharField(max_length=64, default="")

    class Meta:
        indexes = [
            models.Index(fields=["org", "id"], name="audit_org_id"),
            # Verification reads a chain in append order, in batches from an id on.
            models.Index(fields=["chain", "id"], name="audit_chain_id"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="audit_chain_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.action}"


class AuditChainLock(models.Model):
    """One row per chain, locked FOR UPDATE by every append on PostgreSQL so concurrent
    writers of a chain queue instead of forking it (SQLite's IMMEDIATE transactions already
    serialize writers, so it has none). The chain's head is its newest entry."""

    chain = models.CharField(max_length=36, primary_key=True)

    def __str__(self) -> str:
        return self.chain


class AuditArchive(models.Model):
    """A run of a chain's oldest entries moved to an encrypted file (dashvault.audit.archive).
    The live chain continues from `last_seq`/`last_mac`; `sha256` pins the file."""

    id = models.BigAutoField(primary_key=True)
    chain = models.CharField(max_length=36)
    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    last_mac = models.CharField(max_length=64)
    file = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    pruned_at = models.DateTimeField(null=True, blank=True)  # file deleted by retention

    class Meta:
        ordering = ["chain", "first_seq"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "first_seq"], name="auditarchive_chain_first"),
        ]

    def __str__(self) -> str:
        return f"{self.chain} {self.first_seq}-{self.last_seq}"
