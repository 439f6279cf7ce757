"""Single sign-on per organization: its identity providers and how their claims map to groups.

The org-wide choices (allowed e-mail domains, federation, password sign-in, the break-glass
admin) live on orgs.Organization; default groups are flagged on orgs.Group.
"""

from __future__ import annotations

import uuid

from django.db import models

from dashvault.accounts.models import Role


class Kind(models.TextChoices):
    GOOGLE = "google", "Google"
    AZURE = "azure", "Azure AD (Microsoft Entra ID)"


class IdentityProvider(models.Model):
    """One OpenID Connect client registration of an org (at most one per kind). The id is the
    `provider_id` in the callback URL the admin registers: /accounts/oidc/<id>/login/callback/.
    The client secret is stored only sealed with the org's data key (orgs.keys.encrypt_field,
    bound to this row) and is never shown again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    client_id = models.CharField(max_length=255)
    client_secret = models.BinaryField()  # sealed; empty until set
    tenant_id = models.CharField(max_length=64, blank=True)  # Azure: the directory (tid)
    hosted_domain = models.CharField(max_length=253, blank=True)  # Google: the `hd` claim
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind"]
        indexes = [models.Index(fields=["org", "kind"], name="idp_org_kind")]
        constraints = [
            models.UniqueConstraint(fields=["org", "kind"], name="idp_one_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.org_id}"

    @property
    def provider_id(self) -> str:
        return str(self.pk)


class ClaimMapping(models.Model):
    """A value of the ID token's `groups` or `roles` claim (an Azure AD group object id or an
    app role) that puts a person in a dashvault group and/or gives them a role, at every SSO
    sign-in. A person is in a mapped group exactly while one of its values is in their token."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    value = models.CharField(max_length=255)
    group = models.ForeignKey("orgs.Group", null=True, blank=True, on_delete=models.CASCADE)
    role = models.CharField(max_length=10, choices=Role.choices, blank=True)

    class Meta:
        ordering = ["value"]
        indexes = [models.Index(fields=["org", "value"], name="claimmap_org_value")]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "value", "group"], name="claimmap_unique_value_group"
            ),
        ]

    def __str__(self) -> str:
        return self.value


class EmailDomain(models.Model):
    """An e-mail domain whose people sign in with the org's SSO. A domain belongs to one org:
    the sign-in page finds the org by the domain of the address typed."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    domain = models.CharField(max_length=253, unique=True)  # lowercase, no leading "@"

    class Meta:
        ordering = ["domain"]
        indexes = [models.Index(fields=["org", "domain"], name="emaildomain_org_domain")]

    def __str__(self) -> str:
        return self.domain
