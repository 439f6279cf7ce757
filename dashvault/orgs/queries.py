from __future__ import annotations

from django.core.exceptions import ValidationError

from dashvault.orgs.models import Organization


def org_by_ref(ref: str) -> Organization | None:
    """The organization with this id, or else the only one with this exact name (CLI use)."""
    try:
        return Organization.objects.get(pk=ref)
    except (Organization.DoesNotExist, ValidationError, ValueError):
        pass
    matches = list(Organization.objects.filter(name=ref)[:2])
    return matches[0] if len(matches) == 1 else None
