from __future__ import annotations

from django.http import HttpRequest
from allauth.account.adapter import DefaultAccountAdapter


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # No public sign-up: org admins add people (and SSO federation, in its own issue).
        return False
