from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from dashvault.dashboards.actions import do_create_dashboard
from dashvault.dashboards.forms import DashboardForm
from dashvault.policy import rules
from dashvault.policy.access import access_dashboard
from dashvault.policy.principal import Principal, member_required


@require_GET
@member_required
def dashboard_list(request: HttpRequest, principal: Principal) -> HttpResponse:
    dashboards = rules.visible_dashboards(principal)
    context = {"dashboards": dashboards, "can_create": rules.can_edit_dashboards(principal)}
    return render(request, "dashboards/list.html", context)


@require_http_methods(["GET", "POST"])
@member_required
def dashboard_new(request: HttpRequest, principal: Principal) -> HttpResponse:
    if not rules.can_edit_dashboards(principal):
        raise PermissionDenied("Only editors and admins can create dashboards.")
    form = DashboardForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            dashboard = do_create_dashboard(
                principal.member_org,
                form.cleaned_data["title"],
                acting=principal.user,
                ip=principal.ip,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("dashboard_detail", dashboard_id=dashboard.pk)
    return render(
        request, "dashboards/new.html", {"form": form}, status=400 if form.errors else 200
    )


@require_GET
@member_required
def dashboard_detail(request: HttpRequest, principal: Principal, dashboard_id: str) -> HttpResponse:
    dashboard = access_dashboard(principal, dashboard_id)
    return render(request, "dashboards/detail.html", {"dashboard": dashboard})
