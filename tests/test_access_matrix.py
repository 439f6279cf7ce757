"""Every endpoint, checked the same way: own org, another org (404), missing role (403),
anonymous (sign-in), wrong method (405). New endpoints add a class here."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from django.urls import reverse

from dashvault.accounts.models import User
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.grants.actions import do_open_grant
from dashvault.grants.models import AccessGrant
from dashvault.integrations.actions import do_create_integration
from dashvault.integrations.models import Integration
from dashvault.kiosk.actions import do_create_kiosk_link
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Organization
from dashvault.sso.models import ClaimMapping, IdentityProvider
from tests.conftest import make_client

SIGN_IN = "/accounts/login/"
TENANT = "6f1c2b7e-1d7a-4c1e-9a55-0d3a3f9b2c11"  # an Azure AD directory id


class EndpointChecks:
    """Mixin: subclass with the endpoint's url name and the rules it must obey."""

    url_name: ClassVar[str]
    obj: ClassVar[str | None] = None  # fixture-built object of org A the URL names
    kwarg: ClassVar[str] = ""
    method: ClassVar[str] = "get"
    wrong_method: ClassVar[str] = "put"
    allowed: ClassVar[tuple[str, ...]] = ("admin", "editor", "viewer")
    denied: ClassVar[tuple[str, ...]] = ()
    ok_status: ClassVar[tuple[int, ...]] = (200,)
    data: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def world(self, admin_a, editor_a, viewer_a, admin_b, dashboards_a, staff):
        objects = {
            "dashboard": dashboards_a["sales"],
            "group": dashboards_a["group"],
            "member": viewer_a,
            "kiosk": do_create_kiosk_link(
                admin_a.org, name="Lobby TV", dashboards=[dashboards_a["sales"]], acting=admin_a
            )[0],
        }
        users = {
            "admin": admin_a,
            "editor": editor_a,
            "viewer": viewer_a,
            "other": admin_b,
            "staff": staff,
        }
        return users, objects

    def url(self, objects: dict[str, Any]) -> str:
        if self.obj is None:
            return reverse(self.url_name)
        return reverse(self.url_name, kwargs={self.kwarg: objects[self.obj].pk})

    def call(self, client: Any, url: str, method: str | None = None) -> Any:
        method = method or self.method
        return getattr(client, method)(url, self.data if method == "post" else None)

    def test_it_answers_the_allowed_roles(self, world):
        users, objects = world
        for role in self.allowed:
            response = self.call(make_client(users[role]), self.url(objects))
            assert response.status_code in self.ok_status, (role, response.status_code)

    def test_it_refuses_a_missing_role_with_403(self, world):
        users, objects = world
        for role in self.denied:
            response = self.call(make_client(users[role]), self.url(objects))
            assert response.status_code == 403, role

    def test_it_hides_other_orgs_objects_with_404(self, world):
        users, objects = world
        response = self.call(make_client(users["other"]), self.url(objects))
        if self.obj is not None:
            assert response.status_code == 404
        content = response.content.decode()
        for marker in ("Sales A", "Board A", "Sales team A", "viewer@a.example", "Org A"):
            assert marker not in content

    def test_it_sends_anonymous_visitors_to_sign_in(self, world):
        _, objects = world
        response = self.call(make_client(), self.url(objects))
        assert response.status_code == 302
        assert response["Location"].startswith(SIGN_IN)

    def test_it_refuses_a_wrong_method_with_405(self, world):
        users, objects = world
        response = self.call(make_client(users["admin"]), self.url(objects), self.wrong_method)
        assert response.status_code == 405

    def test_it_refuses_platform_staff_without_a_grant(self, world):
        users, objects = world
        response = self.call(make_client(users["staff"]), self.url(objects))
        assert response.status_code == 403


class TestDashboardList(EndpointChecks):
    url_name = "dashboard_list"


class TestDashboardNew(EndpointChecks):
    url_name = "dashboard_new"
    allowed = ("admin", "editor")
    denied = ("viewer",)


class TestDashboardCreate(EndpointChecks):
    url_name = "dashboard_new"
    method = "post"
    data = {"title": "New board"}
    allowed = ("admin", "editor")
    denied = ("viewer",)
    ok_status = (302,)


class TestDashboardDetail(EndpointChecks):
    url_name = "dashboard_detail"
    obj, kwarg = "dashboard", "dashboard_id"
    wrong_method = "post"


class TestMemberList(EndpointChecks):
    url_name = "member_list"
    allowed, denied = ("admin",), ("editor", "viewer")


class TestMemberAdd(EndpointChecks):
    url_name = "member_add"
    method = "post"
    data = {"email": "new@a.example", "role": "viewer"}
    allowed, denied = ("admin",), ("editor", "viewer")


class TestMemberDetail(EndpointChecks):
    url_name = "member_detail"
    obj, kwarg = "member", "user_id"
    allowed, denied = ("admin",), ("editor", "viewer")
    wrong_method = "post"


class TestMemberRole(EndpointChecks):
    url_name = "member_role"
    obj, kwarg = "member", "user_id"
    method, wrong_method = "post", "get"
    data = {"role": "editor"}
    allowed, denied = ("admin",), ("editor", "viewer")
    ok_status = (302,)


class TestMemberActive(EndpointChecks):
    url_name = "member_active"
    obj, kwarg = "member", "user_id"
    method, wrong_method = "post", "get"
    data = {"active": "1"}
    allowed, denied = ("admin",), ("editor", "viewer")
    ok_status = (302,)


class TestMemberLink(EndpointChecks):
    url_name = "member_link"
    obj, kwarg = "member", "user_id"
    method, wrong_method = "post", "get"
    allowed, denied = ("admin",), ("editor", "viewer")


class TestGroupList(EndpointChecks):
    url_name = "group_list"
    allowed, denied = ("admin",), ("editor", "viewer")


class TestGroupNew(EndpointChecks):
    url_name = "group_new"
    allowed, denied = ("admin",), ("editor", "viewer")


class TestGroupEdit(EndpointChecks):
    url_name = "group_edit"
    obj, kwarg = "group", "group_id"
    allowed, denied = ("admin",), ("editor", "viewer")


class TestGroupDelete(EndpointChecks):
    url_name = "group_delete"
    obj, kwarg = "group", "group_id"
    method, wrong_method = "post", "get"
    allowed, denied = ("admin",), ("editor", "viewer")
    ok_status = (302,)


class TestOrgSettings(EndpointChecks):
    url_name = "org_settings"
    allowed, denied = ("admin",), ("editor", "viewer")


class TestStaffHome:
    """Staff pages turn the check around: staff in, everyone else 404."""

    def test_it_serves_staff(self, staff, org_a):
        response = make_client(staff).get(reverse("staff_home"))
        assert response.status_code == 200
        assert b"Org A" in response.content

    def test_it_hides_itself_from_org_members(self, admin_a):
        assert make_client(admin_a).get(reverse("staff_home")).status_code == 404

    def test_it_sends_anonymous_visitors_to_sign_in(self, db):
        response = make_client().get(reverse("staff_home"))
        assert response.status_code == 302 and response["Location"].startswith(SIGN_IN)

    def test_it_refuses_a_wrong_method_with_405(self, staff):
        assert make_client(staff).post(reverse("staff_home")).status_code == 405


class TestTokenList(EndpointChecks):
    url_name = "token_list"
    allowed, denied = ("admin",), ("editor", "viewer")


class TestTokenCreate(EndpointChecks):
    url_name = "token_list"
    method, wrong_method = "post", "put"
    data = {"name": "t", "scopes": ["push"]}
    allowed, denied = ("admin",), ("editor", "viewer")


# --- dashboard editing and the batched widget data ------------------------------------------


class TestDashboardData(EndpointChecks):
    url_name = "dashboard_data"
    obj, kwarg = "dashboard", "dashboard_id"
    wrong_method = "post"


class TestDashboardEdit(EndpointChecks):
    url_name = "dashboard_edit"
    obj, kwarg = "dashboard", "dashboard_id"
    allowed, denied = ("admin", "editor"), ("viewer",)
    wrong_method = "post"


class TestDashboardRename(EndpointChecks):
    url_name = "dashboard_rename"
    obj, kwarg = "dashboard", "dashboard_id"
    method, wrong_method = "post", "get"
    data = {"title": "Renamed"}
    allowed, denied = ("admin", "editor"), ("viewer",)
    ok_status = (302,)


class TestDashboardDuplicate(EndpointChecks):
    url_name = "dashboard_duplicate"
    obj, kwarg = "dashboard", "dashboard_id"
    method, wrong_method = "post", "get"
    allowed, denied = ("admin", "editor"), ("viewer",)
    ok_status = (302,)


class TestDashboardDeleteConfirm(EndpointChecks):
    url_name = "dashboard_delete"
    obj, kwarg = "dashboard", "dashboard_id"
    allowed, denied = ("admin", "editor"), ("viewer",)


class TestDashboardDelete(EndpointChecks):
    url_name = "dashboard_delete"
    obj, kwarg = "dashboard", "dashboard_id"
    method, wrong_method = "post", "put"
    allowed, denied = ("admin", "editor"), ("viewer",)
    ok_status = (302,)

    def url(self, objects: dict[str, Any]) -> str:
        # Every call deletes: each gets its own dashboard, granted like "Sales A".
        doomed = Dashboard.objects.create(org=objects["dashboard"].org, title="Doomed A")
        objects["group"].dashboards.add(doomed)
        return reverse(self.url_name, kwargs={self.kwarg: doomed.pk})


class TestWidgetNew(EndpointChecks):
    url_name = "widget_new"
    obj, kwarg = "dashboard", "dashboard_id"
    allowed, denied = ("admin", "editor"), ("viewer",)


class TestWidgetCreate(EndpointChecks):
    url_name = "widget_new"
    obj, kwarg = "dashboard", "dashboard_id"
    method, wrong_method = "post", "put"
    data = {"kind": "text", "text": "Hello", "w": "4", "h": "2", "top_n": "5"}
    allowed, denied = ("admin", "editor"), ("viewer",)
    ok_status = (302,)


class WidgetEndpointChecks(EndpointChecks):
    """Widget URLs name the dashboard and the widget: a text widget on org A's "Sales A"."""

    allowed, denied = ("admin", "editor"), ("viewer",)

    @pytest.fixture
    def world(self, admin_a, editor_a, viewer_a, admin_b, dashboards_a, staff):
        sales = dashboards_a["sales"]
        widget = Widget.objects.create(
            org=sales.org, dashboard=sales, kind="text", config={"text": "note"}
        )
        users = {
            "admin": admin_a,
            "editor": editor_a,
            "viewer": viewer_a,
            "other": admin_b,
            "staff": staff,
        }
        return users, {"dashboard": sales, "widget": widget, "group": dashboards_a["group"]}

    def url(self, objects: dict[str, Any]) -> str:
        kwargs = {"dashboard_id": objects["dashboard"].pk, "widget_id": objects["widget"].pk}
        return reverse(self.url_name, kwargs=kwargs)


class TestWidgetEdit(WidgetEndpointChecks):
    url_name = "widget_edit"
    obj = "widget"


class TestWidgetUpdate(WidgetEndpointChecks):
    url_name = "widget_edit"
    obj = "widget"
    method, wrong_method = "post", "put"
    data = {"kind": "text", "text": "Changed", "top_n": "5"}
    ok_status = (302,)


class TestWidgetArrange(WidgetEndpointChecks):
    url_name = "widget_arrange"
    obj = "widget"
    method, wrong_method = "post", "get"
    data = {"nudge": "right"}
    ok_status = (302,)


class TestWidgetDeleteConfirm(WidgetEndpointChecks):
    url_name = "widget_delete"
    obj = "widget"


class TestWidgetDelete(WidgetEndpointChecks):
    url_name = "widget_delete"
    obj = "widget"
    method, wrong_method = "post", "put"
    ok_status = (302,)

    def url(self, objects: dict[str, Any]) -> str:
        # Every call deletes: each gets its own widget on "Sales A".
        sales = objects["dashboard"]
        doomed = Widget.objects.create(org=sales.org, dashboard=sales, kind="text", config={})
        return reverse(self.url_name, kwargs={"dashboard_id": sales.pk, "widget_id": doomed.pk})


# --- kiosk links (org admins) ----------------------------------------------------------------


class KioskFormChecks(EndpointChecks):
    """The kiosk form's POST ticks "Sales A" (org A's; another org's form has no such field)."""

    allowed, denied = ("admin",), ("editor", "viewer")
    method, wrong_method = "post", "put"

    def call(self, client: Any, url: str, method: str | None = None) -> Any:
        if (method or self.method) != "post":
            return super().call(client, url, method)
        sales = Dashboard.objects.get(title="Sales A")
        data = {"name": "Hall TV", "rotation_seconds": "30", f"show_{sales.pk}": "on"}
        return client.post(url, data)


class TestKioskList(EndpointChecks):
    url_name = "kiosk_list"
    allowed, denied = ("admin",), ("editor", "viewer")
    wrong_method = "post"


class TestKioskNew(EndpointChecks):
    url_name = "kiosk_new"
    allowed, denied = ("admin",), ("editor", "viewer")


class TestKioskCreate(KioskFormChecks):
    url_name = "kiosk_new"
    ok_status = (200,)  # the page showing the new link's address once


class TestKioskEdit(EndpointChecks):
    url_name = "kiosk_edit"
    obj, kwarg = "kiosk", "link_id"
    allowed, denied = ("admin",), ("editor", "viewer")


class TestKioskUpdate(KioskFormChecks):
    url_name = "kiosk_edit"
    obj, kwarg = "kiosk", "link_id"
    ok_status = (302,)


class TestKioskRotate(EndpointChecks):
    url_name = "kiosk_rotate"
    obj, kwarg = "kiosk", "link_id"
    method, wrong_method = "post", "get"
    allowed, denied = ("admin",), ("editor", "viewer")
    ok_status = (200,)  # the page showing the new address once


class TestKioskRevoke(EndpointChecks):
    url_name = "kiosk_revoke"
    obj, kwarg = "kiosk", "link_id"
    method, wrong_method = "post", "get"
    allowed, denied = ("admin",), ("editor", "viewer")
    ok_status = (302,)


# --- single sign-on settings (org admins) -----------------------------------------------------


class SsoEndpointChecks(EndpointChecks):
    """Org A has Google and Azure AD set up (client ids that name "Org A") and a mapping from a
    claim value to "Sales team A": another org's admin must see none of them."""

    allowed, denied = ("admin",), ("editor", "viewer")

    @pytest.fixture
    def world(self, admin_a, editor_a, viewer_a, admin_b, dashboards_a, staff):
        for kind, extra in (("google", {}), ("azure", {"tenant_id": TENANT})):
            IdentityProvider.objects.create(
                org=admin_a.org, kind=kind, client_id=f"Org A {kind} app", **extra
            )
        mapping = ClaimMapping.objects.create(
            org=admin_a.org, value="claim-of-Org A", group=dashboards_a["group"]
        )
        users = {
            "admin": admin_a,
            "editor": editor_a,
            "viewer": viewer_a,
            "other": admin_b,
            "staff": staff,
        }
        return users, {"member": viewer_a, "mapping": mapping, "group": dashboards_a["group"]}


class TestSsoSettings(SsoEndpointChecks):
    url_name = "sso_settings"


class TestSsoSettingsSave(SsoEndpointChecks):
    url_name = "sso_settings"
    method, wrong_method = "post", "put"
    data = {"domains": "", "password_signin": "on"}
    ok_status = (302,)


class SsoProviderChecks(SsoEndpointChecks):
    url_name = "sso_provider"
    kind: ClassVar[str] = "google"

    def url(self, objects: dict[str, Any]) -> str:
        return reverse(self.url_name, kwargs={"kind": self.kind})


class TestSsoProviderGoogle(SsoProviderChecks):
    kind = "google"


class TestSsoProviderAzure(SsoProviderChecks):
    kind = "azure"


class TestSsoProviderSaveGoogle(SsoProviderChecks):
    kind = "google"
    method, wrong_method = "post", "put"
    data = {"client_id": "g-app", "client_secret": "s", "hosted_domain": "", "enabled": "on"}
    ok_status = (302,)


class TestSsoProviderSaveAzure(SsoProviderChecks):
    kind = "azure"
    method, wrong_method = "post", "put"
    data = {"client_id": "az-app", "client_secret": "s", "tenant_id": TENANT, "enabled": "on"}
    ok_status = (302,)


class TestSsoProviderDelete(SsoProviderChecks):
    url_name = "sso_provider_delete"
    obj = "provider"  # another org has none of this kind: 404
    method, wrong_method = "post", "get"
    ok_status = (302,)

    def url(self, objects: dict[str, Any]) -> str:
        # Every allowed call deletes: org A's provider comes back for the next one.
        org = objects["member"].org
        IdentityProvider.objects.get_or_create(
            org=org, kind=self.kind, defaults={"client_id": "Org A app"}
        )
        return super().url(objects)

    def test_it_leaves_other_orgs_providers_alone(self, world):
        users, objects = world
        make_client(users["other"]).post(self.url(objects))
        assert IdentityProvider.objects.filter(org=users["admin"].org, kind=self.kind).exists()


class TestSsoMappingAdd(SsoEndpointChecks):
    url_name = "sso_mapping_add"
    method, wrong_method = "post", "get"
    data = {"value": "app-editors", "role": "editor"}
    ok_status = (302,)


class TestSsoMappingDelete(SsoEndpointChecks):
    url_name = "sso_mapping_delete"
    obj, kwarg = "mapping", "mapping_id"
    method, wrong_method = "post", "get"
    ok_status = (302,)

    def url(self, objects: dict[str, Any]) -> str:
        # Every allowed call deletes: each gets its own mapping of org A.
        mapping = objects["mapping"]
        doomed = ClaimMapping.objects.create(org=mapping.org, value="doomed", role="editor")
        return reverse(self.url_name, kwargs={self.kwarg: doomed.pk})


class TestMemberSso(SsoEndpointChecks):
    url_name = "member_sso"
    obj, kwarg = "member", "user_id"
    method, wrong_method = "post", "get"
    data = {"allowed": "1"}
    ok_status = (302,)


# --- provider access: org admins see and decide platform staff's access grants ---------------
# (The staff side, /staff/orgs/<org>/..., turns the check around like TestStaffHome: see
# test_grants.py.)


class TestGrantList(EndpointChecks):
    url_name = "grant_list"
    allowed, denied = ("admin",), ("editor", "viewer")
    wrong_method = "post"


class TestGrantApprovalSetting(EndpointChecks):
    url_name = "grant_approval_setting"
    method, wrong_method = "post", "get"
    data = {"required": "1"}
    allowed, denied = ("admin",), ("editor", "viewer")
    ok_status = (302,)

    def test_it_changes_only_the_callers_org(self, world):
        users, _ = world
        make_client(users["other"]).post(self.url({}), self.data)
        assert not Organization.objects.get(pk=users["admin"].org_id).grant_approval_required
        assert Organization.objects.get(pk=users["other"].org_id).grant_approval_required


class GrantDecisionChecks(EndpointChecks):
    """Every call decides a grant of its own that the staff member opened for org A: pending
    (the org requires approval) for approve and deny, active for end."""

    url_name = "grant_decide"
    obj = "grant"  # another org's admin gets 404 for org A's grant
    decision: ClassVar[str]
    before: ClassVar[str] = "pending"
    after: ClassVar[str]
    method, wrong_method = "post", "get"
    allowed, denied = ("admin",), ("editor", "viewer")
    ok_status = (302,)

    def url(self, objects: dict[str, Any]) -> str:
        org = Organization.objects.get(pk=objects["dashboard"].org_id)
        org.grant_approval_required = self.before == "pending"
        org.save(update_fields=["grant_approval_required"])
        staff = User.objects.get(is_platform_staff=True)
        grant = do_open_grant(org, staff, reason="support", ticket="SUP-1", minutes=30, ip=None)
        assert grant.status == self.before
        self.grant = grant
        return reverse(self.url_name, kwargs={"grant_id": grant.pk, "decision": self.decision})

    def test_it_decides_for_the_admin(self, world):
        users, objects = world
        self.call(make_client(users["admin"]), self.url(objects))
        assert AccessGrant.objects.get(pk=self.grant.pk).status == self.after

    def test_it_leaves_the_grant_alone_for_everyone_else(self, world):
        users, objects = world
        for role in (*self.denied, "other", "staff"):
            self.call(make_client(users[role]), self.url(objects))
            assert AccessGrant.objects.get(pk=self.grant.pk).status == self.before, role


class TestGrantApprove(GrantDecisionChecks):
    decision, after = "approve", "active"


class TestGrantDeny(GrantDecisionChecks):
    decision, after = "deny", "denied"


class TestGrantEnd(GrantDecisionChecks):
    decision, before, after = "end", "active", "ended"


# --- integrations (org admins) and the plain-HTTP exception (platform staff) -----------------


class IntegrationEndpointChecks(EndpointChecks):
    """Org A has an integration "Deals of Org A" feeding its metric "Revenue of Org A": another
    org's admin must see neither."""

    allowed, denied = ("admin",), ("editor", "viewer")

    @pytest.fixture
    def world(self, admin_a, editor_a, viewer_a, admin_b, dashboards_a, staff):
        metric = Metric.objects.create(org=admin_a.org, key="revenue_a", name="Revenue of Org A")
        integration = do_create_integration(
            admin_a.org,
            acting=admin_a,
            ip=None,
            name="Deals of Org A",
            kind="rest",
            metric=metric,
            config={"url": "https://crm.example/deals", "mapping": {"value": "v"}},
            secret="",
        )
        users = {
            "admin": admin_a,
            "editor": editor_a,
            "viewer": viewer_a,
            "other": admin_b,
            "staff": staff,
        }
        return users, {"integration": integration, "metric": metric}

    def call(self, client: Any, url: str, method: str | None = None) -> Any:
        if (method or self.method) != "post" or not self.data:
            return super().call(client, url, method)
        # The form names org A's metric (another org's form has no such choice: 400).
        metric = Metric.objects.get(key="revenue_a")
        return client.post(url, {**self.data, "metric": str(metric.pk)})


INTEGRATION_FORM = {
    "name": "Deals",
    "every_minutes": "15",
    "url": "https://crm.example/deals",
    "pagination": "none",
    "auth": "none",
    "map_timestamp": "closed",
    "map_value": "amount",
    "map_id": "id",
    "enabled": "on",
}


class TestIntegrationList(IntegrationEndpointChecks):
    url_name = "integration_list"
    wrong_method = "post"

    def test_it_hides_other_orgs_objects_with_404(self, world):
        super().test_it_hides_other_orgs_objects_with_404(world)
        users, objects = world
        content = make_client(users["other"]).get(self.url(objects)).content.decode()
        assert "Deals of Org A" not in content and "Revenue of Org A" not in content


class TestIntegrationNew(IntegrationEndpointChecks):
    url_name = "integration_new"


class TestIntegrationCreate(IntegrationEndpointChecks):
    url_name = "integration_new"
    method, wrong_method = "post", "put"
    data = INTEGRATION_FORM
    ok_status = (302,)


class TestIntegrationEdit(IntegrationEndpointChecks):
    url_name = "integration_edit"
    obj, kwarg = "integration", "integration_id"


class TestIntegrationUpdate(IntegrationEndpointChecks):
    url_name = "integration_edit"
    obj, kwarg = "integration", "integration_id"
    method, wrong_method = "post", "put"
    data = INTEGRATION_FORM
    ok_status = (302,)

    def test_it_leaves_other_orgs_integrations_alone(self, world):
        users, objects = world
        self.call(make_client(users["other"]), self.url(objects))
        assert Integration.objects.get(pk=objects["integration"].pk).name == "Deals of Org A"


class TestIntegrationSync(IntegrationEndpointChecks):
    url_name = "integration_sync"
    obj, kwarg = "integration", "integration_id"
    method, wrong_method = "post", "get"
    ok_status = (302,)


class TestIntegrationDeleteConfirm(IntegrationEndpointChecks):
    url_name = "integration_delete"
    obj, kwarg = "integration", "integration_id"
    wrong_method = "put"


class TestIntegrationDelete(IntegrationEndpointChecks):
    url_name = "integration_delete"
    obj, kwarg = "integration", "integration_id"
    method, wrong_method = "post", "put"
    ok_status = (302,)

    def url(self, objects: dict[str, Any]) -> str:
        # Every allowed call deletes: each gets its own integration of org A.
        kept = objects["integration"]
        doomed = Integration.objects.create(
            org=kept.org, name="Doomed of Org A", kind="rest", metric=kept.metric, config={}
        )
        return reverse(self.url_name, kwargs={self.kwarg: doomed.pk})

    def test_it_leaves_other_orgs_integrations_alone(self, world):
        users, objects = world
        make_client(users["other"]).post(self.url(objects))
        assert Integration.objects.filter(name="Doomed of Org A").exists()


class TestStaffIntegrations:
    """The staff page turns the check around: staff in, everyone else 404."""

    @pytest.fixture
    def integration(self, admin_a):
        metric = Metric.objects.create(org=admin_a.org, key="revenue_a", name="Revenue of Org A")
        return Integration.objects.create(
            org=admin_a.org, name="Deals of Org A", kind="rest", metric=metric, config={}
        )

    def url(self, integration: Integration) -> str:
        return reverse("staff_integrations", kwargs={"org_id": integration.org_id})

    def test_it_serves_staff(self, staff, integration):
        response = make_client(staff).get(self.url(integration))
        assert response.status_code == 200
        assert b"Deals of Org A" in response.content

    def test_it_sets_the_exception_for_staff(self, staff, integration):
        data = {"integration": str(integration.pk), "allow": "on", "ticket": "SUP-1"}
        assert make_client(staff).post(self.url(integration), data).status_code == 302
        assert Integration.objects.get(pk=integration.pk).allow_http

    def test_it_hides_itself_from_org_members(self, admin_a, editor_a, viewer_a, integration):
        data = {"integration": str(integration.pk), "allow": "on", "ticket": "SUP-1"}
        for user in (admin_a, editor_a, viewer_a):
            client = make_client(user)
            assert client.get(self.url(integration)).status_code == 404
            assert client.post(self.url(integration), data).status_code == 404
        assert not Integration.objects.get(pk=integration.pk).allow_http

    def test_it_answers_404_for_an_unknown_org(self, staff, db):
        url = reverse(
            "staff_integrations", kwargs={"org_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12}
        )
        assert make_client(staff).get(url).status_code == 404

    def test_it_sends_anonymous_visitors_to_sign_in(self, integration):
        response = make_client().get(self.url(integration))
        assert response.status_code == 302 and response["Location"].startswith(SIGN_IN)

    def test_it_refuses_a_wrong_method_with_405(self, staff, integration):
        assert make_client(staff).put(self.url(integration)).status_code == 405


# --- GDPR: exports, erasure and org deletion (org admins; "my data" for every member) ---------


class PrivacyEndpointChecks(EndpointChecks):
    """Erasures and deletions write to an erasure ledger (and its copy beside the backups) of
    each test's own."""

    @pytest.fixture(autouse=True)
    def own_ledger(self, settings, tmp_path):
        settings.ERASURE_LEDGER = tmp_path / "erasure-ledger.jsonl"
        settings.BACKUP_DIR = tmp_path / "backups"


class TestMemberExport(PrivacyEndpointChecks):
    url_name = "member_export"
    obj, kwarg = "member", "user_id"
    method, wrong_method = "post", "get"
    allowed, denied = ("admin",), ("editor", "viewer")


class TestMemberEraseConfirm(PrivacyEndpointChecks):
    url_name = "member_erase"
    obj, kwarg = "member", "user_id"
    allowed, denied = ("admin",), ("editor", "viewer")
    wrong_method = "put"


class TestMemberErase(PrivacyEndpointChecks):
    url_name = "member_erase"
    obj, kwarg = "member", "user_id"
    method, wrong_method = "post", "put"
    data = {"confirm": "viewer@a.example"}
    allowed, denied = ("admin",), ("editor", "viewer")
    ok_status = (302,)

    def test_it_leaves_the_member_alone_for_everyone_else(self, world):
        users, objects = world
        for role in (*self.denied, "other", "staff"):
            self.call(make_client(users[role]), self.url(objects))
            assert User.objects.filter(pk=objects["member"].pk).exists(), role


class TestOrgExport(PrivacyEndpointChecks):
    url_name = "org_export"
    method, wrong_method = "post", "get"
    allowed, denied = ("admin",), ("editor", "viewer")

    def call(self, client: Any, url: str, method: str | None = None) -> Any:
        from django.http import HttpResponse

        response = super().call(client, url, method)
        if not getattr(response, "streaming", False):
            return response
        # The streamed body, read whole as the browser would.
        return HttpResponse(b"".join(response.streaming_content), status=response.status_code)


class TestOrgDeleteConfirm(PrivacyEndpointChecks):
    url_name = "org_delete"
    allowed, denied = ("admin",), ("editor", "viewer")
    wrong_method = "put"


class TestOrgDelete(PrivacyEndpointChecks):
    url_name = "org_delete"
    method, wrong_method = "post", "put"
    data = {"confirm": "Org A"}
    allowed, denied = ("admin",), ("editor", "viewer")
    ok_status = (302,)

    def test_it_hides_other_orgs_objects_with_404(self, world):
        # No object in the URL: another org's admin who types "Org A" gets their own org's
        # form back (400: not their org's name), which shows what they typed and nothing else.
        users, _ = world
        response = self.call(make_client(users["other"]), self.url({}))
        assert response.status_code == 400
        content = response.content.decode()
        for marker in ("Sales A", "Board A", "Sales team A", "viewer@a.example"):
            assert marker not in content
        assert Organization.objects.filter(name="Org A").exists()
        assert Organization.objects.filter(name="Org B").exists()

    def test_it_leaves_both_orgs_alone_for_everyone_else(self, world):
        users, _ = world
        for role in (*self.denied, "other", "staff"):
            self.call(make_client(users[role]), self.url({}))
        assert Organization.objects.filter(name__in=["Org A", "Org B"]).count() == 2
        assert User.objects.filter(email="admin@a.example").exists()


class TestMyDataPage(PrivacyEndpointChecks):
    url_name = "my_data"
    wrong_method = "put"


class TestMyDataDownload(PrivacyEndpointChecks):
    url_name = "my_data"
    method, wrong_method = "post", "put"


# --- the API's integration routes (org API tokens with the "integrations" scope) -------------

MATRIX_SECRETS = ("matrix-S3cret-of-Org-A", "matrix-New-secret-of-Org-A")


class ApiEndpointChecks:
    """Mixin for an /api/v1/ route: a token of org A with the scope (the happy path), a token
    of another org with it (404 for org A's objects), a token of org A without it (403), no
    or an unknown token (401), a wrong method (405); no answer carries a credential."""

    path: ClassVar[str]  # under /api/v1; "{id}" names org A's integration
    method: ClassVar[str] = "get"
    wrong_method: ClassVar[str] = "put"
    ok_status: ClassVar[tuple[int, ...]] = (200,)
    body: ClassVar[dict[str, Any] | None] = None

    @pytest.fixture
    def world(self, admin_a, admin_b):
        from dashvault.api.actions import do_create_token

        metric = Metric.objects.create(org=admin_a.org, key="revenue_a", name="Revenue of Org A")
        integration = do_create_integration(
            admin_a.org,
            acting=admin_a,
            ip=None,
            name="Deals of Org A",
            kind="rest",
            metric=metric,
            config={
                "url": "https://crm.example/deals",
                "auth": "bearer",
                "mapping": {"timestamp": "t", "value": "v", "id": "i"},
            },
            secret=MATRIX_SECRETS[0],
        )
        tokens = {
            "own": do_create_token(
                admin_a.org, "a", ["integrations"], expires_at=None, acting=None
            ),
            "other": do_create_token(
                admin_b.org, "b", ["integrations"], expires_at=None, acting=None
            ),
            "unscoped": do_create_token(
                admin_a.org, "a2", ["push", "read"], expires_at=None, acting=None
            ),
        }
        return {name: secret for name, (_, secret) in tokens.items()}, {"integration": integration}

    def url(self, objects: dict[str, Any]) -> str:
        return "/api/v1" + self.path.format(id=objects["integration"].pk)

    def call(self, token: str | None, url: str, method: str | None = None) -> Any:
        import json

        from tests.conftest import SecureClient

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = SecureClient(headers=headers)
        method = method or self.method
        if self.body is None or method != self.method:
            return client.generic(method.upper(), url)
        return client.generic(
            method.upper(), url, json.dumps(self.body), content_type="application/json"
        )

    def assert_no_credential(self, response: Any) -> None:
        content = response.content.decode()
        for secret in MATRIX_SECRETS:
            assert secret not in content

    def test_it_answers_a_token_with_the_scope(self, world):
        tokens, objects = world
        response = self.call(tokens["own"], self.url(objects))
        assert response.status_code in self.ok_status, response.content
        self.assert_no_credential(response)

    def test_it_refuses_a_token_without_the_scope_with_403(self, world):
        tokens, objects = world
        response = self.call(tokens["unscoped"], self.url(objects))
        assert response.status_code == 403
        assert "integrations" in response.json()["detail"]
        self.assert_no_credential(response)

    def test_it_hides_other_orgs_objects_with_404(self, world):
        tokens, objects = world
        response = self.call(tokens["other"], self.url(objects))
        if "{id}" in self.path:
            assert response.status_code == 404
        content = response.content.decode()
        for marker in ("Deals of Org A", "revenue_a", "crm.example", "Org A"):
            assert marker not in content
        self.assert_no_credential(response)
        assert Integration.objects.get(pk=objects["integration"].pk).name == "Deals of Org A"

    @pytest.mark.parametrize("token", [None, "dvp_" + "A" * 43, "not-a-token"])
    def test_it_refuses_missing_or_unknown_tokens_with_401(self, world, token):
        _, objects = world
        response = self.call(token, self.url(objects))
        assert response.status_code == 401
        assert Integration.objects.filter(pk=objects["integration"].pk).exists()

    def test_it_refuses_a_wrong_method_with_405(self, world):
        tokens, objects = world
        response = self.call(tokens["own"], self.url(objects), self.wrong_method)
        assert response.status_code == 405


class TestApiIntegrationList(ApiEndpointChecks):
    path = "/integrations"
    wrong_method = "delete"


class TestApiIntegrationCreate(ApiEndpointChecks):
    path = "/integrations"
    method, wrong_method = "post", "put"
    body = {
        "name": "New deals",
        "kind": "rest",
        "metric": "revenue_a",  # another org's token names a metric it does not have: 422
        "config": {
            "url": "https://crm.example/new",
            "mapping": {"timestamp": "t", "value": "v", "id": "i"},
        },
        "credential": MATRIX_SECRETS[1],
    }
    ok_status = (201,)


class TestApiIntegrationDetail(ApiEndpointChecks):
    path = "/integrations/{id}"
    wrong_method = "post"


class TestApiIntegrationUpdate(ApiEndpointChecks):
    path = "/integrations/{id}"
    method, wrong_method = "patch", "put"
    body = {"name": "Renamed", "credential": MATRIX_SECRETS[1]}


class TestApiIntegrationDelete(ApiEndpointChecks):
    path = "/integrations/{id}"
    method, wrong_method = "delete", "put"
    ok_status = (204,)

    def url(self, objects: dict[str, Any]) -> str:
        # Every allowed call deletes: each gets its own integration of org A.
        kept = objects["integration"]
        doomed = Integration.objects.create(
            org=kept.org, name="Doomed of Org A", kind="rest", metric=kept.metric, config={}
        )
        return f"/api/v1/integrations/{doomed.pk}"

    def test_it_leaves_other_orgs_integrations_alone(self, world):
        tokens, objects = world
        self.call(tokens["other"], self.url(objects))
        assert Integration.objects.filter(name="Doomed of Org A").exists()


class TestApiIntegrationSync(ApiEndpointChecks):
    path = "/integrations/{id}/sync"
    method, wrong_method = "post", "get"
    body = {"full": True}
    ok_status = (202,)
