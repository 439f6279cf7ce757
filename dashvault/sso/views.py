"""SSO: org admins set it up; people start an SSO sign-in by their e-mail domain or their org's
sign-in page. The sign-in itself is allauth's OpenID Connect flow (sso.adapter, sso.signin)."""

from __future__ import annotations

from urllib.parse import urlsplit

from allauth.socialaccount.providers.openid_connect import views as allauth_oidc
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from dashvault.lib.forms import add_errors
from dashvault.orgs.models import Group, Organization
from dashvault.policy.access import (
    access_claim_mapping,
    access_identity_provider,
    access_member,
    require_org_admin,
)
from dashvault.policy.principal import Principal, member_required
from dashvault.sso import actions
from dashvault.sso.forms import MappingForm, ProviderForm, SsoSettingsForm, StartForm
from dashvault.sso.models import ClaimMapping, EmailDomain, IdentityProvider, Kind
from dashvault.sso.providers import login_url, provider_by_id, server_url


def _settings_context(request: HttpRequest, principal: Principal, **extra: object) -> dict:
    org = principal.member_org
    providers = {p.kind: p for p in IdentityProvider.objects.filter(org=org)}
    return {
        "providers": [(kind, label, providers.get(kind)) for kind, label in Kind.choices],
        "callback_urls": {
            p.kind: request.build_absolute_uri(f"/accounts/oidc/{p.provider_id}/login/callback/")
            for p in providers.values()
        },
        "mappings": ClaimMapping.objects.filter(org=org).select_related("group"),
        "mapping_form": MappingForm(org=org),
        "signin_url": request.build_absolute_uri(f"/sso/{org.pk}/"),
        **extra,
    }


def _settings_initial(org: Organization) -> dict[str, object]:
    """The settings form as stored: every page that shows the form starts from this."""
    return {
        "domains": "\n".join(EmailDomain.objects.filter(org=org).values_list("domain", flat=True)),
        "federation": org.sso_federation,
        "password_signin": org.password_signin,
        "break_glass": org.break_glass_id,
        "default_groups": Group.objects.filter(org=org, sso_default=True),
    }


@require_http_methods(["GET", "POST"])
@member_required
def sso_settings(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    org = principal.member_org
    form = SsoSettingsForm(request.POST or None, org=org, initial=_settings_initial(org))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            actions.do_save_sso_settings(
                org,
                domains=data["domains"].replace(",", "\n").splitlines(),
                federation=data["federation"],
                password_signin=data["password_signin"],
                break_glass=data["break_glass"],
                default_groups=data["default_groups"],
                acting=principal.user,
                ip=principal.ip,
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Single sign-on settings saved.")
            return redirect("sso_settings")
    context = _settings_context(request, principal, form=form)
    return render(request, "sso/settings.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@member_required
def sso_provider(request: HttpRequest, principal: Principal, kind: str) -> HttpResponse:
    idp = access_identity_provider(principal, kind)
    initial: dict[str, object] = {"enabled": True}
    if idp is not None:
        initial = {
            "client_id": idp.client_id,
            "tenant_id": idp.tenant_id,
            "hosted_domain": idp.hosted_domain,
            "enabled": idp.enabled,
        }
    form = ProviderForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            actions.do_save_provider(
                principal.member_org,
                kind,
                client_id=data["client_id"],
                client_secret=data["client_secret"] or None,
                tenant_id=data["tenant_id"],
                hosted_domain=data["hosted_domain"],
                enabled=data["enabled"],
                acting=principal.user,
                ip=principal.ip,
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, f"{Kind(kind).label} saved.")
            return redirect("sso_settings")
    context = {
        "form": form,
        "idp": idp,
        "kind": kind,
        "label": Kind(kind).label,
        "callback_url": request.build_absolute_uri(
            f"/accounts/oidc/{idp.provider_id}/login/callback/" if idp else "/"
        ),
    }
    return render(request, "sso/provider.html", context, status=400 if form.errors else 200)


@require_POST
@member_required
def sso_provider_delete(request: HttpRequest, principal: Principal, kind: str) -> HttpResponse:
    idp = access_identity_provider(principal, kind)
    if idp is None:
        raise Http404
    actions.do_delete_provider(idp, acting=principal.user, ip=principal.ip)
    messages.success(request, f"{Kind(kind).label} removed: its sign-in button is gone.")
    return redirect("sso_settings")


@require_POST
@member_required
def sso_mapping_add(request: HttpRequest, principal: Principal) -> HttpResponse:
    require_org_admin(principal)
    form = MappingForm(request.POST, org=principal.member_org)
    if form.is_valid():
        try:
            actions.do_add_mapping(
                principal.member_org,
                value=form.cleaned_data["value"],
                group=form.cleaned_data["group"],
                role=form.cleaned_data["role"],
                acting=principal.user,
                ip=principal.ip,
            )
        except ValidationError as exc:
            add_errors(form, exc)
        else:
            messages.success(request, "Mapping added. It applies at each person's next sign-in.")
            return redirect("sso_settings")
    # The settings form on this page shows what is stored (an empty one, saved from here,
    # would wipe the domains and turn federation off).
    org = principal.member_org
    context = _settings_context(
        request,
        principal,
        form=SsoSettingsForm(org=org, initial=_settings_initial(org)),
        mapping_form=form,
    )
    return render(request, "sso/settings.html", context, status=400)


@require_POST
@member_required
def sso_mapping_delete(request: HttpRequest, principal: Principal, mapping_id: str) -> HttpResponse:
    mapping = access_claim_mapping(principal, mapping_id)
    actions.do_delete_mapping(mapping, acting=principal.user, ip=principal.ip)
    messages.success(request, "Mapping removed. It stops applying at each person's next sign-in.")
    return redirect("sso_settings")


@require_POST
@member_required
def member_sso(request: HttpRequest, principal: Principal, user_id: str) -> HttpResponse:
    member = access_member(principal, user_id)
    allowed = request.POST.get("allowed") == "1"
    actions.do_set_sso_allowed(member, allowed, acting=principal.user, ip=principal.ip)
    messages.success(
        request,
        "This member may now sign in with single sign-on."
        if allowed
        else "This member can no longer sign in with single sign-on.",
    )
    return redirect("member_detail", user_id=member.pk)


# -- starting a sign-in (anonymous) ------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def sso_start(request: HttpRequest) -> HttpResponse:
    """ "Sign in with SSO": the org is found by the e-mail domain typed (domains only: this says
    nothing about which accounts exist)."""
    form = StartForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        domain = form.cleaned_data["email"].rsplit("@", 1)[1].lower()
        found = EmailDomain.objects.filter(domain=domain).first()
        if (
            found is not None
            and IdentityProvider.objects.filter(org=found.org_id, enabled=True).exists()
        ):
            return redirect("sso_org", org_id=found.org_id)
        form.add_error("email", "Single sign-on is not set up for this e-mail domain.")
    return render(request, "sso/start.html", {"form": form}, status=400 if form.errors else 200)


def sso_org(request: HttpRequest, org_id: str) -> HttpResponse:
    """An org's own sign-in page: a button per enabled provider (a POST with a CSRF token)."""
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET"})
    org = Organization.objects.filter(pk=org_id).first()
    providers = list(IdentityProvider.objects.filter(org=org, enabled=True)) if org else []
    if org is None or not providers:
        raise Http404
    buttons = [(p.get_kind_display(), login_url(p)) for p in providers]
    context = {"org": org, "buttons": buttons}
    return allow_form_action(render(request, "sso/org.html", context), providers)


def oidc_login(request: HttpRequest, provider_id: str) -> HttpResponse:
    """allauth's OpenID Connect login view, for one of our providers (its GET confirmation
    page posts to itself and is redirected to the provider, like the buttons above)."""
    response = allauth_oidc.login(request, provider_id)
    idp = provider_by_id(provider_id)
    return allow_form_action(response, [idp] if idp else [])


def allow_form_action(response: HttpResponse, idps: list[IdentityProvider]) -> HttpResponse:
    """Let this page's forms lead to the providers' sign-in pages. Browsers apply CSP
    `form-action` to the redirects that follow a form post too, and the site-wide policy
    allows this origin only: a sign-in button posts here and is redirected to the provider's
    authorization endpoint, on its issuer's origin (Google, Microsoft)."""
    origins = sorted({origin(server_url(idp)) for idp in idps})
    if origins:
        response._csp_update = {"form-action": origins}  # type: ignore[attr-defined]  # django-csp reads it
    return response


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
