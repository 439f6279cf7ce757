from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path, re_path

from dashvault.accounts import views as accounts
from dashvault.api import pages as api_pages
from dashvault.api.views import api
from dashvault.audit import views as audit_views
from dashvault.dashboards import views as dashboards
from dashvault.grants import views as grants
from dashvault.integrations import views as integrations
from dashvault.kiosk import views as kiosk
from dashvault.orgs import views as orgs
from dashvault.privacy import views as privacy
from dashvault.server import views as server
from dashvault.sso import views as sso


def not_found(request: HttpRequest) -> HttpResponse:
    raise Http404


def api_not_found(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"detail": "No such API endpoint."}, status=404)


urlpatterns = [
    path("", server.home, name="home"),
    # People do not manage their own e-mail addresses: admins (or SSO) own identities.
    path("accounts/email/", not_found),
    path("accounts/signup/", not_found),  # no public sign-up
    # allauth's own social-account pages (connections, sign-up) are not used: admins and SSO
    # federation own identities. Its OpenID Connect login and callback, and its cancelled and
    # error pages, stay (sso.adapter).
    re_path(r"^accounts/3rdparty/(signup/)?$", not_found),
    re_path(r"^accounts/social/", not_found),
    re_path(r"^accounts/oidc/(?P<provider_id>[^/]+)/login/$", sso.oidc_login),
    path("accounts/", include("allauth.urls")),
    path("dashboards/", dashboards.dashboard_list, name="dashboard_list"),
    path("dashboards/new/", dashboards.dashboard_new, name="dashboard_new"),
    path("dashboards/<uuid:dashboard_id>/", dashboards.dashboard_detail, name="dashboard_detail"),
    path(
        "dashboards/<uuid:dashboard_id>/data/",
        dashboards.dashboard_widget_data,
        name="dashboard_data",
    ),
    path("dashboards/<uuid:dashboard_id>/edit/", dashboards.dashboard_edit, name="dashboard_edit"),
    path(
        "dashboards/<uuid:dashboard_id>/rename/",
        dashboards.dashboard_rename,
        name="dashboard_rename",
    ),
    path(
        "dashboards/<uuid:dashboard_id>/duplicate/",
        dashboards.dashboard_duplicate,
        name="dashboard_duplicate",
    ),
    path(
        "dashboards/<uuid:dashboard_id>/delete/",
        dashboards.dashboard_delete,
        name="dashboard_delete",
    ),
    path("dashboards/<uuid:dashboard_id>/widgets/new/", dashboards.widget_new, name="widget_new"),
    path(
        "dashboards/<uuid:dashboard_id>/widgets/<uuid:widget_id>/",
        dashboards.widget_edit,
        name="widget_edit",
    ),
    path(
        "dashboards/<uuid:dashboard_id>/widgets/<uuid:widget_id>/arrange/",
        dashboards.widget_arrange,
        name="widget_arrange",
    ),
    path(
        "dashboards/<uuid:dashboard_id>/widgets/<uuid:widget_id>/delete/",
        dashboards.widget_delete,
        name="widget_delete",
    ),
    path("org/members/", accounts.member_list, name="member_list"),
    path("org/members/new/", accounts.member_add, name="member_add"),
    path("org/members/<uuid:user_id>/", accounts.member_detail, name="member_detail"),
    path("org/members/<uuid:user_id>/role/", accounts.member_role, name="member_role"),
    path("org/members/<uuid:user_id>/active/", accounts.member_active, name="member_active"),
    path("org/members/<uuid:user_id>/link/", accounts.member_link, name="member_link"),
    path("org/members/<uuid:user_id>/sso/", sso.member_sso, name="member_sso"),
    path("org/members/<uuid:user_id>/export/", privacy.member_export, name="member_export"),
    path("org/members/<uuid:user_id>/erase/", privacy.member_erase, name="member_erase"),
    path("org/sso/", sso.sso_settings, name="sso_settings"),
    path("org/sso/mappings/", sso.sso_mapping_add, name="sso_mapping_add"),
    path(
        "org/sso/mappings/<uuid:mapping_id>/delete/",
        sso.sso_mapping_delete,
        name="sso_mapping_delete",
    ),
    path("org/sso/<str:kind>/", sso.sso_provider, name="sso_provider"),
    path("org/sso/<str:kind>/delete/", sso.sso_provider_delete, name="sso_provider_delete"),
    path("sso/", sso.sso_start, name="sso_start"),
    path("sso/<uuid:org_id>/", sso.sso_org, name="sso_org"),
    path("org/groups/", orgs.group_list, name="group_list"),
    path("org/groups/new/", orgs.group_new, name="group_new"),
    path("org/groups/<uuid:group_id>/", orgs.group_edit, name="group_edit"),
    path("org/groups/<uuid:group_id>/delete/", orgs.group_delete, name="group_delete"),
    path("org/settings/", orgs.org_settings, name="org_settings"),
    path("org/export/", privacy.org_export, name="org_export"),
    path("org/delete/", privacy.org_delete, name="org_delete"),
    path("account/data/", privacy.my_data, name="my_data"),
    path("org/tokens/", api_pages.token_list, name="token_list"),
    path("org/tokens/<uuid:token_id>/revoke/", api_pages.token_revoke, name="token_revoke"),
    path("org/kiosks/", kiosk.kiosk_list, name="kiosk_list"),
    path("org/kiosks/new/", kiosk.kiosk_new, name="kiosk_new"),
    path("org/kiosks/<uuid:link_id>/", kiosk.kiosk_edit, name="kiosk_edit"),
    path("org/kiosks/<uuid:link_id>/rotate/", kiosk.kiosk_rotate, name="kiosk_rotate"),
    path("org/kiosks/<uuid:link_id>/revoke/", kiosk.kiosk_revoke, name="kiosk_revoke"),
    # Any token shape reaches the view, so every guess counts against the guessing address.
    re_path(r"^kiosk/(?P<token>[^/]{1,200})/?$", kiosk.kiosk_tv, name="kiosk_tv"),
    path("org/audit/", audit_views.org_audit, name="org_audit"),
    path("org/integrations/", integrations.integration_list, name="integration_list"),
    path("org/integrations/new/", integrations.integration_new, name="integration_new"),
    path(
        "org/integrations/<uuid:integration_id>/",
        integrations.integration_edit,
        name="integration_edit",
    ),
    path(
        "org/integrations/<uuid:integration_id>/sync/",
        integrations.integration_sync,
        name="integration_sync",
    ),
    path(
        "org/integrations/<uuid:integration_id>/delete/",
        integrations.integration_delete,
        name="integration_delete",
    ),
    path("staff/", server.staff_home, name="staff_home"),
    path("staff/audit/", audit_views.platform_audit, name="platform_audit"),
    path("staff/orgs/<uuid:org_id>/access/", grants.grant_open, name="grant_open"),
    path(
        "staff/orgs/<uuid:org_id>/access/<uuid:grant_id>/end/",
        grants.grant_end_by_staff,
        name="grant_end_by_staff",
    ),
    path("staff/orgs/<uuid:org_id>/dashboards/", grants.grant_dashboards, name="grant_dashboards"),
    path(
        "staff/orgs/<uuid:org_id>/dashboards/<uuid:dashboard_id>/",
        grants.grant_dashboard,
        name="grant_dashboard",
    ),
    path("org/access/", grants.grant_list, name="grant_list"),
    path("org/access/approval/", grants.grant_approval_setting, name="grant_approval_setting"),
    path("org/access/<uuid:grant_id>/<str:decision>/", grants.grant_decide, name="grant_decide"),
    path("staff/orgs/<uuid:org_id>/networks/", orgs.org_networks, name="org_networks"),
    path(
        "staff/orgs/<uuid:org_id>/integrations/",
        integrations.staff_integrations,
        name="staff_integrations",
    ),
    path("api/v1/", api.urls),
    re_path(r"^api/", api_not_found),  # API clients get JSON, not the HTML 404 page
]
