from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from dashvault.policy import rules
from dashvault.policy.principal import principal_from_request


def principal(request: HttpRequest) -> dict[str, Any]:
    """Template context: the principal and what the navigation may offer it."""
    current = principal_from_request(request) if hasattr(request, "user") else None
    return {
        "principal": current,
        "nav_admin": current is not None and rules.is_org_admin(current),
    }
