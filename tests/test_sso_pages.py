"""The SSO pages: the admin's settings, provider and mapping forms, and the sign-in pages that
find an org's SSO buttons. (The sign-in itself, end to end, is tests/test_sso.py.)"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.utils.html import escape

from dashvault.audit.models import AuditEntry
from dashvault.orgs.models import Group
from dashvault.sso.models import ClaimMapping, EmailDomain, IdentityProvider
from dashvault.sso.providers import login_url
from tests.conftest import make_client
from tests.oidc import TENANT

SSO = "/org/sso/"


@pytest.fixture
def admin(admin_a: Any) -> Any:
    return make_client(admin_a)


def sso_audit() -> list[str]:
    return list(
        AuditEntry.objects.filter(action__startswith="sso.")
        .order_by("id")
        .values_list("action", flat=True)
    )


def settings_data(**changes: Any) -> dict[str, Any]:
    data = {"domains": "a.example", "federation": "on", "password_signin": "on"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def azure_data(**changes: Any) -> dict[str, Any]:
    data = {"client_id": "app-1", "client_secret": "secret-1", "tenant_id": TENANT, "enabled": "on"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


# --- identity providers ----------------------------------------------------------------------


def test_an_admin_sets_up_azure_and_gets_the_redirect_uri(admin, admin_a):
    assert admin.get("/org/sso/azure/").status_code == 200
    response = admin.post("/org/sso/azure/", azure_data(tenant_id=TENANT.upper()))
    assert response.status_code == 302 and response["Location"] == SSO
    idp = IdentityProvider.objects.get(org=admin_a.org)
    assert (idp.kind, idp.client_id, idp.tenant_id, idp.enabled) == ("azure", "app-1", TENANT, True)
    page = admin.get(SSO).content.decode()
    assert f"https://testserver/accounts/oidc/{idp.pk}/login/callback/" in page
    assert f"https://testserver/sso/{admin_a.org_id}/" in page
    assert sso_audit() == ["sso.provider_create"]


def test_an_admin_sets_up_google_with_a_workspace_domain(admin, admin_a):
    data = {"client_id": "g-1", "client_secret": "s", "hosted_domain": "A.Example", "enabled": "on"}
    assert admin.post("/org/sso/google/", data).status_code == 302
    idp = IdentityProvider.objects.get(org=admin_a.org, kind="google")
    assert idp.hosted_domain == "a.example" and idp.tenant_id == ""


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("azure", azure_data(tenant_id="not-a-guid"), "Enter the directory (tenant) id"),
        ("azure", azure_data(tenant_id=""), "Enter the directory (tenant) id"),
        ("azure", azure_data(client_secret=""), "Enter the client secret."),
        ("azure", azure_data(client_id=""), "This field is required."),
        (
            "google",
            {"client_id": "g", "client_secret": "s", "hosted_domain": "not a domain"},
            "Enter a domain name",
        ),
    ],
    ids=["bad-tenant", "no-tenant", "no-secret", "no-client-id", "bad-hosted-domain"],
)
def test_a_bad_provider_form_is_a_400_that_stores_nothing(admin, admin_a, kind, data, message):
    response = admin.post(f"/org/sso/{kind}/", data)
    assert response.status_code == 400
    assert escape(message) in response.content.decode()
    assert not IdentityProvider.objects.exists()
    assert sso_audit() == []


def test_a_bad_change_keeps_the_stored_provider(admin, admin_a):
    admin.post("/org/sso/azure/", azure_data())
    before = IdentityProvider.objects.get()
    response = admin.post("/org/sso/azure/", azure_data(client_id="app-2", tenant_id="x"))
    assert response.status_code == 400
    after = IdentityProvider.objects.get()
    assert (after.client_id, after.tenant_id) == ("app-1", TENANT)
    assert bytes(after.client_secret) == bytes(before.client_secret)


def test_an_unknown_provider_kind_is_not_found(admin):
    assert admin.get("/org/sso/okta/").status_code == 404
    assert admin.post("/org/sso/okta/", azure_data()).status_code == 404
    assert not IdentityProvider.objects.exists()


def test_removing_a_provider_removes_its_button(admin, admin_a):
    admin.post("/org/sso/azure/", azure_data())
    assert admin.post("/org/sso/azure/delete/").status_code == 302
    assert not IdentityProvider.objects.exists()
    assert sso_audit() == ["sso.provider_create", "sso.provider_delete"]
    assert admin.post("/org/sso/azure/delete/").status_code == 404


# --- org-wide settings -----------------------------------------------------------------------


def test_an_admin_saves_domains_federation_and_default_groups(admin, admin_a, dashboards_a):
    group = dashboards_a["group"]
    data = settings_data(domains="A.example, @b-sub.a.example\n\n", default_groups=[group.pk])
    response = admin.post(SSO, data)
    assert response.status_code == 302
    org = admin_a.org
    org.refresh_from_db()
    assert org.sso_federation and org.password_signin
    domains = EmailDomain.objects.filter(org=org).values_list("domain", flat=True)
    assert sorted(domains) == ["a.example", "b-sub.a.example"]
    assert list(Group.objects.filter(sso_default=True)) == [group]
    entry = AuditEntry.objects.get(action="sso.settings")
    assert entry.detail["domains"] == 2 and entry.detail["federation"] is True
    page = admin.get(SSO).content.decode()
    assert "b-sub.a.example" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (settings_data(domains=""), "Federation needs at least one allowed e-mail domain."),
        (settings_data(domains="not a domain"), "is not a domain name."),
        (settings_data(domains="b.example"), "b.example is used by another organization."),
        (settings_data(password_signin=None), "Choose a break-glass admin before"),
    ],
    ids=["federation-without-domains", "bad-domain", "other-orgs-domain", "no-break-glass"],
)
def test_bad_settings_are_a_400_that_changes_nothing(admin, admin_a, admin_b, data, message):
    EmailDomain.objects.create(org=admin_b.org, domain="b.example")
    admin.post(SSO, settings_data(domains="keep.example", federation=None))
    response = admin.post(SSO, data)
    assert response.status_code == 400
    assert escape(message) in response.content.decode()
    org = admin_a.org
    org.refresh_from_db()
    assert not org.sso_federation and org.password_signin
    assert list(EmailDomain.objects.filter(org=org).values_list("domain", flat=True)) == [
        "keep.example"
    ]
    assert sso_audit() == ["sso.settings"]


def test_the_break_glass_choice_offers_only_this_orgs_active_admins(admin, admin_a, admin_b):
    page = admin.get(SSO).content.decode()
    assert f'value="{admin_a.pk}"' in page and f'value="{admin_b.pk}"' not in page
    response = admin.post(SSO, settings_data(password_signin=None, break_glass=admin_b.pk))
    assert response.status_code == 400
    admin_a.org.refresh_from_db()
    assert admin_a.org.password_signin


# --- claim mappings --------------------------------------------------------------------------


def test_an_admin_adds_and_removes_a_mapping(admin, admin_a, dashboards_a):
    group = dashboards_a["group"]
    data = {"value": " 0b6f-grp ", "group": group.pk, "role": "editor"}
    assert admin.post("/org/sso/mappings/", data).status_code == 302
    mapping = ClaimMapping.objects.get()
    assert (mapping.org_id, mapping.value, mapping.group, mapping.role) == (
        admin_a.org_id,
        "0b6f-grp",
        group,
        "editor",
    )
    assert "0b6f-grp" in admin.get(SSO).content.decode()
    response = admin.post(f"/org/sso/mappings/{mapping.pk}/delete/")
    assert response.status_code == 302
    assert not ClaimMapping.objects.exists()
    assert sso_audit() == ["sso.mapping_add", "sso.mapping_delete"]
    assert admin.post(f"/org/sso/mappings/{mapping.pk}/delete/").status_code == 404


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"value": "g1"}, "Choose a group, a role, or both."),
        ({"value": "", "role": "editor"}, "This field is required."),
        ({"value": "g1", "role": "owner"}, "Select a valid choice."),
    ],
    ids=["neither-group-nor-role", "no-value", "unknown-role"],
)
def test_a_bad_mapping_is_a_400_that_stores_nothing(admin, data, message):
    response = admin.post("/org/sso/mappings/", data)
    assert response.status_code == 400
    assert escape(message) in response.content.decode()
    assert not ClaimMapping.objects.exists() and sso_audit() == []


def test_a_mapping_cannot_name_another_orgs_group(admin, admin_b):
    theirs = Group.objects.create(org=admin_b.org, name="Their group")
    response = admin.post("/org/sso/mappings/", {"value": "g1", "group": theirs.pk})
    assert response.status_code == 400 and "Their group" not in response.content.decode()
    assert not ClaimMapping.objects.exists()


def test_a_refused_mapping_page_still_shows_the_stored_settings(admin, admin_a, dashboards_a):
    # The page re-rendered after a bad mapping carries the settings form too: saving it from
    # there must not wipe the domains or turn federation off.
    group = dashboards_a["group"]
    admin.post(SSO, settings_data(domains="keep.example", default_groups=[group.pk]))
    page = admin.post("/org/sso/mappings/", {"value": "g1"}).content.decode()
    assert "keep.example" in page
    assert 'name="federation" id="id_federation" checked' in page
    assert f'value="{group.pk}" id="id_default_groups_0" checked' in page


# --- member SSO toggle -----------------------------------------------------------------------


def test_the_member_page_allows_and_stops_sso(admin, viewer_a):
    page = admin.get(f"/org/members/{viewer_a.pk}/").content.decode()
    assert "Allow SSO sign-in" in page
    admin.post(f"/org/members/{viewer_a.pk}/sso/", {"allowed": "1"})
    viewer_a.refresh_from_db()
    assert viewer_a.sso_allowed
    assert "Stop SSO sign-in" in admin.get(f"/org/members/{viewer_a.pk}/").content.decode()
    admin.post(f"/org/members/{viewer_a.pk}/sso/", {"allowed": "0"})
    viewer_a.refresh_from_db()
    assert not viewer_a.sso_allowed


# --- finding an org's sign-in page -----------------------------------------------------------


@pytest.fixture
def org_with_sso(admin, admin_a: Any) -> Any:
    admin.post("/org/sso/azure/", azure_data())
    admin.post(SSO, settings_data(domains="a.example"))
    return admin_a.org


def test_the_sso_start_page_asks_for_an_address(client, db):
    page = client.get("/sso/")
    assert page.status_code == 200 and b'name="email"' in page.content


def test_an_address_at_a_configured_domain_leads_to_the_orgs_sign_in_page(client, org_with_sso):
    response = client.post("/sso/", {"email": "Someone@A.Example"})
    assert response.status_code == 302 and response["Location"] == f"/sso/{org_with_sso.pk}/"
    page = client.get(response["Location"])
    assert page.status_code == 200
    idp = IdentityProvider.objects.get()
    html = page.content.decode()
    assert f'<form method="post" action="{login_url(idp)}"' in html
    assert 'name="process" value="login"' in html and "csrfmiddlewaretoken" in html


@pytest.mark.parametrize("email", ["someone@elsewhere.example", "someone@sub.a.example"])
def test_an_unknown_domain_gets_a_clear_400(client, org_with_sso, email):
    response = client.post("/sso/", {"email": email})
    assert response.status_code == 400
    assert "Single sign-on is not set up for this e-mail domain." in response.content.decode()


def test_not_an_address_gets_a_400(client, db):
    response = client.post("/sso/", {"email": "not an address"})
    assert response.status_code == 400 and b"valid email" in response.content


def test_a_domain_whose_providers_are_all_disabled_gets_a_400(client, admin, org_with_sso):
    admin.post("/org/sso/azure/", azure_data(client_secret="", enabled=None))
    assert not IdentityProvider.objects.get().enabled
    assert client.post("/sso/", {"email": "someone@a.example"}).status_code == 400
    assert client.get(f"/sso/{org_with_sso.pk}/").status_code == 404


def test_an_unknown_org_page_is_not_found(client, org_with_sso, org_b):
    assert client.get(f"/sso/{uuid.uuid4()}/").status_code == 404
    assert client.get(f"/sso/{org_b.pk}/").status_code == 404  # an org without SSO
    assert client.get("/sso/not-a-uuid/").status_code == 404
    assert client.post(f"/sso/{org_with_sso.pk}/").status_code == 405


def test_the_password_sign_in_page_links_to_sso(client, db):
    assert b'href="/sso/"' in client.get("/accounts/login/").content
