"""Staff access grants (DESIGN C10): platform staff see a customer's dashboards only inside an
access grant for that org (a reason, a ticket, a time limit, an admin's approval when the org
asks for one), view only, and every list, page and socket they open lands in the customer's
audit chain marked as staff. Ending or expiring the grant ends the access, sockets included.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone

from dashvault.accounts.models import User
from dashvault.audit.chain import chain_of
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Dashboard, Widget
from dashvault.grants import actions
from dashvault.grants.models import AccessGrant
from dashvault.live import consumers
from dashvault.live.hub import hub
from dashvault.orgs.models import Organization
from tests.conftest import PASSWORD, make_client
from tests.test_live import (
    COOKIE,
    closed_with,
    opened,
    refused_after_accept,
    session_of,
    socket,
    started_ago,
)

SIGN_IN = "/accounts/login/"
GOOD = {"reason": "support", "ticket": "SUP-1234", "minutes": "30"}


def open_grant(org: Organization, staff: User, minutes: int = 30) -> AccessGrant:
    return actions.do_open_grant(
        org, staff, reason="support", ticket="SUP-1234", minutes=minutes, ip=None
    )


def staff_views(org: Organization) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(org=org, action="staff.view").order_by("id"))


def list_url(org: Organization) -> str:
    return reverse("grant_dashboards", kwargs={"org_id": org.pk})


def page_url(org: Organization, dashboard: Dashboard) -> str:
    return reverse("grant_dashboard", kwargs={"org_id": org.pk, "dashboard_id": dashboard.pk})


def decide_url(grant: AccessGrant, decision: str) -> str:
    return reverse("grant_decide", kwargs={"grant_id": grant.pk, "decision": decision})


def fresh(grant: AccessGrant) -> AccessGrant:
    return AccessGrant.objects.get(pk=grant.pk)


@pytest.fixture
def org_b_dashboard(org_b: Organization) -> Dashboard:
    return Dashboard.objects.create(org=org_b, title="Sales B")


@pytest.fixture
def require_approval(org_a: Organization) -> Organization:
    Organization.objects.filter(pk=org_a.pk).update(grant_approval_required=True)
    org_a.refresh_from_db()
    return org_a


# -- without a grant -------------------------------------------------------------------------


def test_staff_without_a_grant_are_refused_the_orgs_dashboards(
    staff: User, org_a: Organization, dashboards_a: dict[str, Any]
) -> None:
    client = make_client(staff)
    for url in (list_url(org_a), page_url(org_a, dashboards_a["sales"])):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"Sales A" not in response.content and b"Board A" not in response.content
    assert not staff_views(org_a)  # nothing was seen, so nothing is logged as seen


def test_a_pending_denied_ended_or_expired_grant_gives_no_access(
    staff: User, admin_a: User, org_a: Organization, dashboards_a: dict[str, Any]
) -> None:
    client = make_client(staff)
    org_a.grant_approval_required = True
    pending = open_grant(org_a, staff)
    assert pending.status == "pending"
    assert client.get(list_url(org_a)).status_code == 403
    actions.do_deny_grant(pending, acting=admin_a, ip=None)
    assert client.get(list_url(org_a)).status_code == 403
    org_a.grant_approval_required = False
    ended = open_grant(org_a, staff)
    actions.do_end_grant(ended, acting=staff, ip=None)
    assert client.get(list_url(org_a)).status_code == 403
    expired = open_grant(org_a, staff)
    AccessGrant.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    assert client.get(list_url(org_a)).status_code == 403
    assert not staff_views(org_a)


@pytest.mark.parametrize(
    "name", ["dashboard_list", "dashboard_detail", "dashboard_data", "dashboard_edit"]
)
def test_member_views_stay_refused_to_staff_even_inside_a_grant(
    staff: User, org_a: Organization, dashboards_a: dict[str, Any], name: str
) -> None:
    """Only the /staff/orgs/<org>/dashboards/ views serve staff, and they log every view."""
    open_grant(org_a, staff)
    kwargs = {} if name == "dashboard_list" else {"dashboard_id": dashboards_a["sales"].pk}
    response = make_client(staff).get(reverse(name, kwargs=kwargs))
    assert response.status_code == 403
    assert b"Sales A" not in response.content


def test_a_grant_is_personal(
    staff: User, org_a: Organization, dashboards_a: dict[str, Any]
) -> None:
    grant = open_grant(org_a, staff)
    colleague = User.objects.create_user(
        "colleague@provider.example", PASSWORD, is_platform_staff=True
    )
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    TOTP.activate(colleague, generate_totp_secret())
    client = make_client(colleague)
    assert client.get(list_url(org_a)).status_code == 403
    end = reverse("grant_end_by_staff", kwargs={"org_id": org_a.pk, "grant_id": grant.pk})
    assert client.post(end).status_code == 404
    assert fresh(grant).status == "active"


# -- opening a grant -------------------------------------------------------------------------


def test_opening_a_grant_starts_it_at_once_and_tells_the_customer(
    staff: User, org_a: Organization
) -> None:
    before = timezone.now()
    response = make_client(staff).post(reverse("grant_open", kwargs={"org_id": org_a.pk}), GOOD)

    assert response.status_code == 302
    assert response["Location"] == list_url(org_a)
    grant = AccessGrant.objects.get(org=org_a)
    assert grant.status == "active"
    assert grant.staff_id == staff.pk
    assert (grant.reason, grant.ticket, grant.minutes) == ("support", "SUP-1234", 30)
    assert grant.starts_at is not None and grant.expires_at is not None
    assert before <= grant.starts_at <= timezone.now()
    assert grant.expires_at - grant.starts_at == dt.timedelta(minutes=30)

    entry = AuditEntry.objects.get(org=org_a, action="staff.grant_open")
    assert entry.chain == chain_of(org_a.pk)
    assert entry.actor_kind == "staff"
    assert entry.actor_id == staff.pk
    assert (entry.target_type, entry.target_id) == ("accessgrant", str(grant.pk))
    assert entry.detail == {"reason": "support", "ticket": "SUP-1234", "minutes": 30}
    everything = json.dumps(list(AuditEntry.objects.values()), default=str)
    assert "@" not in everything  # ids only: no staff e-mail address anywhere


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ticket", "SUP 1234"),  # a space: free text, not a reference
        ("ticket", "staff@provider.example"),
        ("ticket", ""),
        ("ticket", "x" * 65),
        ("minutes", "0"),
        ("minutes", "-5"),
        ("minutes", "61"),  # above GRANT_MAX_MINUTES (60 by default)
        ("minutes", "soon"),
        ("reason", "curiosity"),
        ("reason", ""),
    ],
)
def test_a_bad_grant_request_is_refused_and_nothing_is_stored(
    staff: User, org_a: Organization, field: str, value: str
) -> None:
    assert django_settings.GRANT_MAX_MINUTES == 60
    data = {**GOOD, field: value}
    response = make_client(staff).post(reverse("grant_open", kwargs={"org_id": org_a.pk}), data)
    assert response.status_code == 400
    assert not AccessGrant.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="staff.").exists()


def test_the_longest_grant_is_read_from_settings_at_call_time(
    staff: User, org_a: Organization, settings: Any
) -> None:
    settings.GRANT_MAX_MINUTES = 10
    url = reverse("grant_open", kwargs={"org_id": org_a.pk})
    client = make_client(staff)
    assert client.post(url, {**GOOD, "minutes": "11"}).status_code == 400
    assert client.post(url, {**GOOD, "minutes": "10"}).status_code == 302
    assert AccessGrant.objects.get().minutes == 10


def test_opening_a_grant_for_an_unknown_org_is_404(staff: User, db: Any) -> None:
    url = reverse("grant_open", kwargs={"org_id": uuid.uuid4()})
    assert make_client(staff).post(url, GOOD).status_code == 404
    assert not AccessGrant.objects.exists()


# -- inside a grant --------------------------------------------------------------------------


def test_inside_a_grant_staff_see_every_dashboard_of_that_org_only(
    staff: User,
    org_a: Organization,
    dashboards_a: dict[str, Any],
    org_b_dashboard: Dashboard,
) -> None:
    open_grant(org_a, staff)
    client = make_client(staff)

    text = client.get(list_url(org_a)).content.decode()
    assert "Sales A" in text
    assert "Board A" in text  # granted to no group: staff see it all the same
    assert "Sales B" not in text
    for dashboard in (dashboards_a["sales"], dashboards_a["board"]):
        response = client.get(page_url(org_a, dashboard))
        assert response.status_code == 200
        assert dashboard.title in response.content.decode()
    # Another org's dashboard through this org's grant: as if it did not exist.
    response = client.get(page_url(org_a, org_b_dashboard))
    assert response.status_code == 404
    assert b"Sales B" not in response.content


def test_inside_a_grant_staff_get_no_way_to_edit(
    staff: User, org_a: Organization, dashboards_a: dict[str, Any]
) -> None:
    sales, board = dashboards_a["sales"], dashboards_a["board"]
    Widget.objects.create(org=org_a, dashboard=sales, kind="text", config={"text": "note"})
    open_grant(org_a, staff)
    client = make_client(staff)
    for dashboard in (sales, board):  # with widgets, and empty (where members see "Add")
        text = client.get(page_url(org_a, dashboard)).content.decode()
        # No link or form into the member pages (edit, rename, widgets); only the socket.
        assert not re.search(r'(href|action)="/dashboards/', text)
        assert "/edit/" not in text and "/widgets/" not in text
        assert "Add a widget" not in text


def test_inside_a_grant_every_change_is_refused(
    staff: User, org_a: Organization, dashboards_a: dict[str, Any]
) -> None:
    sales = dashboards_a["sales"]
    widget = Widget.objects.create(org=org_a, dashboard=sales, kind="text", config={"text": "n"})
    placed = (widget.x, widget.y, widget.w, widget.h)
    open_grant(org_a, staff)
    client = make_client(staff)
    on_dashboard = {"dashboard_id": sales.pk}
    on_widget = {"dashboard_id": sales.pk, "widget_id": widget.pk}
    posts = [
        ("dashboard_new", {}, {"title": "Staff board"}),
        ("dashboard_rename", on_dashboard, {"title": "Renamed by staff"}),
        ("dashboard_duplicate", on_dashboard, {}),
        ("dashboard_delete", on_dashboard, {}),
        ("widget_new", on_dashboard, {"kind": "text", "text": "Hi", "w": "4", "h": "2"}),
        ("widget_edit", on_widget, {"kind": "text", "text": "Changed", "top_n": "5"}),
        ("widget_arrange", on_widget, {"nudge": "right"}),
        ("widget_delete", on_widget, {}),
    ]
    for name, kwargs, data in posts:
        assert client.post(reverse(name, kwargs=kwargs), data).status_code == 403, name
    # The staff pages themselves take no writes.
    assert client.post(page_url(org_a, sales)).status_code == 405
    assert client.post(list_url(org_a)).status_code == 405

    assert sorted(Dashboard.objects.values_list("title", flat=True)) == ["Board A", "Sales A"]
    assert Widget.objects.count() == 1
    widget.refresh_from_db()
    assert widget.config == {"text": "n"}
    assert (widget.x, widget.y, widget.w, widget.h) == placed


def test_every_staff_page_lands_in_the_customers_log(
    staff: User, org_a: Organization, dashboards_a: dict[str, Any]
) -> None:
    grant = open_grant(org_a, staff)
    client = make_client(staff)
    client.get(list_url(org_a))
    client.get(page_url(org_a, dashboards_a["board"]))
    client.get(page_url(org_a, dashboards_a["sales"]))
    client.get(page_url(org_a, dashboards_a["sales"]))  # every view, not every dashboard

    views = staff_views(org_a)
    assert [v.detail["page"] for v in views] == [
        "dashboard_list",
        "dashboard",
        "dashboard",
        "dashboard",
    ]
    targets = [str(dashboards_a[name].pk) for name in ("board", "sales", "sales")]
    assert [v.target_id for v in views[1:]] == targets
    for view in views:
        assert view.chain == chain_of(org_a.pk)
        assert view.actor_kind == "staff"
        assert view.actor_id == staff.pk
        assert view.detail["grant"] == str(grant.pk)
        assert view.ip == "127.0.0.1"
    assert not AuditEntry.objects.filter(org__isnull=True, action="staff.view").exists()


def test_the_org_admin_sees_staff_views_marked_as_staff(
    staff: User, admin_a: User, admin_b: User, org_a: Organization, dashboards_a: dict[str, Any]
) -> None:
    grant = open_grant(org_a, staff)
    client = make_client(staff)
    client.get(list_url(org_a))
    client.get(page_url(org_a, dashboards_a["sales"]))

    text = make_client(admin_a).get("/org/audit/", {"action": "staff.view"}).content.decode()
    assert text.count("data-entry=") == 2
    assert text.count("<strong>staff</strong>") == 2
    assert f"<code>{staff.pk}</code>" in text
    assert f"grant={grant.pk}" in text
    assert "page=dashboard_list</span>" in text and "page=dashboard</span>" in text
    assert "staff@provider.example" not in text
    # Org B's admin reads org B's log: none of this is there.
    other = make_client(admin_b).get("/org/audit/", {"action": "staff."}).content.decode()
    assert str(grant.pk) not in other and "data-entry=" not in other


def test_a_grant_for_one_org_gives_nothing_in_another(
    staff: User,
    org_a: Organization,
    org_b: Organization,
    dashboards_a: dict[str, Any],
    org_b_dashboard: Dashboard,
) -> None:
    open_grant(org_a, staff)
    client = make_client(staff)
    assert client.get(list_url(org_b)).status_code == 403
    response = client.get(page_url(org_b, org_b_dashboard))
    assert response.status_code == 403
    assert b"Sales B" not in response.content
    # Org A's dashboard through org B's URL: still org B's (missing) grant that decides.
    assert client.get(page_url(org_b, dashboards_a["sales"])).status_code == 403
    assert not staff_views(org_b)


# -- expiry ----------------------------------------------------------------------------------


def test_an_expired_grant_ends_access_on_the_next_request(
    staff: User, org_a: Organization, dashboards_a: dict[str, Any]
) -> None:
    grant = open_grant(org_a, staff)
    client = make_client(staff)
    assert client.get(page_url(org_a, dashboards_a["sales"])).status_code == 200
    AccessGrant.objects.filter(pk=grant.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert client.get(page_url(org_a, dashboards_a["sales"])).status_code == 403
    assert client.get(list_url(org_a)).status_code == 403
    assert fresh(grant).status == "expired"
    assert len(staff_views(org_a)) == 1  # only the view made inside the grant


def test_a_sockets_expiry_is_the_earlier_of_session_and_grant(
    staff: User, org_a: Organization, dashboards_a: dict[str, Any]
) -> None:
    board = dashboards_a["board"]
    session = session_of(staff)
    cookie = f"{COOKIE}={session}"

    open_grant(org_a, staff, minutes=1)  # the grant ends first
    verdict = consumers.authorize(cookie, "127.0.0.1", str(board.pk))
    assert isinstance(verdict, consumers.Grant)
    assert verdict.expires_in is not None and 55 < verdict.expires_in <= 60
    # The grant ending sends the page back through admission (which refuses), not to sign-in.
    assert verdict.expiry == (4000, "access_changed")

    AccessGrant.objects.all().delete()
    open_grant(org_a, staff, minutes=60)
    started_ago(session, django_settings.SESSION_ABSOLUTE_SECONDS - 20)  # the session first
    verdict = consumers.authorize(cookie, "127.0.0.1", str(board.pk))
    assert isinstance(verdict, consumers.Grant)
    assert verdict.expires_in is not None and 15 < verdict.expires_in <= 20
    assert verdict.expiry == (4401, "expired")  # the session ends first: sign in again


# -- ending early ----------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["staff", "admin"])
def test_ending_a_grant_early_ends_access_and_is_logged(
    staff: User, admin_a: User, org_a: Organization, dashboards_a: dict[str, Any], by: str
) -> None:
    grant = open_grant(org_a, staff)
    client = make_client(staff)
    assert client.get(list_url(org_a)).status_code == 200
    if by == "staff":
        url = reverse("grant_end_by_staff", kwargs={"org_id": org_a.pk, "grant_id": grant.pk})
        response = client.post(url)
    else:
        response = make_client(admin_a).post(decide_url(grant, "end"))
    assert response.status_code == 302
    assert fresh(grant).status == "ended"
    assert client.get(list_url(org_a)).status_code == 403
    entry = AuditEntry.objects.get(org=org_a, action="staff.grant_end")
    assert entry.actor_id == (staff.pk if by == "staff" else admin_a.pk)
    assert entry.actor_kind == ("staff" if by == "staff" else "user")
    assert entry.target_id == str(grant.pk)


# -- approval --------------------------------------------------------------------------------


def test_an_admin_requires_approval_through_the_setting_and_it_is_audited(
    admin_a: User, org_a: Organization
) -> None:
    client = make_client(admin_a)
    url = reverse("grant_approval_setting")
    assert client.post(url, {"required": "1"}).status_code == 302
    org_a.refresh_from_db()
    assert org_a.grant_approval_required
    assert client.post(url, {"required": "0"}).status_code == 302
    org_a.refresh_from_db()
    assert not org_a.grant_approval_required
    entries = AuditEntry.objects.filter(org=org_a, action="staff.grant_approval_setting")
    assert [(e.actor_id, e.detail) for e in entries.order_by("id")] == [
        (admin_a.pk, {"required": True}),
        (admin_a.pk, {"required": False}),
    ]


def test_with_approval_a_grant_waits_then_runs_from_approval_for_its_minutes(
    staff: User, admin_a: User, org_a: Organization, dashboards_a: dict[str, Any]
) -> None:
    make_client(admin_a).post(reverse("grant_approval_setting"), {"required": "1"})
    staff_client = make_client(staff)
    response = staff_client.post(reverse("grant_open", kwargs={"org_id": org_a.pk}), GOOD)
    assert response.status_code == 302
    assert response["Location"] == reverse("grant_open", kwargs={"org_id": org_a.pk})
    grant = AccessGrant.objects.get(org=org_a)
    assert grant.status == "pending"
    assert staff_client.get(list_url(org_a)).status_code == 403
    assert staff_client.get(page_url(org_a, dashboards_a["sales"])).status_code == 403
    request = AuditEntry.objects.get(org=org_a, action="staff.grant_request")
    assert request.detail == {"reason": "support", "ticket": "SUP-1234", "minutes": 30}
    assert not AuditEntry.objects.filter(action="staff.grant_open").exists()

    # The admin sees it waiting, and approves it an hour later: it runs from then.
    AccessGrant.objects.filter(pk=grant.pk).update(
        requested_at=timezone.now() - dt.timedelta(hours=1)
    )
    admin_client = make_client(admin_a)
    text = admin_client.get(reverse("grant_list")).content.decode()
    assert f'data-grant="{grant.pk}"' in text and "pending" in text
    assert decide_url(grant, "approve") in text
    before = timezone.now()
    assert admin_client.post(decide_url(grant, "approve")).status_code == 302
    grant = fresh(grant)
    assert grant.status == "active"
    assert grant.approved_by_id == admin_a.pk
    assert grant.starts_at is not None and grant.expires_at is not None
    assert before <= grant.starts_at <= timezone.now()
    assert grant.expires_at - grant.starts_at == dt.timedelta(minutes=30)
    assert staff_client.get(list_url(org_a)).status_code == 200
    approve = AuditEntry.objects.get(org=org_a, action="staff.grant_approve")
    assert (approve.actor_id, approve.actor_kind) == (admin_a.pk, "user")


def test_approving_twice_is_a_clear_error_and_changes_nothing(
    staff: User, admin_a: User, require_approval: Organization
) -> None:
    grant = open_grant(require_approval, staff)
    client = make_client(admin_a)
    client.post(decide_url(grant, "approve"))
    approved = fresh(grant)
    response = client.post(decide_url(grant, "approve"), follow=True)
    assert "Only a pending grant can be approved." in response.content.decode()
    again = fresh(grant)
    assert (again.starts_at, again.expires_at) == (approved.starts_at, approved.expires_at)
    assert AuditEntry.objects.filter(action="staff.grant_approve").count() == 1


def test_a_denied_grant_never_gives_access(
    staff: User, admin_a: User, require_approval: Organization
) -> None:
    grant = open_grant(require_approval, staff)
    client = make_client(admin_a)
    assert client.post(decide_url(grant, "deny")).status_code == 302
    assert fresh(grant).status == "denied"
    response = client.post(decide_url(grant, "approve"), follow=True)
    assert "Only a pending grant can be approved." in response.content.decode()
    assert fresh(grant).status == "denied"
    assert fresh(grant).starts_at is None
    assert make_client(staff).get(list_url(require_approval)).status_code == 403
    assert AuditEntry.objects.filter(action="staff.grant_deny", actor_id=admin_a.pk).exists()
    assert not AuditEntry.objects.filter(action="staff.grant_approve").exists()


def test_denying_a_grant_that_is_not_pending_is_a_clear_error_and_changes_nothing(
    staff: User, admin_a: User, org_a: Organization
) -> None:
    active = open_grant(org_a, staff)
    client = make_client(admin_a)
    response = client.post(decide_url(active, "deny"), follow=True)
    assert "Only a pending grant can be denied." in response.content.decode()
    assert fresh(active).status == "active"
    assert make_client(staff).get(list_url(org_a)).status_code == 200
    assert not AuditEntry.objects.filter(action="staff.grant_deny").exists()


def test_decisions_check_the_grant_as_stored_not_as_the_request_loaded_it(
    staff: User, admin_a: User, require_approval: Organization
) -> None:
    """Two admins decide the same pending grant at once: each request loaded it pending."""
    grant = open_grant(require_approval, staff)
    first, second, third = fresh(grant), fresh(grant), fresh(grant)
    actions.do_approve_grant(first, acting=admin_a, ip=None)
    approved = fresh(grant)

    with pytest.raises(ValidationError, match="Only a pending grant can be denied."):
        actions.do_deny_grant(second, acting=admin_a, ip=None)
    with pytest.raises(ValidationError, match="Only a pending grant can be approved."):
        actions.do_approve_grant(third, acting=admin_a, ip=None)

    now = fresh(grant)
    assert now.status == "active"
    assert (now.starts_at, now.expires_at) == (approved.starts_at, approved.expires_at)
    decisions = AuditEntry.objects.filter(action__in=["staff.grant_approve", "staff.grant_deny"])
    assert list(decisions.values_list("action", flat=True)) == ["staff.grant_approve"]


def test_a_grant_ended_twice_at_once_is_ended_and_logged_once(
    staff: User, admin_a: User, org_a: Organization
) -> None:
    grant = open_grant(org_a, staff)
    by_staff, by_admin = fresh(grant), fresh(grant)
    actions.do_end_grant(by_staff, acting=staff, ip=None)
    ended_at = fresh(grant).ended_at
    with pytest.raises(ValidationError, match="Only an active grant can be ended."):
        actions.do_end_grant(by_admin, acting=admin_a, ip=None)
    assert fresh(grant).ended_at == ended_at
    assert AuditEntry.objects.filter(action="staff.grant_end").count() == 1


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL only (DASHVAULT_TEST_ON_POSTGRES=1)"
)
@pytest.mark.django_db(transaction=True)
def test_eight_admins_approving_at_once_approve_once(staff: User, admin_a: User) -> None:
    org = admin_a.org
    assert org is not None
    Organization.objects.filter(pk=org.pk).update(grant_approval_required=True)
    org.refresh_from_db()
    grant = open_grant(org, staff)
    copies = [fresh(grant) for _ in range(8)]  # each request loaded it pending
    start = threading.Barrier(len(copies))
    outcomes: list[str] = []

    def approve(copy: AccessGrant) -> None:
        try:
            start.wait()
            actions.do_approve_grant(copy, acting=admin_a, ip=None)
            outcomes.append("approved")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=approve, args=(copy,)) for copy in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["approved"] + ["refused"] * 7
    assert AuditEntry.objects.filter(action="staff.grant_approve").count() == 1


def test_ending_a_pending_grant_is_a_clear_error_and_changes_nothing(
    staff: User, admin_a: User, require_approval: Organization
) -> None:
    grant = open_grant(require_approval, staff)
    response = make_client(admin_a).post(decide_url(grant, "end"), follow=True)
    assert "Only an active grant can be ended." in response.content.decode()
    url = reverse(
        "grant_end_by_staff", kwargs={"org_id": require_approval.pk, "grant_id": grant.pk}
    )
    response = make_client(staff).post(url, follow=True)
    assert "Only an active grant can be ended." in response.content.decode()
    assert fresh(grant).status == "pending"
    assert not AuditEntry.objects.filter(action="staff.grant_end").exists()


def test_another_orgs_admin_can_neither_see_nor_decide_a_grant(
    staff: User, admin_b: User, require_approval: Organization
) -> None:
    grant = open_grant(require_approval, staff)
    client = make_client(admin_b)
    text = client.get(reverse("grant_list")).content.decode()
    assert str(grant.pk) not in text and "SUP-1234" not in text
    for decision in ("approve", "deny", "end"):
        assert client.post(decide_url(grant, decision)).status_code == 404, decision
    assert fresh(grant).status == "pending"


@pytest.mark.parametrize("who", ["editor", "viewer"])
def test_editors_and_viewers_can_neither_see_nor_decide_grants(
    staff: User,
    editor_a: User,
    viewer_a: User,
    require_approval: Organization,
    who: str,
) -> None:
    grant = open_grant(require_approval, staff)
    client = make_client({"editor": editor_a, "viewer": viewer_a}[who])
    assert client.get(reverse("grant_list")).status_code == 403
    for decision in ("approve", "deny", "end"):
        assert client.post(decide_url(grant, decision)).status_code == 403, decision
    assert client.post(reverse("grant_approval_setting"), {"required": "0"}).status_code == 403
    require_approval.refresh_from_db()
    assert require_approval.grant_approval_required
    assert fresh(grant).status == "pending"


def test_an_unknown_decision_is_404(
    staff: User, admin_a: User, require_approval: Organization
) -> None:
    grant = open_grant(require_approval, staff)
    assert make_client(admin_a).post(decide_url(grant, "extend")).status_code == 404
    assert fresh(grant).status == "pending"


# -- the staff pages' own rules: staff in, everyone else 404 ---------------------------------


@pytest.fixture
def staff_urls(staff: User, org_a: Organization, dashboards_a: dict[str, Any]) -> list[str]:
    grant = open_grant(org_a, staff)
    return [
        reverse("grant_open", kwargs={"org_id": org_a.pk}),
        reverse("grant_end_by_staff", kwargs={"org_id": org_a.pk, "grant_id": grant.pk}),
        list_url(org_a),
        page_url(org_a, dashboards_a["sales"]),
    ]


def test_staff_pages_are_404_for_org_members(
    staff_urls: list[str], org_a: Organization, admin_a: User, viewer_a: User, admin_b: User
) -> None:
    for user in (admin_a, viewer_a, admin_b):
        client = make_client(user)
        for url in staff_urls:
            method = client.post if url.endswith("/end/") else client.get
            assert method(url).status_code == 404, (user.email, url)
    assert AccessGrant.objects.get().status == "active"
    assert not staff_views(org_a)


def test_staff_pages_send_anonymous_visitors_to_sign_in(staff_urls: list[str]) -> None:
    client = make_client()
    for url in staff_urls:
        response = client.post(url) if url.endswith("/end/") else client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(SIGN_IN)


def test_staff_pages_refuse_a_wrong_method(staff: User, staff_urls: list[str]) -> None:
    client = make_client(staff)
    open_page, end, dashboards, dashboard = staff_urls
    assert client.put(open_page).status_code == 405
    assert client.get(end).status_code == 405
    assert client.post(dashboards).status_code == 405
    assert client.post(dashboard).status_code == 405


# -- sockets ---------------------------------------------------------------------------------


class TestGrantSockets:
    """Staff sockets go through the same admission: inside a grant only, logged, and closed
    when the grant ends or expires."""

    pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

    @pytest_asyncio.fixture(autouse=True)
    async def fresh_hub(self) -> AsyncIterator[None]:
        hub.reset()
        yield
        hub.reset()
        await database_sync_to_async(connections.close_all)()

    async def test_without_a_grant_a_staff_socket_is_refused(
        self, staff: User, dashboards_a: dict[str, Any]
    ) -> None:
        session = await sync_to_async(session_of)(staff)
        for name in ("sales", "board"):
            communicator = socket(dashboards_a[name].pk, session)
            assert await refused_after_accept(communicator) == (4404, "not_found")
        assert not hub.screens
        assert not await AuditEntry.objects.filter(action="staff.view").aexists()

    async def test_inside_a_grant_a_staff_socket_gets_the_data_and_is_logged(
        self, staff: User, org_a: Organization, dashboards_a: dict[str, Any]
    ) -> None:
        board = dashboards_a["board"]  # granted to no group
        grant = await database_sync_to_async(open_grant)(org_a, staff)
        communicator = socket(board.pk, await sync_to_async(session_of)(staff))
        data = await opened(communicator)
        assert data["type"] == "data" and data["dashboard"] == str(board.pk)
        await communicator.disconnect()

        views = await database_sync_to_async(staff_views)(org_a)
        assert len(views) == 1
        view = views[0]
        assert (view.actor_kind, view.actor_id) == ("staff", staff.pk)
        assert view.detail == {"grant": str(grant.pk), "page": "socket"}
        assert (view.target_type, view.target_id) == ("dashboard", str(board.pk))
        assert view.chain == chain_of(org_a.pk)

    async def test_a_grant_for_one_org_opens_no_socket_in_another(
        self, staff: User, org_a: Organization, org_b_dashboard: Dashboard
    ) -> None:
        await database_sync_to_async(open_grant)(org_a, staff)
        communicator = socket(org_b_dashboard.pk, await sync_to_async(session_of)(staff))
        assert await refused_after_accept(communicator) == (4404, "not_found")
        assert not await AuditEntry.objects.filter(action="staff.view").aexists()

    async def test_the_socket_closes_when_the_grant_expires(
        self, staff: User, org_a: Organization, dashboards_a: dict[str, Any]
    ) -> None:
        sales = dashboards_a["sales"]
        grant = await database_sync_to_async(open_grant)(org_a, staff)
        soon = timezone.now() + dt.timedelta(seconds=2)
        await AccessGrant.objects.filter(pk=grant.pk).aupdate(expires_at=soon)
        session = await sync_to_async(session_of)(staff)
        communicator = socket(sales.pk, session)
        await opened(communicator)
        started = time.monotonic()

        assert await closed_with(communicator) == (4000, "access_changed")
        assert time.monotonic() - started < 4
        assert timezone.now() >= soon - dt.timedelta(milliseconds=50)
        # The page reconnects: no grant any more.
        assert await refused_after_accept(socket(sales.pk, session)) == (4404, "not_found")

    @pytest.mark.parametrize("by", ["staff", "admin"])
    async def test_ending_the_grant_early_closes_the_staff_sockets(
        self, staff: User, admin_a: User, org_a: Organization, dashboards_a: dict[str, Any], by: str
    ) -> None:
        grant = await database_sync_to_async(open_grant)(org_a, staff)
        session = await sync_to_async(session_of)(staff)
        screens = [socket(dashboards_a[name].pk, session) for name in ("sales", "board")]
        for screen in screens:
            await opened(screen)

        if by == "staff":
            client = await sync_to_async(make_client)(staff)
            url = reverse("grant_end_by_staff", kwargs={"org_id": org_a.pk, "grant_id": grant.pk})
        else:
            client = await sync_to_async(make_client)(admin_a)
            url = decide_url(grant, "end")
        assert (await sync_to_async(client.post)(url)).status_code == 302

        for screen in screens:
            assert await closed_with(screen) == (4000, "access_changed")
        # They reconnect through admission, which now finds no grant.
        for name in ("sales", "board"):
            communicator = socket(dashboards_a[name].pk, session)
            assert await refused_after_accept(communicator) == (4404, "not_found")
        assert not hub.screens


def test_the_approval_setting_takes_only_0_or_1(admin_a: User) -> None:
    client = make_client(admin_a)
    assert client.post("/org/access/approval/", {"required": "yes"}).status_code == 400
    assert client.post("/org/access/approval/", {}).status_code == 400
    admin_a.org.refresh_from_db()
    assert admin_a.org.grant_approval_required is False
    assert client.post("/org/access/approval/", {"required": "1"}).status_code == 302
    admin_a.org.refresh_from_db()
    assert admin_a.org.grant_approval_required is True
