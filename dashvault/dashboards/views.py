from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashvault.accounts.middleware import STARTED
from dashvault.dashboards import actions, datacache
from dashvault.dashboards.actions import GRID_COLUMNS, do_create_dashboard
from dashvault.dashboards.forms import ArrangeForm, DashboardForm, NewWidgetForm, WidgetForm
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.dashboards.queries import board
from dashvault.lib.forms import add_errors
from dashvault.live.admission import admissions
from dashvault.live.hub import session_digest, user_owner
from dashvault.policy import rules
from dashvault.policy.access import access_dashboard, access_widget
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
    return _board(request, principal, dashboard, "dashboards/detail.html")


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _board(
    request: HttpRequest,
    principal: Principal,
    dashboard: Dashboard,
    template: str,
    *,
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    """A page showing the dashboard's grid: its tiles in place and the data they draw, embedded
    so the first paint needs no second request."""
    tiles, data = board(dashboard)
    context = {
        "dashboard": dashboard,
        "tiles": tiles,
        "data": data,
        "can_edit": rules.can_edit_dashboards(principal),
        **extra,
    }
    response = render(request, template, context, status=status)
    # The page embeds the data: kept out of every cache, like the data endpoint (ASVS V14.3.2).
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
@member_required
def dashboard_widget_data(
    request: HttpRequest, principal: Principal, dashboard_id: str
) -> HttpResponse:
    """Every widget's data of one dashboard in one response (the shape of dashboard_data)."""
    dashboard = access_dashboard(principal, dashboard_id)
    text = datacache.dashboard_json(dashboard)
    admit_warm_reads(request, principal, dashboard, text)
    response = HttpResponse(text, content_type="application/json")
    response["Cache-Control"] = "private, no-store"
    return response


def admit_warm_reads(
    request: HttpRequest, principal: Principal, dashboard: Dashboard, text: str
) -> None:
    """Let the router answer this session's next reads of this dashboard's data itself, for a
    short while, until any event that would close its live screens (live.admission)."""
    session_key = request.session.session_key
    if not session_key or principal.user is None:
        return
    started = request.session.get(STARTED, int(time.time()))
    left = settings.SESSION_ABSOLUTE_SECONDS - (time.time() - started)
    admissions.admit(
        session_digest(session_key) or "",
        str(dashboard.pk),
        principal.ip or "",
        user_owner(principal.user.pk),
        text,
        ttl=left,
    )


def _edit_page(
    request: HttpRequest,
    principal: Principal,
    dashboard: Dashboard,
    *,
    status: int = 200,
    rename_form: DashboardForm | None = None,
    arrange_errors: list[str] | None = None,
) -> HttpResponse:
    if rename_form is None:
        rename_form = DashboardForm(initial={"title": dashboard.title})
    return _board(
        request,
        principal,
        dashboard,
        "dashboards/edit.html",
        status=status,
        rename_form=rename_form,
        arrange_errors=arrange_errors or [],
        grid_columns=range(GRID_COLUMNS),
    )


@require_GET
@member_required
def dashboard_edit(request: HttpRequest, principal: Principal, dashboard_id: str) -> HttpResponse:
    dashboard = access_dashboard(principal, dashboard_id, need="edit")
    return _edit_page(request, principal, dashboard)


@require_POST
@member_required
def dashboard_rename(request: HttpRequest, principal: Principal, dashboard_id: str) -> HttpResponse:
    dashboard = access_dashboard(principal, dashboard_id, need="edit")
    form = DashboardForm(request.POST)
    if form.is_valid():
        try:
            actions.do_rename_dashboard(
                dashboard, form.cleaned_data["title"], acting=principal.user, ip=principal.ip
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Dashboard renamed.")
            return redirect("dashboard_edit", dashboard_id=dashboard.pk)
    dashboard.refresh_from_db(fields=["title"])
    return _edit_page(request, principal, dashboard, status=400, rename_form=form)


@require_POST
@member_required
def dashboard_duplicate(
    request: HttpRequest, principal: Principal, dashboard_id: str
) -> HttpResponse:
    dashboard = access_dashboard(principal, dashboard_id, need="edit")
    copy = actions.do_duplicate_dashboard(dashboard, acting=principal.user, ip=principal.ip)
    messages.success(request, "Dashboard duplicated: this is the copy.")
    return redirect("dashboard_edit", dashboard_id=copy.pk)


@require_http_methods(["GET", "POST"])
@member_required
def dashboard_delete(request: HttpRequest, principal: Principal, dashboard_id: str) -> HttpResponse:
    dashboard = access_dashboard(principal, dashboard_id, need="edit")
    if request.method == "POST":
        actions.do_delete_dashboard(dashboard, acting=principal.user, ip=principal.ip)
        messages.success(request, "Dashboard deleted.")
        return redirect("dashboard_list")
    count = Widget.objects.filter(org_id=dashboard.org_id, dashboard=dashboard).count()
    return render(
        request, "dashboards/delete.html", {"dashboard": dashboard, "widget_count": count}
    )


@require_http_methods(["GET", "POST"])
@member_required
def widget_new(request: HttpRequest, principal: Principal, dashboard_id: str) -> HttpResponse:
    dashboard = access_dashboard(principal, dashboard_id, need="edit")
    form = NewWidgetForm(request.POST or None, org=principal.member_org)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            widget = actions.do_create_widget(
                dashboard,
                kind=data["kind"],
                title=data["title"],
                metric=data["metric"],
                config=data["config"],
                w=data["w"],
                h=data["h"],
                acting=principal.user,
                ip=principal.ip,
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Widget added.")
            return redirect(_edit_url(dashboard, widget))
    context = {"form": form, "dashboard": dashboard, "widget": None}
    status = 400 if form.errors else 200
    return render(request, "dashboards/widget_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@member_required
def widget_edit(
    request: HttpRequest, principal: Principal, dashboard_id: str, widget_id: str
) -> HttpResponse:
    widget = access_widget(principal, dashboard_id, widget_id)
    form = WidgetForm(request.POST or None, org=principal.member_org, widget=widget)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            actions.do_update_widget(
                widget,
                kind=data["kind"],
                title=data["title"],
                metric=data["metric"],
                config=data["config"],
                acting=principal.user,
                ip=principal.ip,
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Widget saved.")
            return redirect(_edit_url(widget.dashboard, widget))
    context = {"form": form, "dashboard": widget.dashboard, "widget": widget}
    status = 400 if form.errors else 200
    return render(request, "dashboards/widget_form.html", context, status=status)


@require_POST
@member_required
def widget_arrange(
    request: HttpRequest, principal: Principal, dashboard_id: str, widget_id: str
) -> HttpResponse:
    """Move or resize a widget: a form post (redirects back) or, with `Accept:
    application/json`, the edit page's drag and drop (answers every widget's place)."""
    widget = access_widget(principal, dashboard_id, widget_id)
    form = ArrangeForm(request.POST, widget=widget)
    errors: dict[str, list[str]] = {}
    if form.is_valid():
        try:
            layout = actions.do_arrange_widget(
                widget, form.cleaned_data["place"], acting=principal.user, ip=principal.ip
            )
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        else:
            if _wants_json(request):
                return JsonResponse({"layout": {k: asdict(v) for k, v in layout.items()}})
            return redirect(_edit_url(widget.dashboard, widget))
    else:
        errors = {field: [str(m) for m in messages_] for field, messages_ in form.errors.items()}
    if _wants_json(request):
        return JsonResponse({"errors": errors}, status=400)
    listed = [
        message if field == "__all__" else f"{field}: {message}"
        for field, messages_ in errors.items()
        for message in messages_
    ]
    return _edit_page(request, principal, widget.dashboard, status=400, arrange_errors=listed)


@require_http_methods(["GET", "POST"])
@member_required
def widget_delete(
    request: HttpRequest, principal: Principal, dashboard_id: str, widget_id: str
) -> HttpResponse:
    widget = access_widget(principal, dashboard_id, widget_id)
    dashboard = widget.dashboard
    if request.method == "POST":
        actions.do_delete_widget(widget, acting=principal.user, ip=principal.ip)
        messages.success(request, "Widget removed.")
        return redirect("dashboard_edit", dashboard_id=dashboard.pk)
    return render(
        request, "dashboards/widget_delete.html", {"dashboard": dashboard, "widget": widget}
    )


def _edit_url(dashboard: Dashboard, widget: Widget) -> str:
    return reverse("dashboard_edit", kwargs={"dashboard_id": dashboard.pk}) + f"#w-{widget.pk}"
