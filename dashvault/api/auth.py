"""Bearer-token authentication for /api/v1/: the token's principal, or 401."""

from __future__ import annotations

import datetime as dt

from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from dashvault.api.models import ApiToken
from dashvault.lib.tokens import hash_token
from dashvault.policy.principal import TokenPrincipal

TOKEN_PREFIX = "dvp_"  # noqa: S105  (a public marker, not a secret)
TOUCH_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most once a minute


def principal_for_token(token: str, ip: str | None) -> TokenPrincipal | None:
    """The principal of a live token, or None for an unknown, revoked or expired one.

    Security contract: only the SHA-256 of the presented token is looked up; unknown, revoked
    and expired tokens are indistinguishable to the caller.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    try:
        stored = ApiToken.objects.select_related("org").get(token_hash=hash_token(token))
    except ApiToken.DoesNotExist:
        return None
    now = timezone.now()
    if stored.revoked_at is not None or (stored.expires_at and stored.expires_at <= now):
        return None
    if stored.last_used_at is None or now - stored.last_used_at > TOUCH_EVERY:
        ApiToken.objects.filter(pk=stored.pk).update(last_used_at=now)
    return TokenPrincipal(stored, stored.org, frozenset(stored.scopes), ip)


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> TokenPrincipal | None:
        return principal_for_token(token, request.META.get("REMOTE_ADDR"))
