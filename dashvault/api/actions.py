"""API token lifecycle: create (shown once), revoke. Each change is audited."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from dashvault import audit
from dashvault.accounts.models import User
from dashvault.api.auth import TOKEN_PREFIX
from dashvault.api.models import ApiToken, Scope
from dashvault.lib.tokens import hash_token, new_token
from dashvault.orgs.models import Organization


def do_create_token(
    org: Organization,
    name: str,
    scopes: list[str],
    *,
    expires_at: dt.datetime | None,
    acting: User | None,
    ip: str | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the token itself, which is never stored or shown
    again (only its SHA-256 and a short prefix are kept)."""
    if not scopes or any(scope not in Scope.values for scope in scopes):
        raise ValidationError({"scopes": f"Choose from: {', '.join(Scope.values)}."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    secret = new_token(TOKEN_PREFIX)
    with transaction.atomic():
        token = ApiToken.objects.create(
            org=org,
            name=name.strip() or "API token",
            prefix=secret[: len(TOKEN_PREFIX) + 6],
            token_hash=hash_token(secret),
            scopes=sorted(set(scopes)),
            expires_at=expires_at,
            created_by=acting,
        )
        audit.record("token.create", org=org, actor=acting, target=token, ip=ip)
    return token, secret


def do_revoke_token(token: ApiToken, *, acting: User, ip: str | None) -> None:
    with transaction.atomic():
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit.record("token.revoke", org=token.org_id, actor=acting, target=token, ip=ip)
