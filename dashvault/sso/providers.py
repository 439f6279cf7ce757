"""allauth apps built from the orgs' identity providers (never stored as allauth SocialApps).

Both kinds use allauth's generic OpenID Connect provider, with discovery:
- Azure AD: the tenant-specific authority (`SSO_AZURE_URL`, `{tenant}` replaced by the org's
  directory id), so allauth checks the ID token's issuer against that tenant's; people are
  keyed by `oid` under a provider bound to one tenant (tid + oid), never by e-mail.
- Google: `SSO_GOOGLE_URL`; people are keyed by `sub`.
PKCE is on (SOCIALACCOUNT_PROVIDERS). Claims are read from the ID token itself (no userinfo
call): Azure's `tid`, `oid`, `groups` and `roles` are only there.
"""

from __future__ import annotations

import uuid

from allauth.socialaccount.models import SocialApp
from django.conf import settings
from django.urls import reverse

from dashvault.orgs.keys import decrypt_field
from dashvault.sso.models import IdentityProvider, Kind

OIDC = "openid_connect"


def server_url(idp: IdentityProvider) -> str:
    if idp.kind == Kind.AZURE:
        return str(settings.SSO_AZURE_URL).replace("{tenant}", idp.tenant_id)
    return str(settings.SSO_GOOGLE_URL)


def client_secret(idp: IdentityProvider) -> str:
    """The decrypted client secret, in memory only, for the token request."""
    if not idp.client_secret:
        return ""
    return decrypt_field(
        idp.org,
        table="sso_identityprovider",
        column="client_secret",
        row_id=idp.pk,
        blob=bytes(idp.client_secret),
    )


def social_app(idp: IdentityProvider) -> SocialApp:
    """An unsaved allauth app for `idp`: allauth looks it up by its provider_id (our id)."""
    return SocialApp(
        provider=OIDC,
        provider_id=idp.provider_id,
        name=f"{idp.get_kind_display()}",
        client_id=idp.client_id,
        secret=client_secret(idp),
        settings={
            "server_url": server_url(idp),
            "uid_field": "oid" if idp.kind == Kind.AZURE else "sub",
            "fetch_userinfo": False,
        },
    )


def apps(provider: str | None = None) -> list[SocialApp]:
    """Apps of enabled identity providers: all, or the one whose provider_id is `provider`."""
    providers = IdentityProvider.objects.select_related("org").filter(enabled=True)
    if provider is not None and provider != OIDC:
        try:
            providers = providers.filter(pk=uuid.UUID(str(provider)))
        except ValueError:
            return []  # not one of ours: allauth answers 404
    return [social_app(idp) for idp in providers]


def login_url(idp: IdentityProvider) -> str:
    return reverse("openid_connect_login", kwargs={"provider_id": idp.provider_id})


def provider_by_id(provider_id: object, *, enabled_only: bool = True) -> IdentityProvider | None:
    """The identity provider whose allauth provider_id this is (None for anything else)."""
    try:
        pk = uuid.UUID(str(provider_id))
    except ValueError:
        return None
    found = IdentityProvider.objects.select_related("org").filter(pk=pk)
    if enabled_only:
        found = found.filter(enabled=True)
    return found.first()
