"""The audit log. Write through `audit.record(...)` only."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from dashvault.audit.models import AuditEntry

# No floats: PostgreSQL's jsonb gives some back changed (1e16 as 10000000000000000, -0.0 as
# 0.0), and the entry would then fail verification as changed for good.
_ALLOWED_DETAIL = (str, int, bool, type(None), uuid.UUID)


def record(
    action: str,
    *,
    org: Any = None,
    actor: Any = None,
    actor_kind: str | None = None,
    target: models.Model | None = None,
    ip: str | None = None,
    **detail: Any,
) -> AuditEntry:
    """Append one entry to its chain (the org's, or the platform's). Call inside the
    transaction of the change it describes.

    Security contract: stores only ids, the action name, the time and the IP address. `actor`
    and `target` are reduced to their primary keys; `detail` accepts only ids and enum-like
    scalars and refuses anything with an '@' so an e-mail address cannot slip in.
    """
    for key, value in detail.items():
        if not isinstance(value, _ALLOWED_DETAIL) or "@" in str(value):
            raise ValueError(f"audit detail {key!r} must be an id or enum value")
        if isinstance(value, uuid.UUID):
            detail[key] = str(value)
    if actor_kind is None:
        if actor is None:
            actor_kind = "system"
        else:
            actor_kind = _kind_of(actor)
    # Imported here: this package is imported while apps load, before models may be.
    from dashvault.audit.chain import append

    return append(
        org_id=getattr(org, "pk", org),
        action=action,
        actor_kind=actor_kind,
        actor_id=getattr(actor, "pk", actor),
        target_type=(target._meta.model_name or "") if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        ip=ip,
        detail=detail,
    )


def _kind_of(actor: Any) -> str:
    """How an actor object is labelled: platform staff, an API token (changes made through
    the API), or a user."""
    if getattr(actor, "is_platform_staff", False):
        return "staff"
    meta = getattr(actor, "_meta", None)
    if meta is not None and meta.label_lower == "api.apitoken":
        return "token"
    return "user"
