from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from dashvault.accounts.models import normalize_email


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # No public sign-up: org admins add people (and SSO federation, in its own issue).
        return False

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # The per-account failure count ("5/5m/key") must be one count per account. allauth
        # prefixes the key with the current site's domain, which without django.contrib.sites
        # is the request's Host header, port included: every allowed host name or port started
        # a fresh count (lockout bypass), and processes reached on different addresses never
        # shared one. (Private allauth hook, pinned version: tests/test_throttle_processes.py.)
        login = credentials.get("email", credentials.get("username", ""))
        return f"account:{normalize_email(str(login))}"
