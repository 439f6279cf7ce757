"""Bearer-token authentication for /api/v1/: the token's principal, or 401."""

from __future__ import annotations

import datetime as dt

from django.http import HttpRequest
from django.utils import timezone
from ninja.errors import HttpError
from ninja.security import HttpBearer

from dashvault.api.models import ApiToken
from dashvault.lib.tokens import hash_token
from dashvault.policy import guard, ipfilter
from dashvault.policy.principal import TokenPrincipal

TOKEN_PREFIX = "dvp_"  # noqa: S105  (a public marker, not a secret)
TOUCH_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most once a minute


def live_token(token: str) -> ApiToken | None:
    """The live token, or None for an unknown, revoked or expired one.

    Security contract: only the SHA-256 of the presented token is looked up; unknown, revoked
    and expired tokens are indistinguishable to the caller.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    stored = ApiToken.objects.select_related("org").filter(token_hash=hash_token(token)).first()
    if stored is None or stored.revoked_at is not None:
        return None
    if stored.expires_at and stored.expires_at <= timezone.now():
        return None
    return stored


def principal_for_token(token: str, ip: str | None) -> TokenPrincipal | None:
    """The principal of a live token presented from `ip`, or None (401).

    Security contract: a blocked address raises guard.Blocked (429) before any lookup; a bad
    token counts against the address (policy.guard); a live token from outside its org's
    networks raises AddressRefused (403, audited).
    """
    guard.check(ip)
    stored = live_token(token)
    if stored is None:
        guard.failed(ip, source="api", token=token)
        return None
    ipfilter.check_address(stored.org, ip, actor=stored, actor_kind="token")
    now = timezone.now()
    if stored.last_used_at is None or now - stored.last_used_at > TOUCH_EVERY:
        ApiToken.objects.filter(pk=stored.pk).update(last_used_at=now)
    return TokenPrincipal(stored, stored.org, frozenset(stored.scopes), ip)


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> TokenPrincipal | None:
        try:
            return principal_for_token(token, request.META.get("REMOTE_ADDR"))
        except guard.Blocked as exc:
            raise TooManyGuesses(exc.retry_after) from None
        except ipfilter.AddressRefused as exc:
            raise HttpError(403, str(exc)) from None


class TooManyGuesses(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after
