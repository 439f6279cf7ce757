"""GDPR exports (issue 8 item 6): what dashvault holds about a person (for an org admin, and
for the person themselves), and everything an org owns, streamed. Audited; never a secret."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from allauth.usersessions.models import UserSession
from django.contrib.sessions.models import Session
from django.urls import reverse

from dashvault.accounts.models import User
from dashvault.api.models import ApiToken
from dashvault.audit.models import AuditEntry
from dashvault.integrations.models import Integration
from dashvault.kiosk.models import KioskLink
from dashvault.metrics.models import DataPoint, Metric
from dashvault.orgs.models import DataKey, Organization
from dashvault.privacy import export
from tests.conftest import SecureClient, make_client
from tests.test_privacy import (
    BROWSER,
    EMAIL,
    SSO_ACCESS_TOKEN,
    SSO_REFRESH_TOKEN,
    Person,
    own_ledger,
    zelda,
)
from tests.test_privacy_org_delete import SECRET, both_orgs

__all__ = ["both_orgs", "own_ledger", "zelda"]  # fixtures


def downloaded(response: Any) -> tuple[str, Any]:
    """The body of a JSON download (streamed or not) as text, and parsed."""
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="dashvault-')
    assert "no-store" in response["Cache-Control"]
    if response.streaming:
        text = b"".join(response.streaming_content).decode()
    else:
        text = response.content.decode()
    return text, json.loads(text)


def secrets_of(person: Person) -> dict[str, str]:
    """Everything of the person's that must never leave, by what it is."""
    user = User.objects.get(pk=person.user.pk)
    found = {
        "password hash": user.password,
        "password digest": user.password.rsplit("$", 1)[-1],
        "totp secret": person.totp_secret,
        "api token": person.api_token,
        "api token's secret part": person.api_token[len(person.api_token_row.prefix) :],
        "api token hash": ApiToken.objects.get(pk=person.api_token_row.pk).token_hash,
        "kiosk token": person.kiosk_token,
        "kiosk token hash": KioskLink.objects.get(pk=person.kiosk_link.pk).token_hash,
        "sso access token": SSO_ACCESS_TOKEN,
        "sso refresh token": SSO_REFRESH_TOKEN,
    }
    for number, code in enumerate(person.recovery_codes):
        found[f"recovery code {number}"] = code
    for authenticator in Authenticator.objects.filter(user=user):
        for key, value in authenticator.data.items():
            if isinstance(value, str) and len(value) >= 8:
                found[f"mfa {authenticator.type} {key}"] = value
    for number, session in enumerate(UserSession.objects.filter(user=user)):
        found[f"session key {number}"] = session.session_key
    assert len(found) >= 14
    return found


def assert_holds_the_person(data: dict[str, Any], person: Person) -> None:
    assert data["kind"] == "person"
    assert data["account"]["email"] == EMAIL and data["account"]["id"] == str(person.user.pk)
    assert [a["email"] for a in data["email_addresses"]] == [EMAIL]
    assert data["groups"] == ["Sales team A"]
    (sso,) = data["single_sign_on"]
    assert sso["uid"] == "oid-zelda" and sso["claims"]["id_token"]["email"] == EMAIL
    assert sorted(d["type"] for d in data["mfa_devices"]) == ["recovery_codes", "totp"]
    assert [s["user_agent"] for s in data["sessions"]] == [BROWSER]
    assert [t["name"] for t in data["api_tokens_created"]] == ["Zelda's CI"]
    assert [k["name"] for k in data["kiosk_links_created"]] == ["Zelda's TV"]
    actions = [e["action"] for e in data["audit"]]
    assert {"signin", "dashboard.create", "token.create", "person.export"} <= set(actions)
    mine = str(person.user.pk)
    assert all(e["actor_id"] == mine or e["target_id"] == mine for e in data["audit"])


def assert_no_secret(text: str, person: Person) -> None:
    leaked = [what for what, secret in secrets_of(person).items() if secret in text]
    assert leaked == []
    assert "password" not in json.loads(text)["account"]  # only "has_password"


def test_an_admin_exports_a_members_data_without_secrets(zelda: Person, admin_a: User) -> None:
    url = reverse("member_export", kwargs={"user_id": zelda.user.pk})
    text, data = downloaded(make_client(admin_a).post(url))

    assert_holds_the_person(data, zelda)
    assert_no_secret(text, zelda)
    entry = AuditEntry.objects.get(action="person.export")
    assert (entry.actor_id, entry.target_id) == (admin_a.pk, str(zelda.user.pk))
    assert entry.org_id == admin_a.org_id


def test_a_member_downloads_their_own_data_without_secrets(zelda: Person) -> None:
    page = zelda.client.get(reverse("my_data"))
    assert page.status_code == 200 and b"Download my data" in page.content

    text, data = downloaded(zelda.client.post(reverse("my_data")))

    assert_holds_the_person(data, zelda)
    assert_no_secret(text, zelda)
    entry = AuditEntry.objects.get(action="person.export")
    assert (entry.actor_id, entry.target_id) == (zelda.user.pk, str(zelda.user.pk))


def test_a_persons_export_holds_nothing_of_other_people(
    zelda: Person, admin_a: User, viewer_a: User, admin_b: User
) -> None:
    text, _ = downloaded(zelda.client.post(reverse("my_data")))
    for other in (admin_a, viewer_a, admin_b):
        assert other.email not in text


def test_the_export_urls_refuse_get_with_405(zelda: Person, admin_a: User) -> None:
    client = make_client(admin_a)
    assert (
        client.get(reverse("member_export", kwargs={"user_id": zelda.user.pk})).status_code == 405
    )
    assert client.get(reverse("org_export")).status_code == 405
    assert not AuditEntry.objects.filter(action__endswith=".export").exists()


# -- the org export ----------------------------------------------------------------------------

POINTS = 12_000  # more than two of the export's batches


@pytest.fixture
def many_points(both_orgs: dict[str, Any], org_a: Organization) -> Metric:
    metric = both_orgs["a"]["metric"]
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    DataPoint.objects.bulk_create(
        [
            DataPoint(
                org=org_a,
                metric=metric,
                ts=start + dt.timedelta(minutes=n),
                value=n,
                dimension="north" if n % 2 else "",
            )
            for n in range(POINTS)
        ],
        batch_size=2000,
    )
    assert export.BATCH < POINTS // 2
    return metric


def org_export(admin: User) -> tuple[str, dict[str, Any], Any]:
    response = make_client(admin).post(reverse("org_export"))
    assert response.streaming
    text, data = downloaded(response)
    return text, data, response


def test_the_org_export_is_valid_json_with_everything_the_org_owns(
    many_points: Metric,
    both_orgs: dict[str, Any],
    org_a: Organization,
    admin_a: User,
    editor_a: User,
    viewer_a: User,
) -> None:
    text, data, _ = org_export(admin_a)

    assert data["kind"] == "organization" and data["organization"]["name"] == "Org A"
    emails = {m["email"] for m in data["members"]}
    assert emails == {admin_a.email, editor_a.email, viewer_a.email}
    (group,) = data["groups"]
    assert group["name"] == "Team of A" and group["members"] == [str(admin_a.pk)]
    (board,) = data["dashboards"]
    assert board["title"] == "Board of A"
    assert [w["metric"] for w in board["widgets"]] == [str(many_points.pk)]
    (metric,) = data["metrics"]
    assert metric["key"] == "revenue_a"
    stored = DataPoint.objects.filter(metric=many_points).count()
    assert stored == POINTS + 1 and len(metric["points"]) == stored
    assert sum(p["value"] for p in metric["points"]) == sum(range(POINTS)) + 7
    stamps = [p["ts"] for p in metric["points"]]
    assert stamps == sorted(stamps)
    assert sum(1 for p in metric["points"] if p.get("dimension") == "north") == POINTS // 2
    (token,) = data["api_tokens"]
    assert token["name"] == "CI of A"
    assert [k["name"] for k in data["kiosk_links"]] == ["TV of A"]
    assert data["single_sign_on"]["email_domains"] == ["a.example"]
    actions = [e["action"] for e in data["audit"]]
    assert actions[-1] == "org.export"
    assert len(actions) == AuditEntry.objects.filter(org=org_a).count()


def test_the_org_export_carries_no_credential_key_or_hash(
    both_orgs: dict[str, Any], org_a: Organization, admin_a: User
) -> None:
    text, data, _ = org_export(admin_a)

    (integration,) = data["integrations"]
    assert integration["name"] == "Deals of A" and integration["credential_set"] is True
    sealed = bytes(Integration.objects.get(org=org_a).credential)
    assert len(sealed) > 16
    secrets = {
        "plaintext credential": SECRET.format(name="A"),
        "sealed credential (base64)": base64.b64encode(sealed).decode(),
        "sealed credential (hex)": sealed.hex(),
        "api token": both_orgs["a"]["token"],
        "kiosk token": both_orgs["a"]["kiosk_token"],
    }
    for row in ApiToken.objects.filter(org=org_a):
        secrets[f"api token hash {row.name}"] = row.token_hash
    for row in KioskLink.objects.filter(org=org_a):
        secrets[f"kiosk token hash {row.name}"] = row.token_hash
    for key in DataKey.objects.filter(org=org_a):
        secrets[f"data key {key.version}"] = base64.b64encode(bytes(key.wrapped)).decode()
        secrets[f"data key {key.version} (hex)"] = bytes(key.wrapped).hex()
    for user in User.objects.filter(org=org_a):
        secrets[f"password hash of {user.role}"] = user.password
    for session in Session.objects.all():
        secrets["a session key"] = session.session_key
    assert [what for what, secret in secrets.items() if secret in text] == []
    assert sealed.decode("latin-1") not in text


def test_the_org_export_holds_nothing_of_the_other_org(
    many_points: Metric, both_orgs: dict[str, Any], org_b: Organization, admin_a: User
) -> None:
    text, _, _ = org_export(admin_a)
    other = (
        str(org_b.pk),
        "Org B",
        "admin@b.example",
        "Board of B",
        "Team of B",
        "revenue_b",
        "Deals of B",
        "TV of B",
        "CI of B",
        "b.example",
        "claim-B",
        "app-B",
    )
    assert [marker for marker in other if marker in text] == []
    for entry in AuditEntry.objects.filter(org=org_b):
        assert f'"at": "{entry.at.isoformat()}", "action": "{entry.action}"' not in text


def test_the_org_export_is_audited_once_by_the_admin(
    both_orgs: dict[str, Any], org_a: Organization, admin_a: User
) -> None:
    org_export(admin_a)
    entry = AuditEntry.objects.get(action="org.export")
    assert (entry.org_id, entry.actor_id) == (org_a.pk, admin_a.pk)
    assert (entry.target_type, entry.target_id) == ("organization", str(org_a.pk))


def test_an_org_export_of_an_empty_org_is_valid_json(org_a: Organization, admin_a: User) -> None:
    _, data, _ = org_export(admin_a)
    assert data["metrics"] == [] and data["dashboards"] == []
    assert data["audit"][-1]["action"] == "org.export"


def test_editors_and_viewers_cannot_export_the_org(
    both_orgs: dict[str, Any], editor_a: User, viewer_a: User
) -> None:
    for user in (editor_a, viewer_a):
        assert make_client(user).post(reverse("org_export")).status_code == 403
    assert not AuditEntry.objects.filter(action="org.export").exists()


def test_anonymous_visitors_get_no_export(zelda: Person) -> None:
    for url in (
        reverse("org_export"),
        reverse("my_data"),
        reverse("member_export", kwargs={"user_id": zelda.user.pk}),
    ):
        response = SecureClient().post(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
