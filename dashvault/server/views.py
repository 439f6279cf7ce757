"""Site-wide views: the home redirect, the staff landing page, error pages."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from dashvault.backups import status
from dashvault.orgs.models import Organization
from dashvault.policy.principal import Principal, principal_from_request, staff_required


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    principal = principal_from_request(request)
    if principal is None:
        return redirect("account_login")
    return redirect("staff_home" if principal.kind == "staff" else "dashboard_list")


@require_GET
@staff_required
def staff_home(request: HttpRequest, principal: Principal) -> HttpResponse:
    # Names and ids only: staff see customer data only through a logged grant (audit issue).
    orgs = Organization.objects.order_by("name").values(
        "id", "name", "created_at", "allowed_networks"
    )
    backups = status.status()
    hours = 2 * settings.BACKUP_EVERY_HOURS
    context = {"orgs": orgs, "backups": backups, "backup_hours": hours}
    return render(request, "server/staff_home.html", context)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(
        request,
        "server/error.html",
        {
            "title": "Form expired",
            "message": "The form was open too long or came from another site. "
            "Go back, reload and try again.",
        },
        status=403,
    )
