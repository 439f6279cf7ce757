"""The audit log pages: org admins filter and export their org's chain (exports audited);
platform staff read the platform's; nobody else reads either."""

from __future__ import annotations

import csv
import io
import json

import pytest

from dashvault.audit.models import AuditEntry
from dashvault.orgs.actions import do_save_group
from tests.conftest import make_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(admin_a, admin_b, dashboards_a):
    """Entries of org A (group changes), org B, and the platform."""
    for name in ("Alpha", "Beta"):
        do_save_group(
            admin_a.org, None, name=name, members=[], dashboards=[], acting=admin_a, ip="10.1.1.1"
        )
    do_save_group(
        admin_b.org, None, name="B only", members=[], dashboards=[], acting=admin_b, ip="10.9.9.9"
    )
    from dashvault import audit

    audit.record("guard.blocked", actor_kind="anonymous", ip="192.0.2.7", level=0)


def test_an_admin_sees_only_their_orgs_entries(admin_a, admin_b, history):
    page = make_client(admin_a).get("/org/audit/")
    assert page.status_code == 200
    text = page.content.decode()
    assert text.count("group.create") == 2
    assert "10.9.9.9" not in text and "guard.blocked" not in text


def test_filters_narrow_the_list(admin_a, history):
    client = make_client(admin_a)
    by_ip = client.get("/org/audit/", {"ip": "10.1.1.1"}).content.decode()
    assert by_ip.count("group.create") == 2
    assert client.get("/org/audit/", {"ip": "10.2.2.2"}).content.decode().count("group.") == 0
    by_actor = client.get("/org/audit/", {"actor": str(admin_a.pk), "action": "group"})
    assert by_actor.content.decode().count("group.create") == 2
    assert (
        client.get("/org/audit/", {"since": "2000-01-01", "until": "2000-01-02"})
        .content.decode()
        .count("group.create")
        == 0
    )


def test_a_bad_filter_is_a_400(admin_a, history):
    assert make_client(admin_a).get("/org/audit/", {"actor": "not-a-uuid"}).status_code == 400
    assert make_client(admin_a).get("/org/audit/", {"since": "yesterday"}).status_code == 400


def test_csv_and_json_exports_hold_the_filtered_entries_and_are_audited(admin_a, history):
    client = make_client(admin_a)
    response = client.get("/org/audit/", {"action": "group", "export": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["action"] for row in rows] == ["group.create", "group.create"]
    assert all(len(row["mac"]) == 64 for row in rows)
    exported = client.get("/org/audit/", {"export": "json"})
    data = json.loads(exported.content)
    assert {row["action"] for row in data} >= {"group.create", "audit.export"}
    exports = AuditEntry.objects.filter(action="audit.export", org=admin_a.org)
    assert exports.count() == 2
    assert {e.detail["format"] for e in exports} == {"csv", "json"}


def test_staff_read_the_platform_log_only(staff, history):
    client = make_client(staff)
    text = client.get("/staff/audit/").content.decode()
    assert "guard.blocked" in text and "group.create" not in text
    assert client.get("/org/audit/").status_code == 403


def test_members_cannot_read_the_platform_log_or_others_their_orgs(viewer_a, admin_a, history):
    assert make_client(admin_a).get("/staff/audit/").status_code == 404
    assert make_client(viewer_a).get("/org/audit/").status_code == 403
    assert make_client().get("/org/audit/").status_code == 302
