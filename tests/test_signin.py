"""Password sign-in, throttling, MFA, session lifetime and ending sessions."""

from __future__ import annotations

import time

import pyotp
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from allauth.usersessions.models import UserSession
from django.contrib.sessions.models import Session

from dashvault.accounts.middleware import STARTED
from dashvault.audit.models import AuditEntry
from tests.conftest import PASSWORD, make_client

LOGIN = "/accounts/login/"
MISMATCH = "The email address and/or password you specified are not correct."
LOCKED = "Too many failed login attempts. Try again later."


def sign_in(client, email, password=PASSWORD):
    return client.post(LOGIN, {"login": email, "password": password})


def test_a_member_signs_in_with_the_right_password(client, viewer_a):
    response = sign_in(client, viewer_a.email)
    assert response.status_code == 302
    assert client.get("/dashboards/").status_code == 200


def test_an_unknown_email_and_a_wrong_password_get_the_same_answer(client, viewer_a):
    unknown = sign_in(client, "nobody@a.example", "whatever-password")
    wrong = sign_in(client, viewer_a.email, "whatever-password")
    assert unknown.status_code == wrong.status_code == 200
    assert MISMATCH in unknown.content.decode()
    assert MISMATCH in wrong.content.decode()
    strip = lambda r, email: r.content.decode().replace(email, "EMAIL")  # noqa: E731
    assert len(strip(unknown, "nobody@a.example")) == len(strip(wrong, viewer_a.email))


def test_an_account_locks_after_five_failures_and_others_do_not(client, viewer_a, editor_a):
    for _ in range(5):
        assert MISMATCH in sign_in(client, viewer_a.email, "wrong-password").content.decode()
    locked = sign_in(client, viewer_a.email, PASSWORD)  # even the right password is refused now
    assert LOCKED in locked.content.decode()
    assert "_auth_user_id" not in client.session
    assert sign_in(make_client(), editor_a.email).status_code == 302


def test_an_unknown_account_locks_the_same_way(client, db):
    for _ in range(5):
        sign_in(client, "nobody@a.example", "wrong-password")
    assert LOCKED in sign_in(client, "nobody@a.example", "wrong-password").content.decode()


def test_sign_in_events_are_audited_by_id_only(client, viewer_a):
    sign_in(client, viewer_a.email, "wrong-password")
    sign_in(client, "nobody@a.example", "wrong-password")
    sign_in(client, viewer_a.email)
    client.post("/accounts/logout/")
    entries = list(
        AuditEntry.objects.order_by("id").values_list("action", "actor_id", "org_id", "ip")
    )
    assert entries == [
        ("signin.failed", viewer_a.pk, viewer_a.org_id, "127.0.0.1"),
        ("signin.failed", None, None, "127.0.0.1"),
        ("signin", viewer_a.pk, viewer_a.org_id, "127.0.0.1"),
        ("signout", viewer_a.pk, viewer_a.org_id, "127.0.0.1"),
    ]


def test_a_deactivated_member_cannot_sign_in(client, viewer_a):
    viewer_a.is_active = False
    viewer_a.save()
    assert (
        sign_in(client, viewer_a.email).status_code != 302 or "_auth_user_id" not in client.session
    )
    assert client.get("/dashboards/").status_code == 302


def enrol_totp(user):
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return pyotp.TOTP(secret)


def test_a_user_with_totp_is_asked_for_a_code_after_the_password(client, admin_a):
    totp = enrol_totp(admin_a)
    response = sign_in(client, admin_a.email)
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/authenticate/"
    assert client.get("/dashboards/").status_code == 302  # not signed in yet
    wrong = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert wrong.status_code == 200 and "_auth_user_id" not in client.session
    right = client.post("/accounts/2fa/authenticate/", {"code": totp.now()})
    assert right.status_code == 302
    assert client.get("/dashboards/").status_code == 200


def test_an_org_that_requires_mfa_sends_members_to_enrol(viewer_a):
    viewer_a.org.require_mfa = True
    viewer_a.org.save()
    client = make_client()
    sign_in(client, viewer_a.email)
    response = client.get("/dashboards/")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/totp/activate/"
    # allauth asks for the password again before a second factor is added.
    activate = client.get("/accounts/2fa/totp/activate/")
    assert activate["Location"].startswith("/accounts/reauthenticate/")
    client.post(activate["Location"], {"password": PASSWORD})
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200
    enrol_totp(viewer_a)
    assert client.get("/dashboards/").status_code == 200


def test_staff_must_enrol_mfa(db):
    from dashvault.accounts.models import User

    staff = User.objects.create_user("s@provider.example", PASSWORD, is_platform_staff=True)
    response = make_client(staff).get("/staff/")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/totp/activate/"


def test_the_session_cookie_is_secure_httponly_samesite_and_expires_when_idle(
    client, viewer_a, settings
):
    sign_in(client, viewer_a.email)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie.key.startswith("__Host-")
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert cookie["path"] == "/" and not cookie["domain"]
    assert not cookie["max-age"] and not cookie["expires"]  # gone when the browser closes
    stored = Session.objects.get(session_key=cookie.value)
    remaining = stored.expire_date.timestamp() - time.time()
    assert settings.SESSION_IDLE_SECONDS - 60 < remaining <= settings.SESSION_IDLE_SECONDS


def test_a_session_past_its_absolute_lifetime_is_ended(client, viewer_a, settings):
    sign_in(client, viewer_a.email)
    session = client.session
    session[STARTED] = int(time.time()) - settings.SESSION_ABSOLUTE_SECONDS - 1
    session.save()
    response = client.get("/dashboards/")
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert client.get("/dashboards/").status_code == 302


def test_changing_the_password_ends_the_other_sessions(viewer_a):
    here, elsewhere = make_client(), make_client()
    sign_in(here, viewer_a.email)
    sign_in(elsewhere, viewer_a.email)
    assert UserSession.objects.filter(user=viewer_a).count() == 2
    new = "a-brand-new-long-password"
    response = here.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": new, "password2": new},
    )
    assert response.status_code == 302
    assert here.get("/dashboards/").status_code == 200
    assert elsewhere.get("/dashboards/").status_code == 302
    assert UserSession.objects.filter(user=viewer_a).count() == 1
    assert AuditEntry.objects.filter(action="password.change", actor_id=viewer_a.pk).count() == 1


def test_deactivation_ends_every_session_at_once(admin_a, viewer_a):
    viewer = make_client()
    sign_in(viewer, viewer_a.email)
    key = viewer.session.session_key
    response = make_client(admin_a).post(f"/org/members/{viewer_a.pk}/active/", {"active": "0"})
    assert response.status_code == 302
    assert not Session.objects.filter(session_key=key).exists()
    assert viewer.get("/dashboards/").status_code == 302


def test_a_recovery_code_signs_in_once(client, admin_a):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    enrol_totp(admin_a)
    code = RecoveryCodes.activate(admin_a).get_unused_codes()[0]
    sign_in(client, admin_a.email)
    assert client.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 302
    assert client.get("/dashboards/").status_code == 200
    again = make_client()
    sign_in(again, admin_a.email)
    assert again.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 200
    assert again.get("/dashboards/").status_code == 302


def test_security_keys_can_be_added_after_reauthentication(client, admin_a):
    sign_in(client, admin_a.email)
    add = client.get("/accounts/2fa/webauthn/add/")
    assert add["Location"].startswith("/accounts/reauthenticate/")
    client.post(add["Location"], {"password": PASSWORD})
    page = client.get("/accounts/2fa/webauthn/add/")
    assert page.status_code == 200
    assert b"webauthn" in page.content.lower()


def test_removing_the_last_factor_elsewhere_sends_every_session_back_to_enrol(viewer_a):
    from allauth.mfa.models import Authenticator

    viewer_a.org.require_mfa = True
    viewer_a.org.save()
    enrol_totp(viewer_a)
    client = make_client(viewer_a)
    assert client.get("/dashboards/").status_code == 200
    Authenticator.objects.filter(user=viewer_a).delete()  # e.g. from another session
    assert client.get("/dashboards/")["Location"] == "/accounts/2fa/totp/activate/"


def test_there_is_no_public_sign_up(client, db):
    page = client.get(LOGIN).content.decode()
    assert "/accounts/signup/" not in page and "sign up" not in page.lower()
    assert client.get("/accounts/signup/").status_code == 404
    assert (
        client.post(
            "/accounts/signup/", {"email": "x@y.example", "password1": "p" * 20}
        ).status_code
        == 404
    )
