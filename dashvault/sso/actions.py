"""Changes to an org's single sign-on: each audited (ids only) in the same transaction."""

from __future__ import annotations

import re
from collections.abc import Iterable

from allauth.mfa.models import Authenticator
from django.core.exceptions import ValidationError
from django.db import transaction

from dashvault import audit
from dashvault.accounts.models import Role, User
from dashvault.orgs.keys import encrypt_field
from dashvault.orgs.models import Group, Organization
from dashvault.sso.models import ClaimMapping, EmailDomain, IdentityProvider, Kind

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
TENANT_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def normalize_domains(lines: Iterable[str]) -> list[str]:
    """Lowercase domains, "@" and blanks dropped; raises ValidationError naming a bad one."""
    domains: list[str] = []
    for item in lines:
        domain = item.strip().lower().lstrip("@")
        if not domain:
            continue
        if not DOMAIN_RE.match(domain):
            raise ValidationError({"domains": f"{item.strip()!r} is not a domain name."})
        if domain not in domains:
            domains.append(domain)
    return domains


def do_save_provider(
    org: Organization,
    kind: str,
    *,
    client_id: str,
    client_secret: str | None,
    tenant_id: str = "",
    hosted_domain: str = "",
    enabled: bool = True,
    acting: User,
    ip: str | None,
) -> IdentityProvider:
    """Create or change the org's provider of `kind`. A new secret (None keeps the stored
    one) is sealed with the org's data key bound to this row; it is never returned."""
    errors: dict[str, str] = {}
    tenant_id = tenant_id.strip().lower()
    hosted_domain = hosted_domain.strip().lower()
    if kind not in Kind.values:
        errors["kind"] = "Choose Google or Azure AD."
    if not client_id.strip():
        errors["client_id"] = "Enter the client id."
    if kind == Kind.AZURE and not TENANT_RE.match(tenant_id):
        errors["tenant_id"] = "Enter the directory (tenant) id: a GUID from Azure."
    if kind == Kind.GOOGLE and hosted_domain and not DOMAIN_RE.match(hosted_domain):
        errors["hosted_domain"] = "Enter a domain name, e.g. example.com."
    idp = IdentityProvider.objects.filter(org=org, kind=kind).first()
    if idp is None and not client_secret:
        errors["client_secret"] = "Enter the client secret."  # noqa: S105  (a message)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        created = idp is None
        if idp is None:
            idp = IdentityProvider(org=org, kind=kind)
        idp.client_id = client_id.strip()
        idp.tenant_id = tenant_id if kind == Kind.AZURE else ""
        idp.hosted_domain = hosted_domain if kind == Kind.GOOGLE else ""
        idp.enabled = enabled
        idp.save()
        if client_secret:
            idp.client_secret = encrypt_field(
                org,
                table="sso_identityprovider",
                column="client_secret",
                row_id=idp.pk,
                plaintext=client_secret,
            )
            idp.save(update_fields=["client_secret"])
        audit.record(
            "sso.provider_create" if created else "sso.provider_update",
            org=org,
            actor=acting,
            target=idp,
            ip=ip,
            kind=kind,
            enabled=enabled,
            secret_changed=bool(client_secret),
        )
    return idp


def do_delete_provider(idp: IdentityProvider, *, acting: User, ip: str | None) -> None:
    with transaction.atomic():
        audit.record("sso.provider_delete", org=idp.org_id, actor=acting, target=idp, ip=ip)
        idp.delete()


def do_save_sso_settings(
    org: Organization,
    *,
    domains: Iterable[str],
    federation: bool,
    password_signin: bool,
    break_glass: User | None,
    default_groups: Iterable[Group],
    acting: User,
    ip: str | None,
) -> None:
    """The org-wide SSO choices. Federation needs at least one domain (else anyone with an
    account at the provider could join); turning password sign-in off needs a break-glass
    admin of this org with a second factor and a password, so the org cannot lock itself out.
    """
    clean = normalize_domains(domains)
    groups = list(default_groups)
    errors: dict[str, str] = {}
    taken = EmailDomain.objects.filter(domain__in=clean).exclude(org=org)
    if taken.exists():
        errors["domains"] = f"{taken.first().domain} is used by another organization."  # type: ignore[union-attr]
    if federation and not clean:
        errors["federation"] = "Federation needs at least one allowed e-mail domain."
    if break_glass is not None and (break_glass.org_id != org.pk or break_glass.role != Role.ADMIN):
        errors["break_glass"] = "Choose an admin of this organization."
    elif not password_signin:
        if break_glass is None:
            errors["break_glass"] = "Choose a break-glass admin before turning passwords off."
        elif not Authenticator.objects.filter(user_id=break_glass.pk).exists():
            errors["break_glass"] = (
                "The break-glass admin must set up two-factor authentication first."
            )
        elif not break_glass.has_usable_password():
            errors["break_glass"] = "The break-glass admin must have a password."
    if any(g.org_id != org.pk for g in groups):
        errors["default_groups"] = "Choose groups of this organization."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        EmailDomain.objects.filter(org=org).exclude(domain__in=clean).delete()
        for domain in clean:
            EmailDomain.objects.get_or_create(org=org, domain=domain)
        org.sso_federation = federation
        org.password_signin = password_signin
        org.break_glass = break_glass
        org.save(update_fields=["sso_federation", "password_signin", "break_glass"])
        Group.objects.filter(org=org).exclude(pk__in=[g.pk for g in groups]).update(
            sso_default=False
        )
        Group.objects.filter(org=org, pk__in=[g.pk for g in groups]).update(sso_default=True)
        audit.record(
            "sso.settings",
            org=org,
            actor=acting,
            target=org,
            ip=ip,
            domains=len(clean),
            federation=federation,
            password_signin=password_signin,
            break_glass=break_glass.pk if break_glass else None,
            default_groups=len(groups),
        )


def do_add_mapping(
    org: Organization,
    *,
    value: str,
    group: Group | None,
    role: str,
    acting: User,
    ip: str | None,
) -> ClaimMapping:
    value = value.strip()
    errors: dict[str, str] = {}
    if not value or len(value) > 255:
        errors["value"] = "Enter the group object id or app role value from the token."
    if group is None and not role:
        errors["group"] = "Choose a group, a role, or both."
    if group is not None and group.org_id != org.pk:
        errors["group"] = "Choose a group of this organization."
    if role and role not in Role.values:
        errors["role"] = "Unknown role."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        mapping, _ = ClaimMapping.objects.get_or_create(
            org=org, value=value, group=group, defaults={"role": role}
        )
        if mapping.role != role:
            mapping.role = role
            mapping.save(update_fields=["role"])
        audit.record(
            "sso.mapping_add",
            org=org,
            actor=acting,
            target=group,
            ip=ip,
            mapping=mapping.pk,
            role=role,
        )
    return mapping


def do_delete_mapping(mapping: ClaimMapping, *, acting: User, ip: str | None) -> None:
    with transaction.atomic():
        audit.record(
            "sso.mapping_delete", org=mapping.org_id, actor=acting, ip=ip, mapping=mapping.pk
        )
        mapping.delete()


def do_set_sso_allowed(user: User, allowed: bool, *, acting: User, ip: str | None) -> None:
    """Let a member sign in with SSO (their IdP identity is linked at their first SSO
    sign-in, by e-mail), or stop it (their linked identities are removed)."""
    with transaction.atomic():
        user.sso_allowed = allowed
        user.save(update_fields=["sso_allowed"])
        if not allowed:
            from allauth.socialaccount.models import SocialAccount

            SocialAccount.objects.filter(user=user).delete()
        audit.record(
            "user.sso_allow" if allowed else "user.sso_disallow",
            org=user.org_id,
            actor=acting,
            target=user,
            ip=ip,
        )
