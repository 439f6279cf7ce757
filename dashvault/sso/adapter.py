"""allauth's social-account hooks, pointed at dashvault's per-org identity providers."""

from __future__ import annotations

from typing import Any

from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from django.http import HttpRequest

from dashvault import audit
from dashvault.sso import providers, signin


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(
        self, request: HttpRequest, provider: Any = None, client_id: Any = None
    ) -> list[SocialApp]:
        # Apps come from dashvault.sso.models only, never from allauth's tables or settings.
        apps = providers.apps(provider)
        return [a for a in apps if client_id is None or a.client_id == client_id]

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        # Accounts are made by signin.admit (federation) or by admins, never by allauth.
        return False

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        signin.admit(request, sociallogin)

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: Any = None,
        exception: Any = None,
        extra_context: Any = None,
    ) -> None:
        # A forged or replayed state, a denied consent, a failed token exchange: audited by
        # reason code; allauth shows its error page and nobody is signed in.
        provider_id = getattr(getattr(provider, "app", None), "provider_id", None)
        idp = providers.provider_by_id(provider_id, enabled_only=False)
        audit.record(
            "sso.refused",
            org=idp.org_id if idp else None,
            actor_kind="anonymous",
            target=idp,
            ip=signin.client_ip(request),
            reason=str(error or "error")[:40],
        )
