"""The audit log for people: org admins read, filter and export their org's chain; platform
staff the platform's. Exports are audited themselves."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from dashvault import audit
from dashvault.audit.models import AuditEntry
from dashvault.policy.access import require_org_admin
from dashvault.policy.principal import Principal, member_required, staff_required

PAGE_SIZE = 100
EXPORT_LIMIT = 100_000  # entries per export; narrow the filter for more
COLUMNS = ["id", "seq", "at", "action", "actor_kind", "actor_id", "target_type", "target_id"]
COLUMNS += ["ip", "detail", "mac"]


class AuditFilter(forms.Form):
    action = forms.CharField(required=False, max_length=64)
    actor = forms.UUIDField(required=False, label="Actor id")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    ip = forms.GenericIPAddressField(required=False, label="Address")

    def apply(self, entries: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        data = self.cleaned_data
        if data.get("action"):
            entries = entries.filter(action__startswith=data["action"])
        if data.get("actor"):
            entries = entries.filter(actor_id=data["actor"])
        if data.get("since"):
            entries = entries.filter(at__gte=_day_start(data["since"]))
        if data.get("until"):
            entries = entries.filter(at__lt=_day_start(data["until"] + dt.timedelta(days=1)))
        if data.get("ip"):
            entries = entries.filter(ip=data["ip"])
        return entries


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


@require_GET
@member_required
def org_audit(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    return _log(request, principal, AuditEntry.objects.filter(org=principal.org))


@require_GET
@staff_required
def platform_audit(request: HttpRequest, principal: Principal) -> HttpResponse:
    # Staff see the platform's own chain only; a customer's log is the customer's.
    return _log(request, principal, AuditEntry.objects.filter(org__isnull=True))


def _log(request: HttpRequest, principal: Principal, entries: QuerySet[AuditEntry]) -> Any:
    form = AuditFilter(request.GET or None)
    if request.GET and not form.is_valid():
        context: dict[str, Any] = {"form": form, "page": None, "staff": principal.kind == "staff"}
        return render(request, "audit/log.html", context, status=400)
    if form.is_bound:
        entries = form.apply(entries)
    entries = entries.order_by("-id")
    export = request.GET.get("export")
    if export in ("csv", "json"):
        return _export(request, principal, entries, export)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "staff": principal.kind == "staff",
    }
    return render(request, "audit/log.html", context)


def _export(
    request: HttpRequest, principal: Principal, entries: QuerySet[AuditEntry], kind: str
) -> HttpResponse:
    rows = [_row(entry) for entry in entries[:EXPORT_LIMIT]]
    audit.record(
        "audit.export",
        org=principal.org,
        actor=principal.user,
        ip=principal.ip,
        format=kind,
        entries=len(rows),
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    if kind == "json":
        body = json.dumps(rows, indent=1)
        response = HttpResponse(body, content_type="application/json")
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "detail": json.dumps(row["detail"], sort_keys=True)})
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{kind}"'
    response["Cache-Control"] = "no-store"
    return response


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "seq": entry.seq,
        "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "action": entry.action,
        "actor_kind": entry.actor_kind,
        "actor_id": str(entry.actor_id) if entry.actor_id else "",
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "ip": entry.ip or "",
        "detail": entry.detail,
        "mac": entry.mac,
    }
