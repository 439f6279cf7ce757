"""Org admins manage their organization's members."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashvault.accounts import actions
from dashvault.accounts.forms import AddMemberForm, RoleForm
from dashvault.accounts.models import User
from dashvault.policy.access import access_member, require_org_admin
from dashvault.policy.principal import Principal, member_required


@require_GET
@member_required
def member_list(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    members = User.objects.filter(org=principal.org).prefetch_related("dashboard_groups")
    return render(request, "accounts/member_list.html", {"members": members})


@require_http_methods(["GET", "POST"])
@member_required
def member_add(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    form = AddMemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            member, link = actions.do_create_user(
                principal.member_org,
                form.cleaned_data["email"],
                form.cleaned_data["role"],
                acting=principal.user,
                base_url=request.build_absolute_uri("/"),
                ip=principal.ip,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return render(request, "accounts/member_link.html", {"member": member, "link": link})
    return render(
        request, "accounts/member_add.html", {"form": form}, status=400 if form.errors else 200
    )


@require_GET
@member_required
def member_detail(request: HttpRequest, principal: Principal, user_id: str) -> HttpResponse:
    member = access_member(principal, user_id)
    form = RoleForm(initial={"role": member.role})
    return render(request, "accounts/member_detail.html", {"member": member, "form": form})


@require_POST
@member_required
def member_role(request: HttpRequest, principal: Principal, user_id: str) -> HttpResponse:
    member = access_member(principal, user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return render(
            request, "accounts/member_detail.html", {"member": member, "form": form}, status=400
        )
    try:
        actions.do_change_role(
            member, form.cleaned_data["role"], acting=principal.user, ip=principal.ip
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("member_detail", user_id=member.pk)
    messages.success(request, "Role changed.")
    return redirect("member_detail", user_id=member.pk)


@require_POST
@member_required
def member_active(request: HttpRequest, principal: Principal, user_id: str) -> HttpResponse:
    member = access_member(principal, user_id)
    active = request.POST.get("active") == "1"
    try:
        actions.do_set_active(member, active, acting=principal.user, ip=principal.ip)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            "Account reactivated." if active else "Account deactivated; its sessions ended.",
        )
    return redirect("member_detail", user_id=member.pk)


@require_POST
@member_required
def member_link(request: HttpRequest, principal: Principal, user_id: str) -> HttpResponse:
    """A fresh one-time set-password link for a member (shown once, not e-mailed)."""
    member = access_member(principal, user_id)
    link = actions.do_issue_link(
        member, acting=principal.user, base_url=request.build_absolute_uri("/"), ip=principal.ip
    )
    return render(request, "accounts/member_link.html", {"member": member, "link": link})
