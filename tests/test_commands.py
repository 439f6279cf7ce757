"""The `dashvault` command's own subcommands."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from dashvault.accounts.models import Role, User
from dashvault.dashboards.models import Widget, WidgetKind
from dashvault.metrics.models import Rollup
from dashvault.orgs.models import Group, Organization
from dashvault.policy.principal import Principal
from dashvault.policy.rules import visible_dashboards
from tests.conftest import make_client


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def set_password_through(client, link: str, password: str) -> None:
    path = link.split("://", 1)[1].split("/", 1)[1]
    first = client.get("/" + path)
    assert first.status_code == 302
    assert (
        client.post(first["Location"], {"password1": password, "password2": password}).status_code
        == 302
    )


def test_createorg_makes_an_org_and_admin_with_a_working_link(client, db):
    out = run(
        "createorg", "Globex", "--admin-email", "Boss@Globex.example", "--time-zone", "Europe/Oslo"
    )
    org = Organization.objects.get(name="Globex")
    admin = User.objects.get(email="boss@globex.example")
    assert (admin.org, admin.role, org.time_zone) == (org, Role.ADMIN, "Europe/Oslo")
    link = re.search(r"https://\S+", out).group(0)
    assert link.startswith("https://localhost:8443/accounts/password/reset/key/")
    set_password_through(client, link, "globex-admin-password")
    assert (
        client.post(
            "/accounts/login/", {"login": admin.email, "password": "globex-admin-password"}
        ).status_code
        == 302
    )


def test_createorg_refuses_a_taken_address_or_bad_time_zone(admin_a):
    with pytest.raises(CommandError, match="already exists"):
        run("createorg", "Dup", "--admin-email", admin_a.email)
    with pytest.raises(CommandError, match="time zone"):
        run("createorg", "Tz", "--admin-email", "x@tz.example", "--time-zone", "Nowhere/Here")
    assert not Organization.objects.filter(name__in=["Dup", "Tz"]).exists()


def test_createstaff_makes_a_staff_member_without_an_org(db):
    out = run("createstaff", "--email", "ops@provider.example")
    staff = User.objects.get(email="ops@provider.example")
    assert staff.is_platform_staff and staff.org is None
    assert "https://" in out and "ops@provider.example" not in out


def test_demo_creates_acme_once_with_permissions_at_work(db):
    first = run("demo")
    assert "Created the demo organization Acme." in first
    assert run("demo").startswith("Demo organization Acme exists.")
    assert Organization.objects.filter(name="Acme").count() == 1
    viewer = User.objects.get(email="viewer@acme.example")
    titles = {
        d.title
        for d in visible_dashboards(Principal("member", viewer, viewer.org, viewer.role, None))
    }
    assert titles == {"Sales overview", "Pipeline"}
    assert Group.objects.filter(org=viewer.org).count() == 2
    kinds = set(Widget.objects.filter(org=viewer.org).values_list("kind", flat=True))
    assert kinds == set(WidgetKind.values)  # every widget type is shown off
    first_day = Rollup.objects.filter(org=viewer.org).order_by("day").first().day
    assert (timezone.localdate() - first_day).days >= 364  # a year of data
    lines = first.splitlines()
    for line in lines[2:5]:  # after the two header lines: role, e-mail, password
        role, email, password = line.split()
        assert User.objects.get(email=email).check_password(password)
    # The last line is the TV's kiosk link: it opens the two sales dashboards, rotating.
    assert lines[-2].startswith("Demo kiosk link for a TV")
    url = lines[-1]
    assert url.startswith("https://localhost:8443/kiosk/dvk_")
    page = make_client().get(url.removeprefix("https://localhost:8443"))
    assert page.status_code == 200
    content = page.content.decode()
    assert "Sales overview" in content and "Pipeline" in content
    assert "Customer support" not in content
