"""Exports and erasures (GDPR): thin views over privacy.export and privacy.erasure.

Exports are POSTed (a download with an audit entry is an action, not a page) and carry
`Cache-Control: no-store`. Erasure and org deletion ask for the exact e-mail address or org
name first: irreversible, so never one click.
"""

from __future__ import annotations

import json
import logging

from django.contrib import messages
from django.contrib.auth import logout
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from dashvault import audit
from dashvault.accounts.models import User
from dashvault.policy.access import access_member, require_org_admin
from dashvault.policy.principal import Principal, member_required
from dashvault.privacy import erasure, export, ledger
from dashvault.privacy.forms import ConfirmForm

logger = logging.getLogger(__name__)


def _download(body: str, name: str) -> HttpResponse:
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _ledger_down(request: HttpRequest, template: str, context: dict[str, object]) -> HttpResponse:
    # Nothing was changed: the ledger entry comes first, and it could not be written.
    logger.error("privacy: the erasure ledger cannot be written; nothing was erased")
    context["form"].add_error(  # type: ignore[attr-defined]
        None, "Erasure is unavailable right now (its ledger cannot be written): nothing changed."
    )
    return render(request, template, context, status=503)


def _person_download(person: User, *, acting: User, ip: str | None) -> HttpResponse:
    with transaction.atomic():
        audit.record("person.export", org=person.org_id, actor=acting, target=person, ip=ip)
        body = json.dumps(export.person(person), indent=1)
    return _download(body, f"dashvault-person-{person.pk}.json")


@require_http_methods(["GET", "POST"])
@never_cache
@member_required
def my_data(request: HttpRequest, principal: Principal) -> HttpResponse:
    """Any member: what dashvault holds about them, as a JSON download."""
    if request.method == "POST":
        return _person_download(principal.user, acting=principal.user, ip=principal.ip)
    return render(request, "privacy/my_data.html")


@require_POST
@never_cache
@member_required
def member_export(request: HttpRequest, principal: Principal, user_id: str) -> HttpResponse:
    person = access_member(principal, user_id)
    return _person_download(person, acting=principal.user, ip=principal.ip)


@require_http_methods(["GET", "POST"])
@never_cache
@member_required
def member_erase(request: HttpRequest, principal: Principal, user_id: str) -> HttpResponse:
    person = access_member(principal, user_id)
    data = request.POST if request.method == "POST" else None
    form = ConfirmForm(data, expected=person.email, what="e-mail address")
    if request.method == "POST" and form.is_valid():
        try:
            erasure.erase_person(person, acting=principal.user, ip=principal.ip)
        except ValidationError as exc:
            form.add_error(None, exc)
        except ledger.LedgerError:
            return _ledger_down(request, "privacy/erase.html", {"member": person, "form": form})
        else:
            messages.success(request, "The person's personal data was erased.")
            return redirect("member_list")
    context = {"member": person, "form": form, "is_self": person.pk == principal.user.pk}
    return render(request, "privacy/erase.html", context, status=400 if form.errors else 200)


@require_POST
@never_cache
@member_required
def org_export(request: HttpRequest, principal: Principal) -> StreamingHttpResponse:
    require_org_admin(principal)
    org = principal.member_org
    with transaction.atomic():
        audit.record("org.export", org=org, actor=principal.user, target=org, ip=principal.ip)
    response = StreamingHttpResponse(export.org(org), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="dashvault-org-{org.pk}.json"'
    return response


@require_http_methods(["GET", "POST"])
@member_required
def org_delete(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    org = principal.member_org
    data = request.POST if request.method == "POST" else None
    form = ConfirmForm(data, expected=org.name, what="organization name")
    if request.method == "POST" and form.is_valid():
        try:
            erasure.delete_org(org, acting=principal.user, ip=principal.ip)
        except ledger.LedgerError:
            return _ledger_down(request, "privacy/org_delete.html", {"form": form})
        logout(request)  # their account went with the org
        messages.success(request, "The organization and all its data were deleted.")
        return redirect("account_login")
    return render(
        request, "privacy/org_delete.html", {"form": form}, status=400 if form.errors else 200
    )
