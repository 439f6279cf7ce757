"""Org admins manage groups (members and granted dashboards) and organization settings."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashvault.orgs import actions
from dashvault.orgs.forms import GroupForm, NetworksForm, OrgSettingsForm
from dashvault.orgs.models import Group, Organization
from dashvault.policy.access import access_group, require_org_admin
from dashvault.policy.principal import Principal, member_required, staff_required


@require_GET
@member_required
def group_list(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    groups = Group.objects.filter(org=principal.org).prefetch_related("members", "dashboards")
    return render(request, "orgs/group_list.html", {"groups": groups})


def _group_form(request: HttpRequest, principal: Principal, group: Group | None) -> HttpResponse:
    initial = {}
    if group is not None:
        initial = {
            "name": group.name,
            "members": group.members.all(),
            "dashboards": group.dashboards.all(),
        }
    form = GroupForm(request.POST or None, org=principal.member_org, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            saved = actions.do_save_group(
                principal.member_org,
                group,
                name=form.cleaned_data["name"],
                members=form.cleaned_data["members"],
                dashboards=form.cleaned_data["dashboards"],
                acting=principal.user,
                ip=principal.ip,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Group saved.")
            return redirect("group_edit", group_id=saved.pk)
    context = {"form": form, "group": group}
    return render(request, "orgs/group_form.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@member_required
def group_new(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    return _group_form(request, principal, None)


@require_http_methods(["GET", "POST"])
@member_required
def group_edit(request: HttpRequest, principal: Principal, group_id: str) -> HttpResponse:
    return _group_form(request, principal, access_group(principal, group_id))


@require_POST
@member_required
def group_delete(request: HttpRequest, principal: Principal, group_id: str) -> HttpResponse:
    group = access_group(principal, group_id)
    actions.do_delete_group(group, acting=principal.user, ip=principal.ip)
    messages.success(request, "Group deleted.")
    return redirect("group_list")


@require_http_methods(["GET", "POST"])
@member_required
def org_settings(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    org = principal.member_org
    initial = {"name": org.name, "time_zone": org.time_zone, "require_mfa": org.require_mfa}
    form = OrgSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        actions.do_update_org(org, **form.cleaned_data, acting=principal.user, ip=principal.ip)
        messages.success(request, "Settings saved.")
        return redirect("org_settings")
    context = {"form": form, "networks": org.allowed_networks}
    return render(request, "orgs/settings.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@staff_required
def org_networks(request: HttpRequest, principal: Principal, org_id: str) -> HttpResponse:
    """Platform staff set an org's IP filter (customers ask through support). Staff pages are
    never filtered by it, so staff can always come back here to correct it."""
    org = get_object_or_404(Organization, pk=org_id)
    form = NetworksForm(request.POST or None, initial={"networks": "\n".join(org.allowed_networks)})
    if request.method == "POST" and form.is_valid():
        try:
            saved = actions.do_set_org_networks(
                org,
                form.cleaned_data["networks"].splitlines(),
                acting=principal.user,
                ip=principal.ip,
            )
        except ValidationError as exc:
            form.add_error("networks", exc.message_dict["networks"])
        else:
            messages.success(
                request,
                f"IP filter saved: {len(saved)} network(s)." if saved else "IP filter turned off.",
            )
            return redirect("org_networks", org_id=org.pk)
    context = {"org": org, "form": form}
    return render(request, "orgs/networks.html", context, status=400 if form.errors else 200)
