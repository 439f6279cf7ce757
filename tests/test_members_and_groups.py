"""Org admins manage members and groups; groups decide who sees which dashboards."""

from __future__ import annotations

import re

from django.core import mail

from dashvault.accounts.models import Role, User
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Dashboard
from dashvault.orgs.models import Group
from dashvault.policy.principal import Principal
from dashvault.policy.rules import visible_dashboards
from tests.conftest import make_client


def principal(user: User) -> Principal:
    return Principal("member", user, user.org, user.role, None)


def test_members_see_the_union_of_their_groups_and_admins_see_all(org_a, admin_a, viewer_a):
    one, two, three = (Dashboard.objects.create(org=org_a, title=t) for t in "123")
    g1 = Group.objects.create(org=org_a, name="g1")
    g2 = Group.objects.create(org=org_a, name="g2")
    g1.members.add(viewer_a)
    g2.members.add(viewer_a)
    g1.dashboards.add(one)
    g2.dashboards.add(one, two)
    assert set(visible_dashboards(principal(viewer_a))) == {one, two}
    assert set(visible_dashboards(principal(admin_a))) == {one, two, three}


def test_a_group_of_another_org_grants_nothing(org_a, org_b, viewer_a):
    # Even a corrupted row linking across orgs must not grant anything.
    dashboard = Dashboard.objects.create(org=org_a, title="x")
    foreign = Group.objects.create(org=org_b, name="foreign")
    foreign.members.add(viewer_a)
    foreign.dashboards.add(dashboard)
    assert list(visible_dashboards(principal(viewer_a))) == []


def test_adding_a_member_shows_a_one_time_link_that_works_once(
    client, admin_a, django_capture_on_commit_callbacks
):
    admin = make_client(admin_a)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            "/org/members/new/", {"email": "New.Person@A.example", "role": "editor"}
        )
    assert response.status_code == 200
    link = re.search(r'value="(https://[^"]+)"', response.content.decode()).group(1)
    member = User.objects.get(email="new.person@a.example")
    assert member.org == admin_a.org and member.role == Role.EDITOR
    assert not member.has_usable_password()
    assert len(mail.outbox) == 1 and link in mail.outbox[0].body
    assert mail.outbox[0].to == ["new.person@a.example"]

    path = link.removeprefix("https://testserver")
    first = client.get(path)  # allauth moves the key into the session, off the URL
    assert first.status_code == 302
    new = "a-long-new-password-1"
    done = client.post(first["Location"], {"password1": new, "password2": new})
    assert done.status_code == 302
    member.refresh_from_db()
    assert member.check_password(new)

    again = make_client().get(path)
    follow = make_client().get(again["Location"]) if again.status_code == 302 else again
    assert b"invalid" in follow.content.lower() or b"bad token" in follow.content.lower()


def test_an_address_in_use_is_refused_clearly(admin_a, admin_b):
    response = make_client(admin_a).post(
        "/org/members/new/", {"email": admin_b.email, "role": "viewer"}
    )
    assert response.status_code == 400
    assert b"already exists" in response.content
    assert User.objects.filter(email=admin_b.email).get().org == admin_b.org


def test_the_last_admin_cannot_be_demoted_or_deactivated(admin_a, editor_a):
    admin = make_client(admin_a)
    admin.post(f"/org/members/{admin_a.pk}/role/", {"role": "viewer"})
    admin_a.refresh_from_db()
    assert admin_a.role == Role.ADMIN
    admin.post(f"/org/members/{admin_a.pk}/active/", {"active": "0"})
    admin_a.refresh_from_db()
    assert admin_a.is_active


def test_an_unknown_role_is_a_400_and_changes_nothing(admin_a, viewer_a):
    response = make_client(admin_a).post(f"/org/members/{viewer_a.pk}/role/", {"role": "owner"})
    assert response.status_code == 400
    viewer_a.refresh_from_db()
    assert viewer_a.role == Role.VIEWER


def test_a_group_form_refuses_another_orgs_members_and_dashboards(admin_a, admin_b, dashboards_a):
    foreign_dashboard = Dashboard.objects.create(org=admin_b.org, title="B board")
    response = make_client(admin_a).post(
        "/org/groups/new/",
        {"name": "sneaky", "members": [str(admin_b.pk)], "dashboards": [str(foreign_dashboard.pk)]},
    )
    assert response.status_code == 400
    assert not Group.objects.filter(name="sneaky").exists()


def test_an_admin_edits_a_group_and_the_change_is_audited(admin_a, viewer_a, dashboards_a):
    group = dashboards_a["group"]
    board = dashboards_a["board"]
    response = make_client(admin_a).post(
        f"/org/groups/{group.pk}/",
        {"name": "Renamed", "members": [str(viewer_a.pk)], "dashboards": [str(board.pk)]},
    )
    assert response.status_code == 302
    group.refresh_from_db()
    assert group.name == "Renamed"
    assert list(group.members.all()) == [viewer_a]
    assert set(visible_dashboards(principal(viewer_a))) == {board}
    entry = AuditEntry.objects.get(action="group.update")
    assert entry.target_id == str(group.pk) and entry.actor_id == admin_a.pk


def test_a_duplicate_group_name_is_a_400(admin_a, dashboards_a):
    response = make_client(admin_a).post("/org/groups/new/", {"name": "Sales team A"})
    assert response.status_code == 400
    assert b"already exists" in response.content


def test_an_editor_creates_a_dashboard_their_groups_can_see(editor_a, viewer_a, dashboards_a):
    response = make_client(editor_a).post("/dashboards/new/", {"title": "Weekly"})
    assert response.status_code == 302
    weekly = Dashboard.objects.get(title="Weekly")
    assert weekly in visible_dashboards(principal(viewer_a))


def test_an_editor_in_no_group_is_told_why_they_cannot_create(org_a, admin_a):
    lonely = User.objects.create_user("lonely@a.example", "x" * 20, org=org_a, role=Role.EDITOR)
    response = make_client(lonely).post("/dashboards/new/", {"title": "Nobody sees"})
    assert response.status_code == 400
    assert b"no group" in response.content
    assert not Dashboard.objects.filter(title="Nobody sees").exists()


def test_org_settings_validate_the_time_zone(admin_a):
    admin = make_client(admin_a)
    bad = admin.post("/org/settings/", {"name": "Org A", "time_zone": "Mars/Base"})
    assert bad.status_code == 400
    good = admin.post(
        "/org/settings/", {"name": "Org A", "time_zone": "Europe/Helsinki", "require_mfa": "on"}
    )
    assert good.status_code == 302
    admin_a.org.refresh_from_db()
    assert admin_a.org.time_zone == "Europe/Helsinki" and admin_a.org.require_mfa
