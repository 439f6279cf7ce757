from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context
from allauth.mfa.models import Authenticator
from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from dashvault.accounts.models import Role, normalize_email
from dashvault.sso.models import EmailDomain

SSO_ONLY = "Your organization signs in with single sign-on. Use “Sign in with SSO” below."
BREAK_GLASS_MFA = (
    "This break-glass account must have two-factor authentication before it can sign in."
)


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # No public sign-up: org admins add people (and SSO federation, in its own issue).
        return False

    def is_safe_url(self, url: str) -> bool:
        # `next` after sign-in, sign-out and SSO: this host over HTTPS only. allauth's default
        # also admits every ALLOWED_HOSTS entry (subdomain wildcards included) and plain http.
        return url_has_allowed_host_and_scheme(
            url, allowed_hosts={context.request.get_host()}, require_https=True
        )

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # The per-account failure count ("5/5m/key") must be one count per account. allauth
        # prefixes the key with the current site's domain, which without django.contrib.sites
        # is the request's Host header, port included: every allowed host name or port started
        # a fresh count (lockout bypass), and processes reached on different addresses never
        # shared one. (Private allauth hook, pinned version: tests/test_throttle_processes.py.)
        login = credentials.get("email", credentials.get("username", ""))
        return f"account:{normalize_email(str(login))}"

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        super().pre_authenticate(request, **credentials)  # failed-sign-in throttling first
        # Before the password is checked, by the domain typed (so it says nothing about
        # which accounts exist): an SSO-only org's people sign in with SSO, except its one
        # break-glass admin.
        email = normalize_email(str(credentials.get("email", "")))
        if password_signin_refused(email):
            raise forms.ValidationError(SSO_ONLY)

    def pre_login(self, request: HttpRequest, user: Any, **kwargs: Any) -> HttpResponse | None:
        signal_kwargs = kwargs.get("signal_kwargs") or {}
        org = getattr(user, "org", None)
        if "sociallogin" not in signal_kwargs and org is not None and not org.password_signin:
            # Also for addresses outside the org's SSO domains, which pre_authenticate
            # cannot recognize: only the break-glass admin, and only with a second factor.
            # The exception is for an admin: a break-glass account demoted since (by a role
            # mapping at an SSO sign-in, or by another admin) loses it.
            if user.pk != org.break_glass_id or user.role != Role.ADMIN:
                return _refuse_login(request, SSO_ONLY)
            if not Authenticator.objects.filter(user_id=user.pk).exists():
                return _refuse_login(request, BREAK_GLASS_MFA)
        return super().pre_login(request, user, **kwargs)


def password_signin_refused(email: str) -> bool:
    """Whether `email` is at a domain of an org with password sign-in off, and is not that
    org's break-glass account (while it is an admin)."""
    if "@" not in email:
        return False
    domain = (
        EmailDomain.objects.select_related("org").filter(domain=email.rsplit("@", 1)[1]).first()
    )
    if domain is None or domain.org.password_signin:
        return False
    glass = domain.org.break_glass
    return glass is None or glass.email != email or glass.role != Role.ADMIN


def _refuse_login(request: HttpRequest, message: str) -> HttpResponse:
    from allauth.account.internal.stagekit import clear_login

    clear_login(request)
    messages.error(request, message)
    return redirect("account_login")
