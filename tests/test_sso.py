"""Single sign-on end to end against a real OpenID provider on loopback (tests/oidc.py).

Every sign-in here goes the whole way: dashvault redirects to the provider, the test approves
as a person there, and dashvault exchanges the code over HTTPS and checks the signed ID token.
Outcomes are read from the database: users, linked identities, groups, roles, sessions, audit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
from typing import Any

import pyotp
import pytest
import requests
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from allauth.socialaccount.models import SocialAccount
from django.core.exceptions import ValidationError
from django.utils.html import escape

from dashvault.accounts.adapter import BREAK_GLASS_MFA, SSO_ONLY
from dashvault.accounts.models import Role, User
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Dashboard
from dashvault.orgs.models import Group
from dashvault.sso import providers
from dashvault.sso.actions import (
    do_add_mapping,
    do_delete_mapping,
    do_delete_provider,
    do_save_provider,
    do_save_sso_settings,
)
from dashvault.sso.models import IdentityProvider
from dashvault.sso.signin import REFUSALS
from tests.conftest import PASSWORD, make_client
from tests.oidc import TENANT, Provider, path_and_query, query_of, running_provider

SECRET = "s3cret-7Qm2-not-anywhere-else"
OTHER_TENANT = "0a0b0c0d-1111-2222-3333-444455556666"
LOGIN = "/accounts/login/"


# --- the provider and an org set up for SSO --------------------------------------------------


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running_provider(tmp_path_factory.mktemp("oidc")) as provider:
        yield provider


@pytest.fixture
def idp_server(oidc: Provider, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Provider:
    """dashvault pointed at the loopback provider, trusting its CA."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(oidc.ca_file))
    settings.SSO_AZURE_URL = oidc.azure_url
    settings.SSO_GOOGLE_URL = oidc.url
    return oidc


def configure(org: Any, admin: User, **changes: Any) -> None:
    options: dict[str, Any] = {
        "domains": ["a.example"],
        "federation": True,
        "password_signin": True,
        "break_glass": None,
        "default_groups": [],
    }
    options.update(changes)
    do_save_sso_settings(org, acting=admin, ip=None, **options)


@pytest.fixture
def azure(idp_server: Provider, admin_a: User, dashboards_a: dict[str, Any]) -> IdentityProvider:
    """Org A with Azure AD (tenant TENANT), domain a.example, federation on, "Sales team A"
    (which grants "Sales A") as the default group."""
    org = admin_a.org
    idp = do_save_provider(
        org,
        "azure",
        client_id="dashvault-a",
        client_secret=SECRET,
        tenant_id=TENANT,
        acting=admin_a,
        ip=None,
    )
    configure(org, admin_a, default_groups=[dashboards_a["group"]])
    return idp


@pytest.fixture
def google(idp_server: Provider, admin_a: User) -> IdentityProvider:
    """Org A with Google, Workspace domain a.example, domain a.example, federation on."""
    idp = do_save_provider(
        admin_a.org,
        "google",
        client_id="dashvault-g",
        client_secret=SECRET,
        hosted_domain="a.example",
        acting=admin_a,
        ip=None,
    )
    configure(admin_a.org, admin_a)
    return idp


def azure_person(name: str, **claims: Any) -> dict[str, Any]:
    return {"email": f"{name}@a.example", "tid": TENANT, "oid": f"oid-{name}", **claims}


def google_person(name: str, **claims: Any) -> dict[str, Any]:
    return {"email": f"{name}@a.example", "email_verified": True, "hd": "a.example", **claims}


def start(client: Any, idp: IdentityProvider) -> str:
    """Press the sign-in button: the authorize URL dashvault redirects to."""
    response = client.post(providers.login_url(idp), {"process": "login"})
    assert response.status_code == 302, response.status_code
    return str(response["Location"])


def sso_sign_in(
    provider: Provider,
    idp: IdentityProvider,
    sub: str,
    claims: dict[str, Any] | None = None,
    client: Any = None,
) -> tuple[Any, Any]:
    """The whole round trip as `sub` (with `claims` set at the provider first, if given)."""
    if claims is not None:
        provider.set_user(sub, claims)
    client = client or make_client()
    back = provider.authorize(start(client, idp), sub)
    return client, client.get(path_and_query(back))


def signed_in_user(client: Any) -> str | None:
    return client.session.get("_auth_user_id")


def last(action: str) -> AuditEntry:
    entry = AuditEntry.objects.filter(action=action).order_by("-id").first()
    assert entry is not None, f"no {action} entry"
    return entry


def assert_refused(response: Any, client: Any, idp: IdentityProvider, reason: str) -> None:
    assert response.status_code == 403
    page = response.content.decode()
    assert f'data-reason="{reason}"' in page
    assert escape(REFUSALS[reason]) in page
    assert signed_in_user(client) is None
    entry = last("sso.refused")
    assert entry.detail == {"reason": reason}
    assert entry.org_id == idp.org_id and entry.target_id == str(idp.pk)
    assert entry.actor_id is None and entry.actor_kind == "anonymous"
    assert AuditEntry.objects.latest("id") == entry  # no sign-in, link or creation after it


# --- federation: just-in-time creation -------------------------------------------------------


def test_federation_creates_a_viewer_in_the_default_groups_who_lands_on_their_dashboards(
    azure, idp_server, dashboards_a
):
    client, response = sso_sign_in(idp_server, azure, "alice", azure_person("alice"))

    alice = User.objects.get(email="alice@a.example")
    assert alice.org_id == azure.org_id and alice.role == Role.VIEWER and alice.is_active
    assert alice.sso_allowed and not alice.has_usable_password()
    assert set(alice.dashboard_groups.all()) == {dashboards_a["group"]}
    account = SocialAccount.objects.get(user=alice)
    assert (account.provider, account.uid) == (str(azure.pk), "oid-alice")
    assert signed_in_user(client) == str(alice.pk)
    landing = client.get(response["Location"], follow=True)
    assert landing.redirect_chain[-1][0] == "/dashboards/" and landing.status_code == 200
    assert b"Sales A" in landing.content and b"Board A" not in landing.content
    assert client.get(f"/dashboards/{dashboards_a['sales'].pk}/").status_code == 200
    created, signin = last("sso.jit_create"), last("sso.signin")
    assert created.actor_id == signin.actor_id == alice.pk
    assert created.target_id == signin.target_id == str(azure.pk)
    assert signin.detail == {"kind": "azure"} and created.id < signin.id


def test_the_next_sign_in_follows_the_linked_identity_even_when_the_email_changes(
    azure, idp_server
):
    sso_sign_in(idp_server, azure, "alice", azure_person("alice"))
    alice = User.objects.get(email="alice@a.example")

    renamed = azure_person("alice", email="alice.married@a.example")
    client, response = sso_sign_in(idp_server, azure, "alice", renamed)

    assert response.status_code == 302 and signed_in_user(client) == str(alice.pk)
    assert User.objects.filter(org=azure.org_id, sso_allowed=True).count() == 1
    assert not User.objects.filter(email="alice.married@a.example").exists()
    assert SocialAccount.objects.filter(user=alice).count() == 1
    assert AuditEntry.objects.filter(action="sso.jit_create").count() == 1
    assert AuditEntry.objects.filter(action="sso.signin", actor_id=alice.pk).count() == 2


def test_another_identity_asserting_a_linked_persons_email_does_not_get_their_account(
    azure, idp_server
):
    # Keyed on tid + oid, never on e-mail: a re-used or re-assigned address at the provider
    # (a new employee given a leaver's address, say) does not inherit the old account.
    sso_sign_in(idp_server, azure, "alice", azure_person("alice"))
    alice = User.objects.get(email="alice@a.example")

    impostor = azure_person("mallory", email="alice@a.example")
    client, response = sso_sign_in(idp_server, azure, "mallory", impostor)

    assert_refused(response, client, azure, "other_identity")
    assert list(SocialAccount.objects.values_list("uid", flat=True)) == ["oid-alice"]
    assert SocialAccount.objects.get().user_id == alice.pk


def test_with_federation_off_an_unknown_person_is_refused_and_nothing_is_created(
    azure, idp_server, admin_a
):
    configure(admin_a.org, admin_a, federation=False)
    users = User.objects.count()

    client, response = sso_sign_in(idp_server, azure, "bob", azure_person("bob"))

    assert_refused(response, client, azure, "not_added")
    assert "Ask your organization" in response.content.decode()
    assert User.objects.count() == users
    assert not User.objects.filter(email="bob@a.example").exists()
    assert not SocialAccount.objects.exists()
    assert client.get("/dashboards/").status_code == 302


# --- refusals decided from the ID token -----------------------------------------------------


AZURE_REFUSALS = [
    pytest.param(azure_person("eve", tid=OTHER_TENANT), "wrong_tenant", id="another-directory"),
    pytest.param(
        {"email": "eve@a.example", "oid": "oid-eve"}, "wrong_tenant", id="no-tenant-claim"
    ),
    pytest.param(
        azure_person("eve", email="eve@elsewhere.example"), "domain_not_allowed", id="domain"
    ),
    pytest.param({"tid": TENANT, "oid": "oid-eve"}, "email_missing", id="no-email"),
]
GOOGLE_REFUSALS = [
    pytest.param(google_person("eve", hd="other.example"), "wrong_hosted_domain", id="other-hd"),
    pytest.param(
        {"email": "eve@a.example", "email_verified": True}, "wrong_hosted_domain", id="no-hd"
    ),
    pytest.param(google_person("eve", email_verified=False), "email_missing", id="unverified"),
    pytest.param({"email": "eve@a.example", "hd": "a.example"}, "email_missing", id="no-verified"),
    pytest.param(
        google_person("eve", email="eve@other.example"), "domain_not_allowed", id="domain"
    ),
]


@pytest.mark.parametrize(("claims", "reason"), AZURE_REFUSALS)
def test_azure_refuses_a_token_the_org_does_not_trust(azure, idp_server, claims, reason):
    users = User.objects.count()
    client, response = sso_sign_in(idp_server, azure, "eve", claims)
    assert_refused(response, client, azure, reason)
    assert User.objects.count() == users and not SocialAccount.objects.exists()
    assert not AuditEntry.objects.filter(action="sso.jit_create").exists()


@pytest.mark.parametrize(("claims", "reason"), GOOGLE_REFUSALS)
def test_google_refuses_a_token_the_org_does_not_trust(google, idp_server, claims, reason):
    users = User.objects.count()
    client, response = sso_sign_in(idp_server, google, "eve", claims)
    assert_refused(response, client, google, reason)
    assert User.objects.count() == users and not SocialAccount.objects.exists()


def test_google_signs_in_a_verified_person_of_the_workspace_keyed_by_sub(google, idp_server):
    client, response = sso_sign_in(idp_server, google, "g-123", google_person("gina"))
    gina = User.objects.get(email="gina@a.example")
    assert response.status_code == 302 and signed_in_user(client) == str(gina.pk)
    account = SocialAccount.objects.get(user=gina)
    assert (account.provider, account.uid) == (str(google.pk), "g-123")
    assert last("sso.signin").detail == {"kind": "google"}


def test_a_disabled_provider_signs_nobody_in(azure, idp_server, admin_a):
    idp_server.set_user("alice", azure_person("alice"))
    client = make_client()
    authorize = start(client, azure)
    do_save_provider(
        admin_a.org,
        "azure",
        client_id="dashvault-a",
        client_secret=None,
        tenant_id=TENANT,
        enabled=False,
        acting=admin_a,
        ip=None,
    )
    back = idp_server.authorize(authorize, "alice")
    response = client.get(path_and_query(back))
    assert response.status_code in (403, 404)
    assert signed_in_user(client) is None and not User.objects.filter(email="alice@a.example")


# --- forged or replayed state ---------------------------------------------------------------


def with_state(url: str, state: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query["state"] = state
    return parts.path + "?" + urllib.parse.urlencode(query)


def assert_state_refused(response: Any, client: Any, idp: IdentityProvider) -> None:
    assert response.status_code in (400, 401, 403)
    assert signed_in_user(client) is None
    assert not User.objects.filter(email="alice@a.example").exists()
    assert not SocialAccount.objects.exists()
    entry = last("sso.refused")
    assert entry.org_id == idp.org_id and entry.target_id == str(idp.pk)
    assert entry.actor_id is None and entry.detail["reason"]
    assert not AuditEntry.objects.filter(action__in=["sso.signin", "signin"]).exists()


def test_a_forged_state_is_refused(azure, idp_server):
    idp_server.set_user("alice", azure_person("alice"))
    client = make_client()
    back = idp_server.authorize(start(client, azure), "alice")
    response = client.get(with_state(back, query_of(back)["state"][::-1] + "x"))
    assert_state_refused(response, client, azure)


def test_a_callback_replayed_in_another_browser_is_refused(azure, idp_server):
    idp_server.set_user("alice", azure_person("alice"))
    victim = make_client()
    back = idp_server.authorize(start(victim, azure), "alice")
    attacker = make_client()
    response = attacker.get(path_and_query(back))
    assert_state_refused(response, attacker, azure)


def test_a_callback_cannot_be_used_twice(azure, idp_server):
    client, first = sso_sign_in(idp_server, azure, "alice", azure_person("alice"))
    assert first.status_code == 302
    back = idp_server.authorize(start(make_client(), azure), "alice")
    stranger = make_client()
    assert stranger.get(path_and_query(back)).status_code != 302
    assert signed_in_user(stranger) is None
    assert AuditEntry.objects.filter(action="sso.signin").count() == 1


# --- claim mappings ---------------------------------------------------------------------------


def test_a_mapped_group_is_granted_and_taken_away_by_the_groups_claim(
    azure, idp_server, admin_a, dashboards_a
):
    org, board = admin_a.org, dashboards_a["board"]
    finance = Group.objects.create(org=org, name="Finance A")
    finance.dashboards.add(board)
    do_add_mapping(org, value="grp-finance", group=finance, role="", acting=admin_a, ip=None)

    claims = azure_person("alice", groups=["grp-other", "grp-finance"])
    client, _ = sso_sign_in(idp_server, azure, "alice", claims)
    alice = User.objects.get(email="alice@a.example")
    assert set(alice.dashboard_groups.all()) == {dashboards_a["group"], finance}
    assert client.get(f"/dashboards/{board.pk}/").status_code == 200
    assert b"Board A" in client.get("/dashboards/").content
    assert last("sso.mapping_applied").detail == {"added": 1, "removed": 0, "role": "viewer"}

    client, _ = sso_sign_in(idp_server, azure, "alice", azure_person("alice", groups=["grp-x"]))
    assert signed_in_user(client) == str(alice.pk)
    # Taken out of the mapped group; the default group (not mapped) stays as it was.
    assert set(alice.dashboard_groups.all()) == {dashboards_a["group"]}
    assert client.get(f"/dashboards/{board.pk}/").status_code == 404
    assert b"Board A" not in client.get("/dashboards/").content
    applied = last("sso.mapping_applied")
    assert applied.detail == {"added": 0, "removed": 1, "role": "viewer"}
    assert applied.actor_id == alice.pk and applied.target_id == str(alice.pk)


def test_a_deleted_mapping_no_longer_grants_or_removes(azure, idp_server, admin_a, dashboards_a):
    org = admin_a.org
    finance = Group.objects.create(org=org, name="Finance A")
    mapping = do_add_mapping(
        org, value="grp-finance", group=finance, role="", acting=admin_a, ip=None
    )
    sso_sign_in(idp_server, azure, "alice", azure_person("alice", groups=["grp-finance"]))
    alice = User.objects.get(email="alice@a.example")
    assert finance.members.filter(pk=alice.pk).exists()
    do_delete_mapping(mapping, acting=admin_a, ip=None)
    sso_sign_in(idp_server, azure, "alice", azure_person("alice"))
    assert finance.members.filter(pk=alice.pk).exists()  # left as it was: no mapping any more


def test_role_mappings_give_the_highest_role_matched_and_viewer_when_none(
    azure, idp_server, admin_a
):
    org = admin_a.org
    do_add_mapping(org, value="app-editors", group=None, role="editor", acting=admin_a, ip=None)
    do_add_mapping(org, value="app-admins", group=None, role="admin", acting=admin_a, ip=None)

    def role_after(roles: list[str]) -> str:
        client, response = sso_sign_in(idp_server, azure, "alice", azure_person("a", roles=roles))
        assert response.status_code == 302 and signed_in_user(client)
        return User.objects.get(email="a@a.example").role

    assert role_after(["app-editors"]) == Role.EDITOR
    assert role_after(["app-editors", "app-admins", "unmapped"]) == Role.ADMIN
    assert role_after(["unmapped"]) == Role.VIEWER
    assert role_after([]) == Role.VIEWER
    roles = [e.detail["role"] for e in AuditEntry.objects.filter(action="sso.mapping_applied")]
    assert roles == ["editor", "admin", "viewer"]  # the last sign-in changed nothing


def test_a_mapping_never_demotes_the_orgs_last_active_admin(azure, idp_server, admin_a):
    org = admin_a.org
    do_add_mapping(org, value="app-editors", group=None, role="editor", acting=admin_a, ip=None)
    make_client(admin_a).post(f"/org/members/{admin_a.pk}/sso/", {"allowed": "1"})

    client, response = sso_sign_in(idp_server, azure, "boss", azure_person("admin"))
    assert signed_in_user(client) == str(admin_a.pk)
    admin_a.refresh_from_db()
    assert admin_a.role == Role.ADMIN

    # An inactive admin does not count: still the last active one.
    User.objects.create_user("old@a.example", org=org, role=Role.ADMIN, is_active=False)
    sso_sign_in(idp_server, azure, "boss", azure_person("admin"))
    admin_a.refresh_from_db()
    assert admin_a.role == Role.ADMIN

    User.objects.create_user("second@a.example", org=org, role=Role.ADMIN)
    sso_sign_in(idp_server, azure, "boss", azure_person("admin", roles=["app-editors"]))
    admin_a.refresh_from_db()
    assert admin_a.role == Role.EDITOR


# --- existing accounts: linking only when an admin allowed it ---------------------------------


def test_an_asserted_email_never_takes_over_a_password_account_until_an_admin_allows_it(
    azure, idp_server, admin_a, viewer_a
):
    admin = make_client(admin_a)
    claims = azure_person("viewer")

    client, response = sso_sign_in(idp_server, azure, "vic", claims)
    assert_refused(response, client, azure, "not_linked")
    assert not SocialAccount.objects.exists()

    assert admin.post(f"/org/members/{viewer_a.pk}/sso/", {"allowed": "1"}).status_code == 302
    viewer_a.refresh_from_db()
    assert viewer_a.sso_allowed and last("user.sso_allow").target_id == str(viewer_a.pk)
    client, response = sso_sign_in(idp_server, azure, "vic", claims)
    assert response.status_code == 302 and signed_in_user(client) == str(viewer_a.pk)
    account = SocialAccount.objects.get()
    assert (account.user_id, account.uid) == (viewer_a.pk, "oid-viewer")
    link = last("sso.link")
    assert link.actor_id == viewer_a.pk and link.target_id == str(azure.pk)
    assert not AuditEntry.objects.filter(action="sso.jit_create").exists()
    viewer_a.refresh_from_db()
    assert viewer_a.has_usable_password()  # the password still works as before

    assert admin.post(f"/org/members/{viewer_a.pk}/sso/", {"allowed": "0"}).status_code == 302
    assert not SocialAccount.objects.exists()
    assert last("user.sso_disallow").target_id == str(viewer_a.pk)
    client, response = sso_sign_in(idp_server, azure, "vic", claims)
    assert_refused(response, client, azure, "not_linked")


def test_an_address_of_another_orgs_account_or_of_staff_is_refused(
    azure, idp_server, admin_a, admin_b, staff
):
    configure(admin_a.org, admin_a, domains=["a.example", "b.example", "provider.example"])
    for sub, email in (("b1", admin_b.email), ("s1", staff.email)):
        claims = {"email": email, "tid": TENANT, "oid": f"oid-{sub}"}
        client, response = sso_sign_in(idp_server, azure, sub, claims)
        assert_refused(response, client, azure, "elsewhere")
    assert not SocialAccount.objects.exists()
    assert User.objects.filter(email__in=[admin_b.email, staff.email]).count() == 2


def test_a_deactivated_person_is_refused_even_with_a_linked_identity(azure, idp_server, admin_a):
    sso_sign_in(idp_server, azure, "alice", azure_person("alice"))
    alice = User.objects.get(email="alice@a.example")
    make_client(admin_a).post(f"/org/members/{alice.pk}/active/", {"active": "0"})
    alice.refresh_from_db()
    assert not alice.is_active

    client, response = sso_sign_in(idp_server, azure, "alice", azure_person("alice"))
    assert_refused(response, client, azure, "inactive")
    assert client.get("/dashboards/").status_code == 302


def test_a_deactivated_member_allowed_sso_is_not_linked(azure, idp_server, admin_a, viewer_a):
    make_client(admin_a).post(f"/org/members/{viewer_a.pk}/sso/", {"allowed": "1"})
    viewer_a.refresh_from_db()
    viewer_a.is_active = False
    viewer_a.save()
    client, response = sso_sign_in(idp_server, azure, "vic", azure_person("viewer"))
    assert_refused(response, client, azure, "inactive")
    assert not SocialAccount.objects.exists()


# --- SSO-only orgs: password sign-in off except the break-glass admin -----------------------


def enrol_totp(user: User) -> pyotp.TOTP:
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return pyotp.TOTP(secret)


def password_sign_in(client: Any, email: str, password: str = PASSWORD) -> Any:
    return client.post(LOGIN, {"login": email, "password": password})


@pytest.fixture
def sso_only(azure, admin_a: User) -> pyotp.TOTP:
    """Org A signs in with SSO only; admin_a (with TOTP) is its break-glass admin."""
    totp = enrol_totp(admin_a)
    configure(admin_a.org, admin_a, password_signin=False, break_glass=admin_a)
    return totp


def test_members_of_an_sso_only_org_get_told_to_use_sso_before_the_password_is_checked(
    sso_only, viewer_a
):
    right = password_sign_in(make_client(), viewer_a.email)
    wrong = password_sign_in(make_client(), viewer_a.email, "wrong-password")
    unknown = password_sign_in(make_client(), "nobody@a.example", "wrong-password")
    for response in (right, wrong, unknown):
        assert response.status_code == 200
        assert escape(SSO_ONLY) in response.content.decode()

    def strip(response: Any, email: str) -> str:
        page = response.content.decode().replace(email, "EMAIL")
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)

    assert strip(wrong, viewer_a.email) == strip(unknown, "nobody@a.example")
    assert not AuditEntry.objects.filter(action__in=["signin", "signin.failed"]).exists()
    assert "_auth_user_id" not in make_client().session


def test_a_right_password_does_not_sign_in_a_member_of_an_sso_only_org(sso_only, viewer_a):
    client = make_client()
    password_sign_in(client, viewer_a.email)
    assert signed_in_user(client) is None
    assert client.get("/dashboards/").status_code == 302


def test_the_break_glass_admin_still_signs_in_with_password_and_totp(sso_only, admin_a):
    client = make_client()
    response = password_sign_in(client, admin_a.email)
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/authenticate/"
    assert signed_in_user(client) is None
    assert client.post("/accounts/2fa/authenticate/", {"code": sso_only.now()}).status_code == 302
    assert signed_in_user(client) == str(admin_a.pk)
    assert client.get("/dashboards/").status_code == 200


def test_a_break_glass_admin_who_lost_their_second_factor_is_refused(sso_only, admin_a):
    Authenticator.objects.filter(user=admin_a).delete()
    client = make_client()
    response = password_sign_in(client, admin_a.email)
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert signed_in_user(client) is None
    assert escape(BREAK_GLASS_MFA) in client.get(LOGIN).content.decode()


def test_a_member_outside_the_orgs_domains_is_refused_after_the_password(sso_only, admin_a):
    outsider = User.objects.create_user(
        "someone@gmail.example", PASSWORD, org=admin_a.org, role=Role.ADMIN
    )
    wrong = password_sign_in(make_client(), outsider.email, "wrong-password")
    assert wrong.status_code == 200 and escape(SSO_ONLY) not in wrong.content.decode()
    client = make_client()
    response = password_sign_in(client, outsider.email)
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert signed_in_user(client) is None
    assert escape(SSO_ONLY) in client.get(LOGIN).content.decode()
    assert client.get("/dashboards/").status_code == 302


def test_members_of_an_sso_only_org_still_sign_in_with_sso(sso_only, azure, idp_server):
    client, response = sso_sign_in(idp_server, azure, "alice", azure_person("alice"))
    assert response.status_code == 302
    assert signed_in_user(client) == str(User.objects.get(email="alice@a.example").pk)


def test_other_orgs_keep_password_sign_in(sso_only, admin_b):
    client = make_client()
    assert password_sign_in(client, admin_b.email).status_code == 302
    assert signed_in_user(client) == str(admin_b.pk)


def test_passwords_cannot_be_turned_off_without_a_break_glass_admin_with_mfa(
    azure, admin_a, viewer_a
):
    org = admin_a.org
    cases = [
        (None, "Choose a break-glass admin"),
        (admin_a, "must set up two-factor authentication"),
        (viewer_a, "Choose an admin of this organization"),
    ]
    for glass, message in cases:
        with pytest.raises(ValidationError) as refused:
            configure(org, admin_a, password_signin=False, break_glass=glass)
        assert message in " ".join(refused.value.message_dict["break_glass"])
    no_password = User.objects.create_user("glass@a.example", org=org, role=Role.ADMIN)
    enrol_totp(no_password)
    with pytest.raises(ValidationError, match="must have a password"):
        configure(org, admin_a, password_signin=False, break_glass=no_password)
    org.refresh_from_db()
    assert org.password_signin and org.break_glass_id is None
    assert password_sign_in(make_client(), viewer_a.email).status_code == 302


# --- the client secret, PKCE, the tenant-specific authority --------------------------------


def test_the_client_secret_is_stored_sealed_to_its_org_and_row(azure, admin_a, admin_b):
    from django.db import connection

    from dashvault.orgs.keys import decrypt_field

    stored = bytes(IdentityProvider.objects.get(pk=azure.pk).client_secret)
    assert SECRET.encode() not in stored and base64.b64encode(SECRET.encode()) not in stored
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM sso_identityprovider")
        rows = cursor.fetchall()
    assert rows and SECRET not in repr(rows)
    assert providers.client_secret(azure) == SECRET

    sealed = dict(table="sso_identityprovider", column="client_secret", blob=stored)
    with pytest.raises(Exception):  # noqa: B017  (any failure to open is right)
        decrypt_field(admin_b.org, row_id=azure.pk, **sealed)
    with pytest.raises(Exception):  # noqa: B017
        decrypt_field(admin_a.org, row_id=IdentityProvider().pk, **sealed)

    # Saving without a secret keeps the sealed one; a new secret replaces it.
    do_save_provider(
        admin_a.org,
        "azure",
        client_id="changed",
        client_secret=None,
        tenant_id=TENANT,
        acting=admin_a,
        ip=None,
    )
    azure.refresh_from_db()
    assert providers.client_secret(azure) == SECRET and azure.client_id == "changed"
    do_save_provider(
        admin_a.org,
        "azure",
        client_id="changed",
        client_secret="rotated-secret-1",
        tenant_id=TENANT,
        acting=admin_a,
        ip=None,
    )
    azure.refresh_from_db()
    assert providers.client_secret(azure) == "rotated-secret-1"


def test_the_secret_is_never_shown_again(azure, admin_a):
    admin = make_client(admin_a)
    for url in ("/org/sso/", "/org/sso/azure/"):
        page = admin.get(url).content.decode()
        assert SECRET not in page
    assert "A secret is set." in admin.get("/org/sso/azure/").content.decode()
    refused = admin.post(
        "/org/sso/azure/",
        {
            "client_id": "x",
            "client_secret": "typed-secret-99",
            "tenant_id": "nope",
            "enabled": "on",
        },
    )
    assert refused.status_code == 400 and "typed-secret-99" not in refused.content.decode()


def test_the_token_request_uses_pkce_with_s256_and_the_sealed_secret(
    azure, idp_server, monkeypatch
):
    sent: list[tuple[str, str, Any]] = []
    original = requests.Session.request

    def spy(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append((method, url, kwargs.get("data"), kwargs.get("auth"), kwargs.get("headers")))
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    idp_server.set_user("alice", azure_person("alice"))
    client = make_client()
    authorize = start(client, azure)
    query = query_of(authorize)
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) >= 43
    back = idp_server.authorize(authorize, "alice")
    assert client.get(path_and_query(back)).status_code == 302

    tokens = [s for s in sent if s[0] == "POST" and s[1].endswith("/oauth2/token")]
    assert len(tokens) == 1
    _, url, data, auth, headers = tokens[0]
    form = data if isinstance(data, dict) else dict(urllib.parse.parse_qsl(data))
    verifier = form["code_verifier"]
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"]
    # The client authenticates with the decrypted secret (form field or HTTP Basic).
    credentials = json.dumps([form, repr(auth), repr(headers)])
    basic = base64.b64encode(f"dashvault-a:{SECRET}".encode()).decode()
    assert SECRET in credentials or basic in credentials


def test_azure_uses_the_tenant_specific_authority(azure, idp_server, monkeypatch, settings):
    assert providers.server_url(azure) == f"{idp_server.url}/{TENANT}/v2.0"
    authorize = start(make_client(), azure)
    assert urllib.parse.urlsplit(authorize).path.startswith(f"/{TENANT}/v2.0/")
    settings.SSO_AZURE_URL = "https://login.microsoftonline.com/{tenant}/v2.0"
    expected = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert providers.server_url(azure) == expected
    assert providers.social_app(azure).settings["server_url"] == expected
    assert providers.social_app(azure).settings["uid_field"] == "oid"


# --- audit -----------------------------------------------------------------------------------


def test_every_sso_event_is_audited_by_ids_only(azure, idp_server, admin_a, viewer_a, dashboards_a):
    org = admin_a.org
    mapped = Group.objects.create(org=org, name="Mapped A")
    mapping = do_add_mapping(
        org, value="grp-1", group=mapped, role="", acting=admin_a, ip="10.0.0.1"
    )
    sso_sign_in(idp_server, azure, "alice", azure_person("alice", groups=["grp-1"]))
    sso_sign_in(idp_server, azure, "alice", azure_person("alice"))  # removed from the group
    configure(org, admin_a, federation=False)
    sso_sign_in(idp_server, azure, "bob", azure_person("bob"))  # refused
    make_client(admin_a).post(f"/org/members/{viewer_a.pk}/sso/", {"allowed": "1"})
    sso_sign_in(idp_server, azure, "vic", azure_person("viewer"))  # linked
    do_delete_mapping(mapping, acting=admin_a, ip=None)
    do_delete_provider(azure, acting=admin_a, ip=None)

    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    expected = [
        "sso.provider_create", "sso.settings", "sso.mapping_add",
        "sso.jit_create", "sso.mapping_applied", "sso.signin", "signin",
        "sso.mapping_applied", "sso.signin", "signin",
        "sso.settings", "sso.refused", "signin", "user.sso_allow",
        "sso.link", "sso.signin", "signin",
        "sso.mapping_delete", "sso.provider_delete",
    ]  # fmt: skip
    assert actions == expected
    emails = [*User.objects.values_list("email", flat=True), "bob@a.example"]
    for entry in AuditEntry.objects.all():
        row = json.dumps(
            [entry.action, str(entry.actor_id), entry.target_type, entry.target_id, entry.detail]
        )
        assert "@" not in row and not any(email in row for email in emails), row
        assert entry.org_id == org.pk


# --- starting a sign-in from the sign-in pages ------------------------------------------------


def test_the_org_sign_in_page_shows_a_post_button_per_enabled_provider(
    azure, google, idp_server, admin_a
):
    page = make_client().get(f"/sso/{admin_a.org_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    for idp in (azure, google):
        assert f'<form method="post" action="{providers.login_url(idp)}"' in html
    assert html.count('name="csrfmiddlewaretoken"') >= 2
    assert "Sign in with Google" in html and "Sign in with Azure AD" in html

    do_save_provider(
        admin_a.org,
        "google",
        client_id="dashvault-g",
        client_secret=None,
        hosted_domain="a.example",
        enabled=False,
        acting=admin_a,
        ip=None,
    )
    html = make_client().get(f"/sso/{admin_a.org_id}/").content.decode()
    assert providers.login_url(google) not in html and providers.login_url(azure) in html

    # Its button starts the real flow: a redirect to the tenant's authorize endpoint.
    response = make_client().post(providers.login_url(azure), {"process": "login"})
    assert response.status_code == 302
    assert response["Location"].startswith(f"{idp_server.url}/{TENANT}/v2.0/oauth2/authorize?")
    assert query_of(response["Location"])["client_id"] == "dashvault-a"


def test_starting_a_sign_in_by_get_does_not_redirect_to_the_provider(azure):
    response = make_client().get(providers.login_url(azure))
    assert response.status_code == 200  # allauth's confirmation page, a POST form


def test_an_unknown_provider_id_is_not_found(azure, db):
    assert make_client().post(f"/accounts/oidc/{Dashboard().pk}/login/").status_code == 404


def test_a_break_glass_account_no_longer_an_admin_loses_password_sign_in(
    sso_only, azure, idp_server, admin_a, editor_a
):
    # Demoted by a role mapping at their SSO sign-in (another admin exists, so it may):
    # the break-glass exception is for an admin, not for whoever held it once.
    org = admin_a.org
    User.objects.create_user("second@a.example", org=org, role=Role.ADMIN)
    do_add_mapping(org, value="app-editors", group=None, role="editor", acting=admin_a, ip=None)
    make_client(admin_a).post(f"/org/members/{admin_a.pk}/sso/", {"allowed": "1"})
    sso_sign_in(idp_server, azure, "boss", azure_person("admin", roles=["app-editors"]))
    admin_a.refresh_from_db()
    assert admin_a.role == Role.EDITOR

    client = make_client()
    response = password_sign_in(client, admin_a.email)
    if response.status_code == 302 and response["Location"] == "/accounts/2fa/authenticate/":
        client.post("/accounts/2fa/authenticate/", {"code": sso_only.now()})
    assert signed_in_user(client) is None
    assert client.get("/dashboards/").status_code == 302
    assert escape(SSO_ONLY) in response.content.decode()  # said before the password is checked


def test_a_demoted_break_glass_account_outside_the_domains_is_refused_after_the_password(
    azure, admin_a
):
    org = admin_a.org
    glass = User.objects.create_user("glass@gmail.example", PASSWORD, org=org, role=Role.ADMIN)
    totp = enrol_totp(glass)
    configure(org, admin_a, password_signin=False, break_glass=glass)
    make_client(admin_a).post(f"/org/members/{glass.pk}/role/", {"role": "editor"})
    glass.refresh_from_db()
    assert glass.role == Role.EDITOR

    client = make_client()
    response = password_sign_in(client, glass.email)
    if response.status_code == 302 and response["Location"] == "/accounts/2fa/authenticate/":
        response = client.post("/accounts/2fa/authenticate/", {"code": totp.now()})
    assert signed_in_user(client) is None
    assert client.get("/dashboards/").status_code == 302
