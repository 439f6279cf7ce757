"""Org admins create (shown once), list and revoke API tokens."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from dashvault.api.actions import do_create_token, do_revoke_token
from dashvault.api.forms import TokenForm
from dashvault.api.models import ApiToken
from dashvault.policy.access import require_org_admin
from dashvault.policy.principal import Principal, member_required


@require_http_methods(["GET", "POST"])
@member_required
def token_list(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_days"]
        try:
            token, secret = do_create_token(
                principal.member_org,
                form.cleaned_data["name"],
                form.cleaned_data["scopes"],
                expires_at=timezone.now() + dt.timedelta(days=days) if days else None,
                acting=principal.user,
                ip=principal.ip,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            response = render(request, "api/token_created.html", {"token": token, "secret": secret})
            response["Cache-Control"] = "no-store"  # the secret must not linger in a cache
            return response
    tokens = ApiToken.objects.filter(org=principal.org)
    context = {"form": form, "tokens": tokens, "now": timezone.now()}
    return render(request, "api/token_list.html", context, status=400 if form.errors else 200)


@require_POST
@member_required
def token_revoke(request: HttpRequest, principal: Principal, token_id: str) -> HttpResponse:
    require_org_admin(principal)
    token = ApiToken.objects.filter(org=principal.org, pk=token_id).first()
    if token is None:
        raise Http404
    do_revoke_token(token, acting=principal.user, ip=principal.ip)
    messages.success(request, "Token revoked. Clients using it are refused from now on.")
    return redirect("token_list")
