"""Who may finish an SSO sign-in, as whom, and with which groups (allauth's pre_social_login).

Security contract, in this order, before anyone is signed in or created:
1. The identity provider named in the callback must be one of ours and enabled.
2. Azure AD: the ID token's `tid` must be the org's directory (allauth has already checked
   the signature, audience and the tenant-specific issuer); Google: `hd` must equal the
   configured hosted domain (the `hd` request parameter is only a hint to Google).
3. The e-mail must be verified where the provider says so (Google), and its domain one of the
   org's SSO domains.
4. A known identity (provider + uid: Azure tid + oid, Google sub) signs in as the user it was
   linked to, if that user is an active member of this org.
5. An unknown identity: an account with the e-mail in this org is linked only if an admin
   allowed it SSO (`User.sso_allowed`): an IdP-asserted address never takes over a password
   account by itself. With no account: federation on creates a viewer in the org's default
   groups (just in time); federation off refuses. An address of another org, or of staff, is
   refused.
Every refusal answers 403 with a plain sentence, creates nothing and is audited by ids
(`sso.refused` with a reason code); JIT creation and sign-ins are audited too. Then the
org's claim mappings set the person's mapped groups and role (`apply_mappings`), every time.
"""

from __future__ import annotations

from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.models import SocialAccount, SocialLogin
from django.db import transaction
from django.http import HttpRequest
from django.shortcuts import render

from dashvault import audit
from dashvault.accounts.models import Role, User, normalize_email
from dashvault.orgs.models import Group
from dashvault.sso.models import ClaimMapping, EmailDomain, IdentityProvider, Kind
from dashvault.sso.providers import provider_by_id

REFUSALS = {
    "unknown_provider": "This sign-in link is not set up (any more). Sign in from the start.",
    "wrong_tenant": "Your Microsoft account belongs to another organization's directory.",
    "wrong_hosted_domain": "Your Google account is not in your organization's Google Workspace.",
    "email_missing": "Your identity provider did not tell us a verified e-mail address.",
    "domain_not_allowed": "Your e-mail domain is not allowed to sign in to this organization.",
    "not_added": "You do not have an account yet. Ask your organization's admin to add you.",
    "not_linked": "An account with your address exists but is not set up for single sign-on. "
    "Ask your organization's admin to allow it.",
    "inactive": "Your account is deactivated. Ask your organization's admin.",
    "other_identity": "An account with your address is already linked to another identity "
    "at your provider. Ask your organization's admin.",
    "elsewhere": "Your address belongs to an account that cannot sign in here.",
}
ROLE_ORDER = [Role.VIEWER, Role.EDITOR, Role.ADMIN]


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def refuse(request: HttpRequest, idp: IdentityProvider | None, reason: str) -> None:
    """Audit the refusal (ids and a reason code) and stop the sign-in with a 403 page."""
    audit.record(
        "sso.refused",
        org=idp.org_id if idp else None,
        actor_kind="anonymous",
        target=idp,
        ip=client_ip(request),
        reason=reason,
    )
    response = render(
        request, "sso/refused.html", {"message": REFUSALS[reason], "reason": reason}, status=403
    )
    raise ImmediateHttpResponse(response)


def claims_of(sociallogin: SocialLogin) -> dict[str, Any]:
    data = sociallogin.account.extra_data or {}
    token = data.get("id_token", data)
    return token if isinstance(token, dict) else {}


def admit(request: HttpRequest, sociallogin: SocialLogin) -> None:
    """The module's contract: returns with `sociallogin` bound to the user to sign in, or
    raises ImmediateHttpResponse (a refusal)."""
    idp = provider_by_id(sociallogin.account.provider)
    if idp is None:
        refuse(request, None, "unknown_provider")
    assert idp is not None
    org = idp.org
    claims = claims_of(sociallogin)
    if idp.kind == Kind.AZURE:
        if not idp.tenant_id or str(claims.get("tid", "")) != idp.tenant_id:
            refuse(request, idp, "wrong_tenant")
    elif idp.hosted_domain and str(claims.get("hd", "")).lower() != idp.hosted_domain:
        refuse(request, idp, "wrong_hosted_domain")
    email = normalize_email(str(claims.get("email") or ""))
    if "@" not in email or (idp.kind == Kind.GOOGLE and claims.get("email_verified") is not True):
        refuse(request, idp, "email_missing")
    domain = email.rsplit("@", 1)[1]
    if not EmailDomain.objects.filter(org=org, domain=domain).exists():
        refuse(request, idp, "domain_not_allowed")

    if sociallogin.is_existing:
        user = sociallogin.user
        if user.org_id != org.pk:  # type: ignore[union-attr]
            refuse(request, idp, "elsewhere")
        if not user.is_active:
            refuse(request, idp, "inactive")
    else:
        user = _link_or_create(request, idp, email, sociallogin)
    apply_mappings(user, org, claims)  # type: ignore[arg-type]
    audit.record(
        "sso.signin", org=org, actor=user, target=idp, ip=client_ip(request), kind=idp.kind
    )


def _link_or_create(
    request: HttpRequest, idp: IdentityProvider, email: str, sociallogin: SocialLogin
) -> User:
    org = idp.org
    existing = User.objects.filter(email=email).first()
    if existing is not None:
        if existing.org_id != org.pk:
            refuse(request, idp, "elsewhere")
        if not existing.sso_allowed:
            refuse(request, idp, "not_linked")
        if not existing.is_active:
            refuse(request, idp, "inactive")
        if SocialAccount.objects.filter(user=existing, provider=idp.provider_id).exists():
            # Linked already: people are keyed on the provider's immutable id (tid + oid,
            # sub), so another identity asserting the same (re-assigned) address is refused.
            refuse(request, idp, "other_identity")
        with transaction.atomic():
            sociallogin.connect(request, existing)
            audit.record("sso.link", org=org, actor=existing, target=idp, ip=client_ip(request))
        return existing
    if not org.sso_federation:
        refuse(request, idp, "not_added")
    with transaction.atomic():
        user = User.objects.create_user(email, org=org, role=Role.VIEWER, sso_allowed=True)
        for group in Group.objects.filter(org=org, sso_default=True):
            group.members.add(user)
        sociallogin.connect(request, user)
        audit.record("sso.jit_create", org=org, actor=user, target=idp, ip=client_ip(request))
    return user


def apply_mappings(user: User, org: Any, claims: dict[str, Any]) -> None:
    """Set the user's mapped groups and role from the token's `groups` and `roles` claims.

    A group that has a mapping holds the user exactly while one of its values is in the
    token; groups without mappings are left as admins set them. When the org maps roles, the
    user gets the highest role matched (viewer when none), except that the org's last active
    admin is never demoted this way. Removals close the user's screens (live receivers)."""
    values = {str(v) for key in ("groups", "roles") for v in _as_list(claims.get(key))}
    mappings = list(ClaimMapping.objects.filter(org=org).select_related("group"))
    if not mappings:
        return
    mapped_groups = {m.group for m in mappings if m.group is not None}
    wanted = {m.group for m in mappings if m.group is not None and m.value in values}
    with transaction.atomic():
        current = set(user.dashboard_groups.filter(org=org))  # type: ignore[attr-defined]
        added = [g for g in mapped_groups if g in wanted and g not in current]
        removed = [g for g in mapped_groups if g not in wanted and g in current]
        for group in added:
            group.members.add(user)
        for group in removed:
            group.members.remove(user)
        role = _mapped_role(mappings, values)
        changed_role = role is not None and role != user.role and _may_change(user, role)
        if changed_role and role is not None:
            user.role = role
            user.save(update_fields=["role"])
        if added or removed or changed_role:
            audit.record(
                "sso.mapping_applied",
                org=org,
                actor=user,
                target=user,
                added=len(added),
                removed=len(removed),
                role=user.role,
            )


def _mapped_role(mappings: list[ClaimMapping], values: set[str]) -> str | None:
    role_mappings = [m for m in mappings if m.role]
    if not role_mappings:
        return None
    matched = [m.role for m in role_mappings if m.value in values]
    return max(matched, key=lambda role: ROLE_ORDER.index(Role(role))) if matched else Role.VIEWER


def _may_change(user: User, role: str) -> bool:
    if user.role != Role.ADMIN or role == Role.ADMIN:
        return True
    others = User.objects.filter(org=user.org_id, role=Role.ADMIN, is_active=True)
    return others.exclude(pk=user.pk).exists()


def _as_list(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return list(value)
    return [value] if isinstance(value, str) and value else []
