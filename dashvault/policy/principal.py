"""Who is asking: the principal behind a request (a session user, an API token or a kiosk
link; staff grants join later) and the organization it acts in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

if TYPE_CHECKING:
    from dashvault.accounts.models import User
    from dashvault.api.models import ApiToken
    from dashvault.grants.models import AccessGrant
    from dashvault.kiosk.models import KioskLink
    from dashvault.orgs.models import Organization


@dataclass(frozen=True)
class Principal:
    # "member" (a user of an org), "staff" (platform staff, no org), or "grant" (platform
    # staff inside one org through an active access grant: view only, every view audited)
    kind: str
    user: User
    org: Organization | None
    role: str | None
    ip: str | None
    grant: AccessGrant | None = None

    @property
    def is_member(self) -> bool:
        return self.kind == "member" and self.org is not None

    @property
    def member_org(self) -> Organization:
        """The org of a member principal (views behind member_required always have one)."""
        if self.org is None:
            raise PermissionDenied("This needs a member of an organization.")
        return self.org


@dataclass(frozen=True)
class TokenPrincipal:
    """An API client holding an org API token (api.auth resolves it)."""

    token: ApiToken
    org: Organization
    scopes: frozenset[str]
    ip: str | None
    kind: str = "token"


@dataclass(frozen=True)
class KioskPrincipal:
    """A screen holding a live kiosk link (kiosk.entry resolves it): it may view the link's
    dashboards and nothing else."""

    link: KioskLink
    org: Organization
    ip: str | None
    kind: str = "kiosk"
    role: None = None

    @property
    def is_member(self) -> bool:
        return False


def principal_from_request(request: HttpRequest) -> Principal | None:
    """The request's principal, or None when anonymous. Cached on the request."""
    if hasattr(request, "_principal"):
        return request._principal  # type: ignore[no-any-return]  # set below
    principal = None
    user = request.user
    if user.is_authenticated and user.is_active:
        ip = request.META.get("REMOTE_ADDR")
        if user.is_platform_staff:
            principal = Principal("staff", user, None, None, ip)
        else:
            principal = Principal("member", user, user.org, user.role, ip)
    request._principal = principal  # type: ignore[attr-defined]  # per-request cache
    return principal


def member_required(view: Any) -> Any:
    """Decorate a view taking (request, principal, ...): an org member must be signed in.

    Anonymous → the sign-in page; platform staff (no org) → 403, since staff reach customer
    data only through a logged access grant (audit issue).
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        principal = principal_from_request(request)
        if principal is None:
            return redirect_to_login(request.get_full_path())
        if not principal.is_member:
            raise PermissionDenied("Platform staff see customer data only through an access grant.")
        return view(request, principal, *args, **kwargs)  # type: ignore[no-any-return]

    return wrapper


def grant_required(view: Any) -> Any:
    """Decorate a staff view taking (request, principal, org_id, ...): the staff member must
    hold an active access grant for that org (checked on every request); the view gets a
    "grant" principal of the org. Others 404; staff without a grant 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, org_id: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        from dashvault.grants.actions import active_grant

        principal = principal_from_request(request)
        if principal is None:
            return redirect_to_login(request.get_full_path())
        if principal.kind != "staff":
            raise Http404
        grant = active_grant(principal.user, org_id)
        if grant is None:
            raise PermissionDenied("Open an access grant for this organization first.")
        inside = Principal("grant", principal.user, grant.org, None, principal.ip, grant)
        return view(request, inside, org_id, *args, **kwargs)  # type: ignore[no-any-return]

    return wrapper


def staff_required(view: Any) -> Any:
    """Decorate a view taking (request, principal, ...): platform staff only (others 404)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        principal = principal_from_request(request)
        if principal is None:
            return redirect_to_login(request.get_full_path())
        if principal.kind != "staff":
            raise Http404
        return view(request, principal, *args, **kwargs)  # type: ignore[no-any-return]

    return wrapper
