"""Org admins set up integrations (and test them before saving); platform staff grant the
plain-HTTP exception at a customer's request. The credential is write-only here: no page
renders it, and a connection test that uses the stored one runs as a job (it is opened only
in jobs)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.contrib import messages
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from huey.exceptions import HueyException

from dashvault.integrations import actions, jobs, sync
from dashvault.integrations.connectors.session import SyncError
from dashvault.integrations.forms import HttpExceptionForm, IntegrationForm, initial_for, kind_of
from dashvault.integrations.models import Integration, Kind, SyncRun
from dashvault.orgs.models import Organization
from dashvault.policy.access import access_integration, require_org_admin
from dashvault.policy.principal import Principal, member_required, staff_required

HISTORY = 20
TEST_WAIT_SECONDS = 45  # a connection test with the stored credential runs as a job
logger = logging.getLogger(__name__)


def _with_last_runs(integrations: Sequence[Integration]) -> Sequence[Integration]:
    """Each integration with `last_run`, its latest SyncRun (one query for all)."""
    ids = [i.latest_run_id for i in integrations if i.latest_run_id]  # type: ignore[attr-defined]
    runs = SyncRun.objects.in_bulk(ids)
    for integration in integrations:
        integration.last_run = runs.get(integration.latest_run_id)  # type: ignore[attr-defined]
    return integrations


@require_GET
@member_required
def integration_list(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    latest = SyncRun.objects.filter(integration=OuterRef("pk")).order_by("-started_at")
    integrations = list(
        Integration.objects.filter(org=principal.org)
        .select_related("metric")
        .annotate(latest_run_id=Subquery(latest.values("pk")[:1]))
    )
    context = {"integrations": _with_last_runs(integrations), "kinds": Kind.choices}
    return render(request, "integrations/list.html", context)


def _integration_form(
    request: HttpRequest, principal: Principal, integration: Integration | None
) -> HttpResponse:
    org = principal.member_org
    kind = integration.kind if integration else kind_of(request.GET.get("kind"))
    form = IntegrationForm(
        request.POST or None,
        org=org,
        kind=kind,
        integration=integration,
        initial=initial_for(integration, kind),
    )
    context: dict[str, object] = {"form": form, "integration": integration, "kind": kind}
    context["kind_label"] = Kind(kind).label
    if request.method == "POST" and form.is_valid():
        if request.POST.get("action") == "test":
            context["preview"], context["preview_error"] = _preview(form, integration)
            context["secret_again"] = bool(form.cleaned_data["secret"])
            return render(request, "integrations/form.html", _history(context, integration))
        data = form.cleaned_data
        if integration is None:
            saved = actions.do_create_integration(
                org,
                acting=principal.user,
                ip=principal.ip,
                name=data["name"],
                kind=kind,
                metric=data["metric"],
                config=form.config(),
                secret=data["secret"] or "",
                ca_pem=data["ca_pem"],
                every_minutes=data["every_minutes"],
            )
            messages.success(request, "Integration added. Its first sync is due now.")
        else:
            saved = actions.do_update_integration(
                integration,
                acting=principal.user,
                ip=principal.ip,
                name=data["name"],
                metric=data["metric"],
                config=form.config(),
                secret=form.new_secret(),
                ca_pem=data["ca_pem"],
                every_minutes=data["every_minutes"],
                enabled=data["enabled"],
            )
            messages.success(request, "Integration saved.")
        return redirect("integration_edit", integration_id=saved.pk)
    status = 400 if form.errors else 200
    return render(request, "integrations/form.html", _history(context, integration), status=status)


def _preview(
    form: IntegrationForm, integration: Integration | None
) -> tuple[sync.Preview | None, str]:
    """Try the form's settings (nothing is stored): the first records' rows, or the error."""
    secret = form.new_secret()
    if secret is None and integration is not None:
        return _preview_in_job(form, integration)
    try:
        preview = sync.preview(
            kind=form.kind,
            config=form.config(),
            secret=secret or "",
            ca_pem=form.cleaned_data["ca_pem"],
            allow_http=integration is not None and integration.allow_http,
            time_zone=form.org.time_zone,
        )
    except SyncError as exc:
        return None, str(exc)
    except Exception:
        # As in a sync run: the details go to the operators' log, the page gets a sentence.
        logger.exception("integrations: connection test failed")
        return None, sync.UNEXPECTED_TEST
    return preview, ""


def _preview_in_job(
    form: IntegrationForm, integration: Integration
) -> tuple[sync.Preview | None, str]:
    """The test with the stored credential runs as a job, where the credential may be opened;
    this request waits for its answer."""
    result = jobs.test_with_stored_credential(
        str(integration.pk), form.kind, form.config(), form.cleaned_data["ca_pem"]
    )
    try:
        answer = result.get(blocking=True, timeout=TEST_WAIT_SECONDS)
    except HueyException:
        return None, (
            f"No job worker answered within {TEST_WAIT_SECONDS} seconds: the test could not run."
        )
    if "error" in answer:
        return None, str(answer["error"])
    return sync.Preview(answer["records"], answer["rows"], answer["skipped"]), ""


def _history(context: dict[str, object], integration: Integration | None) -> dict[str, object]:
    if integration is not None:
        runs = SyncRun.objects.filter(org=integration.org_id, integration=integration)
        context["runs"] = runs[:HISTORY]
    return context


@require_http_methods(["GET", "POST"])
@member_required
def integration_new(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    return _integration_form(request, principal, None)


@require_http_methods(["GET", "POST"])
@member_required
def integration_edit(
    request: HttpRequest, principal: Principal, integration_id: str
) -> HttpResponse:
    return _integration_form(request, principal, access_integration(principal, integration_id))


@require_POST
@member_required
def integration_sync(
    request: HttpRequest, principal: Principal, integration_id: str
) -> HttpResponse:
    integration = access_integration(principal, integration_id)
    full = request.POST.get("full") == "1"
    actions.do_request_sync(integration, acting=principal.user, ip=principal.ip, full=full)
    messages.success(request, "Full resync requested." if full else "Sync requested.")
    return redirect("integration_edit", integration_id=integration.pk)


@require_http_methods(["GET", "POST"])
@member_required
def integration_delete(
    request: HttpRequest, principal: Principal, integration_id: str
) -> HttpResponse:
    integration = access_integration(principal, integration_id)
    if request.method == "POST":
        actions.do_delete_integration(integration, acting=principal.user, ip=principal.ip)
        messages.success(request, "Integration deleted. The data it stored stays in the metric.")
        return redirect("integration_list")
    return render(request, "integrations/delete.html", {"integration": integration})


# -- platform staff ------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@staff_required
def staff_integrations(request: HttpRequest, principal: Principal, org_id: str) -> HttpResponse:
    """An org's integrations by name and kind (no settings, no credential), and the plain-HTTP
    exception, set only on the customer's request (the action writes it to their log)."""
    org = get_object_or_404(Organization, pk=org_id)
    form = HttpExceptionForm(request.POST or None, org=org)
    if request.method == "POST" and form.is_valid():
        integration = form.cleaned_data["integration"]
        allow = form.cleaned_data["allow"]
        actions.do_set_http_exception(
            integration, acting=principal.user, ip=principal.ip, allow=allow
        )
        messages.success(
            request,
            f"Plain HTTP {'allowed' if allow else 'no longer allowed'} for “{integration.name}”.",
        )
        return redirect("staff_integrations", org_id=org.pk)
    integrations = Integration.objects.filter(org=org).only("id", "name", "kind", "allow_http")
    context = {"org": org, "form": form, "integrations": integrations}
    return render(request, "integrations/staff.html", context, status=400 if form.errors else 200)
