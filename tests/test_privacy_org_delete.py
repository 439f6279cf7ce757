"""Deleting an organization (GDPR, issue 8 item 5): every row it owns in every tenant table
goes (its data keys included), its people are signed out and gone, the audit log keeps the
org's chain with an `org.delete` entry, and the other org is untouched.

`busy_org` fills every tenant table; test_privacy_export.py reuses it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.db.models import Model
from django.urls import reverse
from django.utils import timezone

from dashvault.accounts.models import User
from dashvault.api.actions import do_create_token
from dashvault.audit import chain
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.grants.actions import do_open_grant
from dashvault.integrations.actions import do_create_integration
from dashvault.integrations.models import Integration, SyncRun
from dashvault.kiosk.actions import do_create_kiosk_link
from dashvault.metrics.models import Metric
from dashvault.orgs.models import DataKey, Group, Organization
from dashvault.privacy import ledger
from dashvault.sso.models import ClaimMapping, EmailDomain, IdentityProvider
from tests.conftest import SecureClient, make_client
from tests.test_privacy import TENANT, own_ledger, personal_rows, sign_in, signed_out

__all__ = ["own_ledger"]  # autouse: each test its own ledger, backup folder and checkpoints

SECRET = "crm-api-key-of-{name}-Zq8"  # the integration's credential, sealed in the database


def tenant_models() -> list[type[Model]]:
    """Every model with a foreign key named `org` to Organization, but the audit log (whose
    entries outlive their org by design)."""
    found = []
    for model in apps.get_models():
        field = next((f for f in model._meta.concrete_fields if f.name == "org"), None)
        if field is None or not field.is_relation or field.related_model is not Organization:
            continue
        if model is not AuditEntry:
            found.append(model)
    return found


def rows_of(org_id: Any) -> dict[str, int]:
    return {
        m._meta.label: m._default_manager.filter(org_id=org_id).count() for m in tenant_models()
    }


def busy_org(org: Organization, admin: User, staff: User | None, *, name: str) -> dict[str, Any]:
    """A row of `org` in every tenant table: a group, a dashboard with a widget showing a metric,
    points and rollups pushed through the API (with an idempotency key), an integration with a
    sealed credential (the org's data key) and a sync run, a kiosk link, SSO settings, an open
    access grant when `staff` is given."""
    group = Group.objects.create(org=org, name=f"Team of {name}")
    group.members.add(admin)
    dashboard = Dashboard.objects.create(org=org, title=f"Board of {name}")
    group.dashboards.add(dashboard)
    metric = Metric.objects.create(org=org, key=f"revenue_{name.lower()}", name=f"Revenue {name}")
    Widget.objects.create(org=org, dashboard=dashboard, kind="kpi", metric=metric, title="Sum")
    _, token = do_create_token(
        org, f"CI of {name}", ["push", "read"], expires_at=None, acting=admin
    )
    body = {"points": [{"metric": metric.key, "ts": "2026-05-01T12:00:00Z", "value": 7}]}
    pushed = SecureClient(headers={"Authorization": f"Bearer {token}"}).post(
        "/api/v1/datapoints",
        json.dumps(body),
        content_type="application/json",
        headers={"Idempotency-Key": f"batch-{name}"},
    )
    assert pushed.status_code == 201, pushed.content
    integration = do_create_integration(
        org,
        acting=admin,
        ip=None,
        name=f"Deals of {name}",
        kind="rest",
        metric=metric,
        config={"url": "https://crm.example/deals", "auth": "bearer", "mapping": {"value": "v"}},
        secret=SECRET.format(name=name),
    )
    SyncRun.objects.create(org=org, integration=integration, started_at=timezone.now(), ok=True)
    link, kiosk_token = do_create_kiosk_link(
        org, name=f"TV of {name}", dashboards=[dashboard], acting=admin
    )
    IdentityProvider.objects.create(
        org=org, kind="azure", client_id=f"app-{name}", tenant_id=TENANT
    )
    EmailDomain.objects.create(org=org, domain=f"{name.lower()}.example")
    ClaimMapping.objects.create(org=org, value=f"claim-{name}", group=group)
    if staff is not None:
        do_open_grant(org, staff, reason="support", ticket="SUP-1", minutes=30, ip=None)
    org.break_glass = admin
    org.save(update_fields=["break_glass"])
    return {
        "group": group,
        "dashboard": dashboard,
        "metric": metric,
        "integration": integration,
        "kiosk": link,
        "kiosk_token": kiosk_token,
        "token": token,
    }


@pytest.fixture
def both_orgs(
    org_a: Organization,
    org_b: Organization,
    admin_a: User,
    editor_a: User,
    viewer_a: User,
    admin_b: User,
    staff: User,
) -> dict[str, Any]:
    return {
        "a": busy_org(org_a, admin_a, staff, name="A"),
        "b": busy_org(org_b, admin_b, staff, name="B"),
    }


def delete(client: SecureClient, confirm: str) -> Any:
    return client.post(reverse("org_delete"), {"confirm": confirm})


def test_every_tenant_table_is_covered_by_the_fixture(both_orgs: Any, org_a: Organization) -> None:
    # The deletion test below is only as good as the rows it starts with.
    assert {label for label, count in rows_of(org_a.pk).items() if count == 0} == set()
    assert len(tenant_models()) >= 18


def test_an_admin_deletes_the_org_with_every_row_it_owns(
    both_orgs: Any,
    org_a: Organization,
    org_b: Organization,
    admin_a: User,
    editor_a: User,
    viewer_a: User,
    admin_b: User,
    own_ledger: Path,
) -> None:
    people = [admin_a.pk, editor_a.pk, viewer_a.pk]
    editor = SecureClient()
    sign_in(editor, editor_a.email)
    editor_session = editor.session.session_key
    admin = make_client(admin_a)
    other_before = rows_of(org_b.pk)
    audit_before = set(AuditEntry.objects.filter(org_id=org_a.pk).values_list("id", flat=True))

    response = delete(admin, "Org A")

    assert response.status_code == 302 and response["Location"] == reverse("account_login")
    assert not Organization.objects.filter(pk=org_a.pk).exists()
    assert rows_of(org_a.pk) == dict.fromkeys(rows_of(org_a.pk), 0)
    assert not DataKey.objects.filter(org_id=org_a.pk).exists()
    assert not User.objects.filter(pk__in=people).exists()
    for person in people:
        assert set(personal_rows(person).values()) == {0}
    assert not Integration.objects.filter(pk=both_orgs["a"]["integration"].pk).exists()
    # Signed out: the admin who deleted it, and a member signed in elsewhere (session gone).
    assert signed_out(admin)
    assert signed_out(editor)
    assert not Session.objects.filter(pk=editor_session).exists()
    # The other org is untouched.
    assert rows_of(org_b.pk) == other_before
    assert Organization.objects.filter(pk=org_b.pk, break_glass=admin_b).exists()
    assert make_client(admin_b).get(reverse("dashboard_list")).status_code == 200
    # The audit log keeps the org's entries and the deletion, and every chain verifies.
    kept = AuditEntry.objects.filter(org_id=org_a.pk).order_by("id")
    assert audit_before < set(kept.values_list("id", flat=True))
    # The deletion, then the admin's sign-out (the view logs them out).
    new = [e.action for e in kept if e.id not in audit_before]
    assert new in (["org.delete"], ["org.delete", "signout"]), new
    entry = AuditEntry.objects.get(action="org.delete")
    assert (entry.org_id, entry.actor_id) == (org_a.pk, admin_a.pk)
    assert (entry.target_type, entry.target_id) == ("organization", str(org_a.pk))
    lengths, problems = chain.verify()
    assert problems == [] and lengths[str(org_a.pk)] == kept.count()
    # The ledger: one entry, ids only.
    (recorded,) = ledger.entries()
    assert (recorded.kind, recorded.id, recorded.org) == ("org", str(org_a.pk), str(org_a.pk))
    assert "@" not in own_ledger.read_text() and "Org A" not in own_ledger.read_text()


def test_an_org_whose_widgets_show_its_metrics_is_deleted_by_the_action_too(
    both_orgs: Any, org_a: Organization, admin_a: User
) -> None:
    # Widget.metric is PROTECT: the action must take the widgets first whatever calls it.
    from dashvault.privacy.erasure import delete_org

    assert Widget.objects.filter(org=org_a, metric__isnull=False).exists()
    delete_org(org_a, acting=None, ip=None)
    assert not Metric.objects.filter(org_id=org_a.pk).exists()
    assert AuditEntry.objects.get(action="org.delete").actor_kind == "system"


def test_the_confirmation_page_asks_for_the_org_name(both_orgs: Any, admin_a: User) -> None:
    response = make_client(admin_a).get(reverse("org_delete"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Delete Org A" in content and 'name="confirm"' in content


@pytest.mark.parametrize("confirm", ["", "Org B", "Org", "Org A and more"])
def test_a_wrong_name_is_refused_with_400_and_nothing_changes(
    both_orgs: Any, org_a: Organization, admin_a: User, own_ledger: Path, confirm: str
) -> None:
    before = rows_of(org_a.pk)
    response = delete(make_client(admin_a), confirm)
    assert response.status_code == 400
    assert rows_of(org_a.pk) == before
    assert Organization.objects.filter(pk=org_a.pk).exists()
    assert not own_ledger.exists()
    assert not AuditEntry.objects.filter(action="org.delete").exists()


def test_editors_viewers_other_admins_and_staff_cannot_delete_the_org(
    both_orgs: Any,
    org_a: Organization,
    org_b: Organization,
    editor_a: User,
    viewer_a: User,
    admin_b: User,
    staff: User,
    own_ledger: Path,
) -> None:
    before = {org_a.pk: rows_of(org_a.pk), org_b.pk: rows_of(org_b.pk)}
    for user in (editor_a, viewer_a, staff):
        assert delete(make_client(user), "Org A").status_code == 403
    # Another org's admin can only name their own org: "Org A" is a wrong name for them.
    assert delete(make_client(admin_b), "Org A").status_code == 400
    assert {org_a.pk: rows_of(org_a.pk), org_b.pk: rows_of(org_b.pk)} == before
    assert not own_ledger.exists()


def test_a_deleted_orgs_kiosk_link_and_api_token_stop_working(
    both_orgs: Any, admin_a: User
) -> None:
    a = both_orgs["a"]
    assert SecureClient().get(f"/kiosk/{a['kiosk_token']}").status_code == 200
    delete(make_client(admin_a), "Org A")
    body = {"points": [{"metric": "revenue_a", "ts": "2026-05-01T13:00:00Z", "value": 1}]}
    api = SecureClient(headers={"Authorization": f"Bearer {a['token']}"})
    response = api.post("/api/v1/datapoints", json.dumps(body), content_type="application/json")
    assert response.status_code == 401
    assert SecureClient().get(f"/kiosk/{a['kiosk_token']}").status_code == 404
