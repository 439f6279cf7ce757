from __future__ import annotations

from typing import Any

from allauth.account.auth_backends import AuthenticationBackend as AllauthBackend

from dashvault.accounts.models import User


class AuthenticationBackend(AllauthBackend):
    """allauth's backend, loading the signed-in user together with their organization.

    Every request resolves a principal (user → org); one joined query instead of two on each
    request, including the dashboard data endpoint that screens poll.
    """

    def get_user(self, user_id: Any) -> User | None:
        try:
            user = User.objects.select_related("org").get(pk=user_id)
        except (User.DoesNotExist, ValueError):
            return None
        return user if self.user_can_authenticate(user) else None
