"""Erasing a person (GDPR, issue 8 item 5): everything that names them goes, what the org owns
stays and keeps working, the audit log keeps ids only, the ledger records ids only, and the
e-mail address is nowhere in the live database afterwards (the SQLite files included).

Shared by the other test_privacy_* files: the `own_ledger` and `zelda` fixtures, `sign_in`,
`signed_out` and `personal_rows`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import pyotp
import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from allauth.socialaccount.models import SocialAccount, SocialToken
from allauth.usersessions.models import UserSession
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.db import connection, connections
from django.urls import reverse

from dashvault.accounts.models import Role, User
from dashvault.api.actions import do_create_token
from dashvault.api.models import ApiToken
from dashvault.audit import chain
from dashvault.audit.models import AuditEntry
from dashvault.dashboards.models import Dashboard
from dashvault.kiosk.actions import do_create_kiosk_link
from dashvault.kiosk.models import KioskLink
from dashvault.metrics.models import Metric
from dashvault.orgs.models import Group, Organization
from dashvault.privacy import erasure, ledger
from dashvault.sso.models import IdentityProvider
from tests.conftest import PASSWORD, SecureClient, make_client

LOGIN = "/accounts/login/"
TENANT = "6f1c2b7e-1d7a-4c1e-9a55-0d3a3f9b2c11"
EMAIL = "zelda.quist@a.example"
NAME = "Zelda Quistgaard"  # the name claim the identity provider sent
SSO_ACCESS_TOKEN = "sso-access-token-of-zelda-7Hq2"
SSO_REFRESH_TOKEN = "sso-refresh-token-of-zelda-9Kx4"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) ZeldasBrowser/1.0"


@pytest.fixture(autouse=True)
def own_ledger(settings: Any, tmp_path: Path) -> Path:
    """Each test its own erasure ledger, backup folder (where the ledger's copy goes) and audit
    checkpoints: none of them may carry entries of another test."""
    settings.ERASURE_LEDGER = tmp_path / "ledger" / "erasure-ledger.jsonl"
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    return Path(settings.ERASURE_LEDGER)


def sign_in(client: SecureClient, email: str, code: str | None = None) -> None:
    """Sign in through the real forms (password, then the MFA step with a TOTP or recovery
    code), as a browser does."""
    response = client.post(LOGIN, {"login": email, "password": PASSWORD})
    assert response.status_code == 302, response.content
    if code is not None:
        assert response["Location"] == "/accounts/2fa/authenticate/"
        response = client.post("/accounts/2fa/authenticate/", {"code": code})
        assert response.status_code == 302
    assert client.get("/dashboards/").status_code == 200


def signed_out(client: SecureClient) -> bool:
    response = client.get("/dashboards/")
    return response.status_code == 302 and response["Location"].startswith(LOGIN)


@dataclass
class Person:
    """A member with everything that can name them, and what they made for the org."""

    user: User
    client: SecureClient  # signed in through the forms: a tracked session
    session_key: str
    totp_secret: str
    recovery_codes: list[str]
    api_token: str
    api_token_row: ApiToken
    kiosk_token: str
    kiosk_link: KioskLink
    dashboard: Dashboard
    sso: SocialAccount


def everything_of(org: Organization, group: Group, *, email: str = EMAIL) -> Person:
    """An editor of `org` with an e-mail address row, an Azure AD link (claims and tokens),
    TOTP and recovery codes, a session signed in through the forms, a group membership, an API
    token and a kiosk link they created, and a dashboard they made through the page."""
    user = User.objects.create_user(email, PASSWORD, org=org, role=Role.EDITOR)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    idp, _ = IdentityProvider.objects.get_or_create(
        org=org, kind="azure", defaults={"client_id": "azure-app", "tenant_id": TENANT}
    )
    claims = {"oid": "oid-zelda", "tid": TENANT, "email": email, "name": NAME}
    sso = SocialAccount.objects.create(
        user=user,
        provider=idp.provider_id,
        uid="oid-zelda",
        extra_data={
            "userinfo": {"sub": "sub-zelda", "email": email, "name": NAME},
            "id_token": claims,
        },
    )
    SocialToken.objects.create(account=sso, token=SSO_ACCESS_TOKEN, token_secret=SSO_REFRESH_TOKEN)
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    codes = RecoveryCodes.activate(user).get_unused_codes()
    group.members.add(user)

    client = SecureClient(headers={"User-Agent": BROWSER})
    sign_in(client, email, pyotp.TOTP(secret).now())
    response = client.post(reverse("dashboard_new"), {"title": "Zelda's pipeline"})
    assert response.status_code == 302
    dashboard = Dashboard.objects.get(org=org, title="Zelda's pipeline")

    token_row, token = do_create_token(
        org, "Zelda's CI", ["push", "read"], expires_at=None, acting=user
    )
    link, kiosk_token = do_create_kiosk_link(
        org, name="Zelda's TV", dashboards=[dashboard], acting=user
    )
    return Person(
        user=user,
        client=client,
        session_key=client.session.session_key,
        totp_secret=secret,
        recovery_codes=codes,
        api_token=token,
        api_token_row=token_row,
        kiosk_token=kiosk_token,
        kiosk_link=link,
        dashboard=dashboard,
        sso=sso,
    )


def erase(admin_client: SecureClient, user: User, confirm: str | None = None) -> Any:
    url = reverse("member_erase", kwargs={"user_id": user.pk})
    return admin_client.post(url, {"confirm": user.email if confirm is None else confirm})


def personal_rows(user_id: Any) -> dict[str, int]:
    """How many rows of each kind still name the person."""
    return {
        "user": User.objects.filter(pk=user_id).count(),
        "email": EmailAddress.objects.filter(user_id=user_id).count(),
        "sso": SocialAccount.objects.filter(user_id=user_id).count(),
        "sso tokens": SocialToken.objects.filter(account__user_id=user_id).count(),
        "mfa": Authenticator.objects.filter(user_id=user_id).count(),
        "sessions": UserSession.objects.filter(user_id=user_id).count(),
        "groups": Group.members.through.objects.filter(user_id=user_id).count(),
    }


def push_one(token: str) -> Any:
    body = '{"points": [{"metric": "revenue", "ts": "2026-05-01T12:00:00Z", "value": 3}]}'
    client = SecureClient(headers={"Authorization": f"Bearer {token}"})
    return client.post("/api/v1/datapoints", body, content_type="application/json")


def session_store_has(session_key: str) -> bool:
    store = import_module(django_settings.SESSION_ENGINE).SessionStore
    return bool(store().exists(session_key)) or Session.objects.filter(pk=session_key).exists()


@pytest.fixture
def zelda(org_a: Organization, admin_a: User, dashboards_a: dict[str, Any]) -> Person:
    Metric.objects.create(org=org_a, key="revenue", name="Revenue")
    return everything_of(org_a, dashboards_a["group"])


# -- the erasure itself ------------------------------------------------------------------------


def test_an_admin_erases_a_member_and_everything_that_names_them_goes(
    zelda: Person, admin_a: User, own_ledger: Path
) -> None:
    person = zelda.user
    assert all(personal_rows(person.pk).values()), personal_rows(person.pk)
    assert session_store_has(zelda.session_key)

    response = erase(make_client(admin_a), person)

    assert response.status_code == 302 and response["Location"] == reverse("member_list")
    assert personal_rows(person.pk) == dict.fromkeys(personal_rows(person.pk), 0)
    assert not session_store_has(zelda.session_key)
    assert signed_out(zelda.client)


def test_what_the_org_owns_stays_and_keeps_working_without_its_creator(
    zelda: Person, admin_a: User
) -> None:
    erase(make_client(admin_a), zelda.user)

    token = ApiToken.objects.get(pk=zelda.api_token_row.pk)
    link = KioskLink.objects.get(pk=zelda.kiosk_link.pk)
    assert token.created_by_id is None and link.created_by_id is None
    response = push_one(zelda.api_token)
    assert response.status_code == 201, response.content
    assert SecureClient().get(f"/kiosk/{zelda.kiosk_token}").status_code == 200
    assert Dashboard.objects.filter(pk=zelda.dashboard.pk, org=admin_a.org).exists()


def test_the_audit_log_keeps_the_persons_id_and_records_the_erasure(
    zelda: Person, admin_a: User
) -> None:
    person_id = zelda.user.pk
    before = set(AuditEntry.objects.filter(actor_id=person_id).values_list("id", "action"))
    assert {"signin", "dashboard.create"} <= {action for _, action in before}

    erase(make_client(admin_a), zelda.user, confirm=EMAIL.upper())  # case does not matter

    after = set(AuditEntry.objects.filter(actor_id=person_id).values_list("id", "action"))
    assert after == before
    entry = AuditEntry.objects.get(action="person.erase")
    assert (entry.org_id, entry.actor_id) == (admin_a.org_id, admin_a.pk)
    assert (entry.target_type, entry.target_id) == ("user", str(person_id))
    assert not User.objects.filter(pk=person_id).exists()
    lengths, problems = chain.verify()
    assert problems == [] and lengths[str(admin_a.org_id)] >= len(before) + 1


def test_the_ledger_gets_one_entry_with_ids_only(
    zelda: Person, admin_a: User, own_ledger: Path
) -> None:
    erase(make_client(admin_a), zelda.user)

    (entry,) = ledger.entries()
    assert (entry.kind, entry.id, entry.org) == ("person", str(zelda.user.pk), str(admin_a.org_id))
    text = own_ledger.read_text()
    assert text.count("\n") == 1
    for personal in (EMAIL, "zelda", "@", "oid-zelda", NAME):
        assert personal.lower() not in text.lower()


def test_the_confirmation_page_names_the_person_and_asks_for_the_address(
    zelda: Person, admin_a: User
) -> None:
    response = make_client(admin_a).get(reverse("member_erase", kwargs={"user_id": zelda.user.pk}))
    assert response.status_code == 200
    content = response.content.decode()
    assert EMAIL in content and 'name="confirm"' in content
    assert User.objects.filter(pk=zelda.user.pk).exists()


# -- refusals: nothing changes -----------------------------------------------------------------


def assert_untouched(person: Person, own_ledger: Path) -> None:
    assert all(personal_rows(person.user.pk).values()), personal_rows(person.user.pk)
    assert session_store_has(person.session_key)
    assert not own_ledger.exists() or own_ledger.read_text() == ""
    assert not AuditEntry.objects.filter(action="person.erase").exists()


@pytest.mark.parametrize("confirm", ["", "someone@a.example", "zelda.quist@b.example", "Zelda"])
def test_a_wrong_confirmation_is_refused_with_400_and_changes_nothing(
    zelda: Person, admin_a: User, own_ledger: Path, confirm: str
) -> None:
    response = erase(make_client(admin_a), zelda.user, confirm=confirm)
    assert response.status_code == 400
    assert "nothing was changed" in response.content.decode() or confirm == ""
    assert_untouched(zelda, own_ledger)


def test_editors_and_viewers_get_403_and_change_nothing(
    zelda: Person, editor_a: User, viewer_a: User, own_ledger: Path
) -> None:
    for user in (editor_a, viewer_a):
        assert erase(make_client(user), zelda.user).status_code == 403
    assert_untouched(zelda, own_ledger)


def test_another_orgs_admin_gets_404_and_changes_nothing(
    zelda: Person, admin_b: User, own_ledger: Path
) -> None:
    response = erase(make_client(admin_b), zelda.user)
    assert response.status_code == 404
    assert EMAIL not in response.content.decode()
    assert_untouched(zelda, own_ledger)


def test_platform_staff_get_403_and_change_nothing(
    zelda: Person, staff: User, own_ledger: Path
) -> None:
    assert erase(make_client(staff), zelda.user).status_code == 403
    assert_untouched(zelda, own_ledger)


def test_the_page_tells_an_admin_they_cannot_erase_themselves(admin_a: User) -> None:
    response = make_client(admin_a).get(reverse("member_erase", kwargs={"user_id": admin_a.pk}))
    assert response.status_code == 200
    content = response.content.decode()
    assert "You cannot erase yourself" in content and 'name="confirm"' not in content


def test_an_admin_who_posts_their_own_erasure_gets_400_and_nothing_changes(
    admin_a: User, own_ledger: Path
) -> None:
    client = make_client(admin_a)
    client.raise_request_exception = False
    response = erase(client, admin_a)
    assert User.objects.filter(pk=admin_a.pk).exists()
    assert not own_ledger.exists()
    assert response.status_code == 400
    assert "You cannot erase yourself" in response.content.decode()


# -- the e-mail address is nowhere in the live database afterwards -----------------------------


def live_text() -> str:
    """Every value of every table, as text, lower-cased; sessions decoded (their stored form is
    signed and compressed, which would hide an address from a plain search)."""
    store = import_module(django_settings.SESSION_ENGINE).SessionStore()
    parts: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            # Table names come from the database's own catalogue, quoted.
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, memoryview | bytes):
                        value = bytes(value).decode("latin-1")
                    parts.append(str(value))
    for session in Session.objects.all():
        parts.append(str(store.decode(session.session_data)))
    return "\n".join(parts).lower()


def needles(email: str = EMAIL) -> list[str]:
    local = email.split("@")[0]
    return [email.lower(), local, email.replace("@", "%40").lower(), NAME.lower()]


def test_the_email_is_in_no_column_of_any_table_after_erasure(zelda: Person, admin_a: User) -> None:
    before = live_text()
    for needle in (EMAIL.lower(), NAME.lower()):
        assert needle in before, needle  # the scan finds what is there

    erase(make_client(admin_a), zelda.user)

    after = live_text()
    assert [needle for needle in needles() if needle in after] == []
    assert "admin@a.example" in after  # the scan still reads the tables


@contextmanager
def file_database(path: Path) -> Iterator[Any]:
    """Serve this thread from a copy of the test database in a real file, opened with the
    production settings (WAL, secure_delete): the test database itself lives in memory."""
    original = connections["default"]
    original.ensure_connection()
    target = sqlite3.connect(path)
    try:
        original.connection.backup(target)
    finally:
        target.close()
    on_file = type(original)({**original.settings_dict, "NAME": str(path)}, alias="default")
    connections["default"] = on_file
    try:
        yield on_file
    finally:
        on_file.close()
        connections["default"] = original


def raw(path: Path) -> bytes:
    return path.read_bytes().lower() if path.exists() else b""


def encodings(needle: str) -> list[bytes]:
    return [needle.encode(), needle.encode("utf-16-le"), needle.encode("utf-16-be")]


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="raw database files: SQLite only; test_the_email_is_in_no_column_... runs on both",
)
@pytest.mark.django_db(transaction=True)
def test_the_email_is_in_no_byte_of_the_sqlite_files_after_erasure(
    org_a: Organization, admin_a: User, dashboards_a: dict[str, Any], tmp_path: Path
) -> None:
    database = tmp_path / "dashvault.sqlite3"
    wal = Path(f"{database}-wal")
    with file_database(database) as on_file:
        with on_file.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
            cursor.execute("PRAGMA secure_delete")
            assert cursor.fetchone()[0] == 1
        Metric.objects.create(org=org_a, key="revenue", name="Revenue")
        zelda = everything_of(org_a, dashboards_a["group"])
        with on_file.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the rows into the main file
        # A second sign-in (a recovery code: allauth takes each TOTP code once) writes pages
        # to the WAL.
        sign_in(SecureClient(), EMAIL, zelda.recovery_codes[0])
        # The scan finds what is there: the rows in the main file, the updated user row (its
        # last sign-in) in the WAL.
        assert EMAIL.encode() in raw(database) and NAME.lower().encode() in raw(database)
        assert EMAIL.encode() in raw(wal)

        response = erase(make_client(admin_a), zelda.user)
        assert response.status_code == 302

        files = {p.name: raw(p) for p in tmp_path.glob("dashvault.sqlite3*")}
        assert set(files) >= {database.name, wal.name}
        found = [
            (name, needle)
            for name, contents in files.items()
            for needle in needles()
            for encoded in encodings(needle)
            if encoded in contents
        ]
        assert found == []
        assert b"admin@a.example" in files[database.name]  # the others' rows are still read
        assert not User.objects.filter(email=EMAIL).exists()


def test_erasure_removes_the_mail_naming_the_person_from_the_outbox(
    settings: Any,
    tmp_path: Path,
    own_ledger: Path,
    admin_a: User,
    viewer_a: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Embedded mode writes mail to files (an invitation with a set-password link, say).
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settings.EMAIL_FILE_PATH = outbox
    theirs = outbox / "invite.log"
    theirs.write_text(f"To: {viewer_a.email.upper()}\n\nYour link: https://example/set\n")
    others = outbox / "other.log"
    others.write_text(f"To: {admin_a.email}\n\nYour link: https://example/set\n")
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erase_person(viewer_a, acting=admin_a, ip=None)
    assert not theirs.exists()
    assert others.exists()
