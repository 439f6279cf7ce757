"""Staff open access grants and, inside one, view a customer's dashboards (audited into the
customer's log); org admins see, approve, deny and end them."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashvault.dashboards.queries import board
from dashvault.grants import actions
from dashvault.grants.models import AccessGrant, Reason
from dashvault.lib.forms import add_errors
from dashvault.orgs.models import Organization
from dashvault.policy import rules
from dashvault.policy.access import access_dashboard, require_org_admin
from dashvault.policy.principal import Principal, grant_required, member_required, staff_required


class GrantForm(forms.Form):
    reason = forms.ChoiceField(choices=Reason.choices)
    ticket = forms.CharField(max_length=64, label="Ticket reference")
    minutes = forms.IntegerField(min_value=1, initial=60, label="Minutes")


# -- staff -------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@staff_required
def grant_open(request: HttpRequest, principal: Principal, org_id: str) -> HttpResponse:
    org = get_object_or_404(Organization, pk=org_id)
    form = GrantForm(request.POST or None, initial={"minutes": settings.GRANT_MAX_MINUTES})
    if request.method == "POST" and form.is_valid():
        try:
            grant = actions.do_open_grant(org, principal.user, **form.cleaned_data, ip=principal.ip)
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            if grant.status == "active":
                messages.success(
                    request, "Access grant open; every view is logged for the customer."
                )
                return redirect("grant_dashboards", org_id=org.pk)
            messages.info(request, "Access requested: it starts when an admin of the org approves.")
            return redirect("grant_open", org_id=org.pk)
    grants = AccessGrant.objects.filter(org=org, staff=principal.user)[:20]
    context = {"org": org, "form": form, "grants": grants}
    return render(request, "grants/open.html", context, status=400 if form.errors else 200)


@require_POST
@staff_required
def grant_end_by_staff(
    request: HttpRequest, principal: Principal, org_id: str, grant_id: str
) -> HttpResponse:
    grant = get_object_or_404(AccessGrant, pk=grant_id, org_id=org_id, staff=principal.user)
    try:
        actions.do_end_grant(grant, acting=principal.user, ip=principal.ip)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("grant_open", org_id=org_id)


@require_GET
@grant_required
def grant_dashboards(request: HttpRequest, principal: Principal, org_id: str) -> HttpResponse:
    assert principal.grant is not None
    actions.record_view(principal.grant, "dashboard_list", ip=principal.ip)
    context = {"grant": principal.grant, "dashboards": rules.visible_dashboards(principal)}
    return render(request, "grants/dashboards.html", context)


@require_GET
@grant_required
def grant_dashboard(
    request: HttpRequest, principal: Principal, org_id: str, dashboard_id: str
) -> HttpResponse:
    assert principal.grant is not None
    dashboard = access_dashboard(principal, dashboard_id)
    actions.record_view(principal.grant, "dashboard", target=dashboard, ip=principal.ip)
    tiles, data = board(dashboard)
    context = {
        "dashboard": dashboard,
        "tiles": tiles,
        "data": data,
        "can_edit": False,
        "grant": principal.grant,
    }
    return render(request, "grants/dashboard.html", context)


# -- org admins --------------------------------------------------------------------------------


@require_GET
@member_required
def grant_list(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    grants = AccessGrant.objects.filter(org=principal.org).select_related("staff")[:200]
    context = {"grants": grants, "approval": principal.member_org.grant_approval_required}
    return render(request, "grants/list.html", context)


@require_POST
@member_required
def grant_decide(
    request: HttpRequest, principal: Principal, grant_id: str, decision: str
) -> HttpResponse:
    require_org_admin(principal)
    grant = AccessGrant.objects.filter(org=principal.org, pk=grant_id).first()
    steps = {
        "approve": actions.do_approve_grant,
        "deny": actions.do_deny_grant,
        "end": actions.do_end_grant,
    }
    if grant is None or decision not in steps:
        raise Http404
    try:
        steps[decision](grant, acting=principal.user, ip=principal.ip)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Access grant: {decision} done.")
    return redirect("grant_list")


@require_POST
@member_required
def grant_approval_setting(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    required = request.POST.get("required")
    if required not in ("0", "1"):
        return HttpResponseBadRequest("Send required=1 (approval needed) or required=0.")
    actions.do_set_approval_required(
        principal.member_org, required == "1", acting=principal.user, ip=principal.ip
    )
    messages.success(request, "Saved.")
    return redirect("grant_list")
