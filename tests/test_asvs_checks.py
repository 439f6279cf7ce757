"""OWASP ASVS 5.0 checks that had no test of their own (docs/SECURITY.md §6).

Each test proves one behaviour of the running application through Django's test client (or the
`dashvault` command), and names the requirement it stands for in its docstring. Sign-ins,
password forms and second factors go through allauth's real views; SSO through the loopback
OpenID provider of tests/oidc.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import logging
import logging.config
import re
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from allauth.account.forms import default_token_generator
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.adapter import get_adapter as get_mfa_adapter
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal import auth as totp_auth
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from dashvault.accounts.actions import set_password_url
from dashvault.accounts.middleware import STARTED
from dashvault.accounts.models import User
from dashvault.api.actions import do_create_token
from dashvault.audit.models import AuditEntry
from dashvault.lib import crypto
from dashvault.sso.actions import do_save_provider
from dashvault.sso.models import IdentityProvider
from tests.conftest import PASSWORD, SecureClient, make_client
from tests.live import dashvault
from tests.oidc import TENANT, Provider, running_provider
from tests.test_sso import azure_person, configure, signed_in_user, sso_sign_in

LOGIN = "/accounts/login/"
CHANGE = "/accounts/password/change/"
MFA_STEP = "/accounts/2fa/authenticate/"
ENROL = "/accounts/2fa/totp/activate/"
TOO_SHORT = "This password is too short. It must contain at least 12 characters."
TOO_COMMON = "This password is too common."
ALL_DIGITS = "This password is entirely numeric."
SIGN_OUT = '<a href="/accounts/logout/">Sign out</a>'


def sign_in(client: Any, email: str, password: str = PASSWORD) -> Any:
    return client.post(LOGIN, {"login": email, "password": password})


def change_password(client: Any, new: str, old: str | None = PASSWORD) -> Any:
    data = {"password1": new, "password2": new}
    if old is not None:
        data["oldpassword"] = old
    return client.post(CHANGE, data)


def path_of(link: str) -> str:
    return "/" + link.split("://", 1)[1].split("/", 1)[1]


def use_set_password_link(client: Any, link: str, password: str) -> Any:
    """Open a set-password link and submit a new password on the page it leads to; returns the
    last answer (the refusal page when the link is not accepted)."""
    first = client.get(path_of(link))
    if first.status_code != 302:
        return first
    return client.post(first["Location"], {"password1": password, "password2": password})


def enrol_totp(user: User) -> pyotp.TOTP:
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return pyotp.TOTP(secret)


class FrozenClock:
    """Stands in for the `time` module inside allauth's TOTP check only."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def totp_clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """allauth's TOTP check sees the middle of one 30-second period for the whole test, so a
    test never straddles a period boundary by chance."""
    clock = FrozenClock((int(time.time()) // 30) * 30 + 15)
    monkeypatch.setattr(totp_auth, "time", clock)
    return clock


def inputs(html: str) -> list[dict[str, str]]:
    fields = []
    for tag in re.findall(r"<input\b[^>]*>", html):
        fields.append(dict(re.findall(r'([a-z-]+)="([^"]*)"', tag)))
    return fields


def field_names(html: str) -> set[str]:
    names = {f["name"] for f in inputs(html) if "name" in f}
    names |= set(re.findall(r'<(?:select|textarea)\b[^>]*name="([^"]+)"', html))
    return names


# --- V6.2 passwords ------------------------------------------------------------------------


def test_an_eleven_character_password_is_too_short_and_twelve_is_enough(viewer_a):
    """ASVS V6.2.1: passwords of at least 12 characters (the 8 the requirement asks, and more)."""
    client = make_client(viewer_a)
    refused = change_password(client, "Xq7-mv2Lp9w")  # 11 characters
    assert refused.status_code == 200 and TOO_SHORT in refused.content.decode()
    viewer_a.refresh_from_db()
    assert viewer_a.check_password(PASSWORD)
    assert change_password(client, "Xq7-mv2Lp9wz").status_code == 302  # 12 characters
    viewer_a.refresh_from_db()
    assert viewer_a.check_password("Xq7-mv2Lp9wz")


def test_a_password_change_without_the_right_current_password_is_refused(viewer_a):
    """ASVS V6.2.3: changing the password asks for the current one and the new one."""
    client = make_client(viewer_a)
    new = "a-brand-new-long-password"
    assert change_password(client, new, old=None).status_code == 200
    wrong = change_password(client, new, old="not-the-current-password")
    assert (
        wrong.status_code == 200 and "Please type your current password." in wrong.content.decode()
    )
    viewer_a.refresh_from_db()
    assert viewer_a.check_password(PASSWORD)
    assert change_password(client, new).status_code == 302
    viewer_a.refresh_from_db()
    assert viewer_a.check_password(new)


@pytest.mark.parametrize("common", ["password1234", "qwertyuiop123", "1q2w3e4r5t6y"])
def test_a_common_password_is_refused(viewer_a, common):
    """ASVS V6.2.4, V6.2.12: new passwords are checked against a list of common (breached)
    passwords: Django's 20,000."""
    assert len(common) >= 12  # refused for being common, not short
    response = change_password(make_client(viewer_a), common)
    assert response.status_code == 200 and TOO_COMMON in response.content.decode()
    viewer_a.refresh_from_db()
    assert viewer_a.check_password(PASSWORD)


def test_a_lowercase_passphrase_is_accepted_but_digits_only_are_refused(viewer_a):
    """ASVS V6.2.5 (partly): no rule asks for character classes, but a password of digits only
    is refused (Django's NumericPasswordValidator)."""
    client = make_client(viewer_a)
    digits = change_password(client, "839201748201")
    assert digits.status_code == 200 and ALL_DIGITS in digits.content.decode()
    assert change_password(client, "purple monkey dishwasher").status_code == 302
    viewer_a.refresh_from_db()
    assert viewer_a.check_password("purple monkey dishwasher")


@pytest.fixture
def password_forms(viewer_a: User, org_a: Any) -> dict[str, str]:
    """The page of every form that takes a password: sign-in, change, the set-password link,
    set-password for an account without one, and re-authentication."""
    link = make_client()
    opened = link.get(path_of(set_password_url(viewer_a, "https://testserver")))
    set_password_page = link.get(opened["Location"])  # before a sign-in ends the link
    signed_in = make_client()
    sign_in(signed_in, viewer_a.email)
    without_password = User.objects.create_user("nopassword@a.example", org=org_a, role="viewer")
    pages = {
        "sign-in": make_client().get(LOGIN),
        "change": signed_in.get(CHANGE),
        "set-password link": set_password_page,
        "set password": make_client(without_password).get("/accounts/password/set/"),
        "re-authenticate": signed_in.get("/accounts/reauthenticate/"),
    }
    assert {name: page.status_code for name, page in pages.items()} == dict.fromkeys(pages, 200)
    return {name: page.content.decode() for name, page in pages.items()}


PASSWORD_FIELDS = {
    "sign-in": {"password"},
    "change": {"oldpassword", "password1", "password2"},
    "set-password link": {"password1", "password2"},
    "set password": {"password1", "password2"},
    "re-authenticate": {"password"},
}


def test_every_password_field_is_of_type_password(password_forms):
    """ASVS V6.2.6: sign-in, change, set-password and re-authentication forms mask passwords."""
    for name, html in password_forms.items():
        fields = {f["name"]: f for f in inputs(html) if "password" in f.get("name", "")}
        assert set(fields) == PASSWORD_FIELDS[name], name
        assert {f["type"] for f in fields.values()} == {"password"}, name


def test_password_fields_help_password_managers_and_nothing_blocks_paste(password_forms):
    """ASVS V6.2.7: password managers and paste work: autocomplete hints, no paste handlers."""
    for name, html in password_forms.items():
        for field in inputs(html):
            if "password" in field.get("name", ""):
                expected = (
                    "current-password"
                    if field["name"] in ("password", "oldpassword")
                    else "new-password"
                )
                assert field.get("autocomplete") == expected, (name, field)
        assert not re.search(r"\bon(paste|copy|cut|drop)\s*=", html, re.I), name
        assert "<script>" not in html  # no inline script (the CSP would refuse one anyway)
        for src in re.findall(r'<script[^>]*\bsrc="/static/([^"?]+)', html):
            found = finders.find(src)
            assert found, src
            assert "paste" not in Path(found).read_text(errors="replace"), (name, src)


def test_a_password_with_spaces_and_mixed_case_works_only_exactly_as_typed(viewer_a):
    """ASVS V6.2.8: passwords are verified exactly as typed: no trimming, case change or
    collapsing of spaces."""
    typed = "  Grey Heron  Over the LAKE "
    assert change_password(make_client(viewer_a), typed).status_code == 302
    # Three near misses (five failures would lock the account), then the exact password.
    for near in (typed.lower(), typed.strip(), " ".join(typed.split())):
        client = make_client()
        assert sign_in(client, viewer_a.email, near).status_code == 200
        assert signed_in_user(client) is None
    client = make_client()
    assert sign_in(client, viewer_a.email, typed).status_code == 302
    assert signed_in_user(client) == str(viewer_a.pk)


def test_a_password_of_more_than_64_characters_can_be_set_and_used(viewer_a):
    """ASVS V6.2.9: passwords of 64 characters and more are allowed, and not truncated."""
    long = "the quick brown fox jumps over the lazy dog while " * 2  # 100 characters
    assert len(long) == 100
    assert change_password(make_client(viewer_a), long).status_code == 302
    truncated = make_client()
    assert sign_in(truncated, viewer_a.email, long[:64]).status_code == 200
    assert signed_in_user(truncated) is None
    client = make_client()
    assert sign_in(client, viewer_a.email, long).status_code == 302
    assert signed_in_user(client) == str(viewer_a.pk)


def test_a_password_set_two_years_ago_still_signs_in_without_a_change(client, viewer_a):
    """ASVS V6.2.10: passwords never expire; nobody is made to rotate theirs."""
    two_years_ago = timezone.now() - dt.timedelta(days=730)
    User.objects.filter(pk=viewer_a.pk).update(created_at=two_years_ago, last_login=two_years_ago)
    response = sign_in(client, viewer_a.email)
    assert response.status_code == 302 and "password" not in response["Location"]
    landing = client.get(response["Location"], follow=True)
    assert landing.status_code == 200
    assert landing.redirect_chain[-1][0] == "/dashboards/"


# --- V6.3, V6.4 accounts, set-password links ------------------------------------------------


def test_a_fresh_database_has_no_accounts_and_new_ones_have_no_password_until_the_link(db):
    """ASVS V6.3.2: no default accounts: migrations create none, and `createorg` and
    `createstaff` accounts have no usable password until their one-time link is used."""
    assert not User.objects.exists()
    links = {}
    for args in (
        ("createorg", "Initech", "--admin-email", "boss@initech.example"),
        ("createstaff", "--email", "ops@provider.example"),
    ):
        out = io.StringIO()
        call_command(*args, stdout=out)
        links[args[0]] = re.search(r"https://\S+", out.getvalue()).group(0)
    admin = User.objects.get(email="boss@initech.example")
    staff = User.objects.get(email="ops@provider.example")
    assert User.objects.count() == 2
    for user in (admin, staff):
        assert not user.has_usable_password()
        for guess in ("", "password", "admin", "dashvault"):
            assert not user.check_password(guess)
    client = make_client()
    assert (
        use_set_password_link(client, links["createorg"], "initech-first-password").status_code
        == 302
    )
    admin.refresh_from_db()
    assert admin.check_password("initech-first-password")
    staff.refresh_from_db()
    assert not staff.has_usable_password()


def test_a_set_password_link_past_its_lifetime_is_refused(viewer_a, monkeypatch, settings):
    """ASVS V6.4.1: set-password links expire after DASHVAULT_SET_PASSWORD_HOURS (72 by
    default)."""
    assert settings.PASSWORD_RESET_TIMEOUT == 72 * 3600
    link = set_password_url(viewer_a, "https://testserver")
    issued = dt.datetime.now()
    lifetime = dt.timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)

    monkeypatch.setattr(
        default_token_generator, "_now", lambda: issued + lifetime + dt.timedelta(minutes=1)
    )
    late = use_set_password_link(make_client(), link, "too-late-new-password")
    assert late.status_code == 200 and b'name="password1"' not in late.content
    viewer_a.refresh_from_db()
    assert viewer_a.check_password(PASSWORD)

    monkeypatch.setattr(
        default_token_generator, "_now", lambda: issued + lifetime - dt.timedelta(minutes=1)
    )
    assert use_set_password_link(make_client(), link, "just-in-time-password").status_code == 302
    viewer_a.refresh_from_db()
    assert viewer_a.check_password("just-in-time-password")


def test_sign_in_reset_and_set_password_forms_ask_for_no_hint_or_secret_question(
    password_forms, client
):
    """ASVS V6.4.2: no password hints or secret questions: the forms hold only these fields."""
    reset = client.get("/accounts/password/reset/").content.decode()
    assert field_names(password_forms["sign-in"]) == {"csrfmiddlewaretoken", "login", "password"}
    assert field_names(reset) == {"csrfmiddlewaretoken", "email"}
    assert field_names(password_forms["set-password link"]) == {
        "csrfmiddlewaretoken",
        "password1",
        "password2",
        "next",
    }
    for html in (password_forms["sign-in"], reset, password_forms["set-password link"]):
        text = html.lower()
        assert "hint" not in text and "question" not in text and "maiden" not in text


def test_a_reset_or_set_password_link_does_not_sign_in_and_the_code_is_still_asked(admin_a):
    """ASVS V6.4.3: a password reset does not bypass the second factor: neither the "forgot
    password" mail nor an admin's set-password link signs in, and the next sign-in asks for
    the TOTP code."""
    totp = enrol_totp(admin_a)
    client = make_client()
    client.post("/accounts/password/reset/", {"email": admin_a.email})
    [message] = mail.outbox
    emailed = re.search(r"https://\S+/accounts/password/reset/key/\S+", message.body).group(0)
    for n in range(2):
        # The mailed link first, then one an admin issues (a link made earlier would have
        # stopped working when the password changed).
        link = emailed if n == 0 else set_password_url(admin_a, "https://testserver")
        new = f"a-long-new-password-{n}"
        assert use_set_password_link(client, link, new).status_code == 302
        admin_a.refresh_from_db()
        assert admin_a.check_password(new)
        assert signed_in_user(client) is None
        assert client.get("/dashboards/").status_code == 302
        response = sign_in(client, admin_a.email, new)
        assert response.status_code == 302 and response["Location"] == MFA_STEP
        assert signed_in_user(client) is None
        assert client.get("/dashboards/").status_code == 302
        client = make_client()
    assert totp.now()  # the factor itself is untouched


# --- V6.5 second factors --------------------------------------------------------------------


def test_a_totp_code_accepted_once_is_refused_the_second_time(admin_a, totp_clock):
    """ASVS V6.5.1: a TOTP code works once, even within its own 30 seconds."""
    totp = enrol_totp(admin_a)
    code = totp.at(totp_clock.now)
    first = make_client()
    sign_in(first, admin_a.email)
    assert first.post(MFA_STEP, {"code": code}).status_code == 302
    assert signed_in_user(first) == str(admin_a.pk)
    second = make_client()
    sign_in(second, admin_a.email)
    assert second.post(MFA_STEP, {"code": code}).status_code == 200
    assert signed_in_user(second) is None


def test_totp_and_recovery_code_seeds_come_from_the_secrets_module(viewer_a, monkeypatch):
    """ASVS V6.5.3: TOTP seeds (enrolment page) and recovery-code seeds come from Python's
    `secrets` (os.urandom), not a predictable generator."""
    viewer_a.org.require_mfa = True
    viewer_a.org.save()
    client = make_client()
    sign_in(client, viewer_a.email)
    client.post(client.get(ENROL)["Location"], {"password": PASSWORD})  # re-authenticate

    calls: list[tuple[str, int]] = []
    marker_bytes = bytes(range(1, 21))
    marker_hex = "ab" * 40

    def token_bytes(n: int) -> bytes:
        calls.append(("token_bytes", n))
        return marker_bytes[:n]

    def token_hex(n: int) -> str:
        calls.append(("token_hex", n))
        return marker_hex[: 2 * n]

    monkeypatch.setattr(secrets, "token_bytes", token_bytes)
    monkeypatch.setattr(secrets, "token_hex", token_hex)
    page = client.get(ENROL)
    assert page.status_code == 200
    assert base64.b32encode(marker_bytes).decode() in page.content.decode()
    codes = RecoveryCodes.activate(viewer_a)
    assert get_mfa_adapter().decrypt(codes.instance.data["seed"]) == marker_hex
    assert calls == [("token_bytes", 20), ("token_hex", 40)]  # 160 and 320 bits


def test_recovery_codes_are_ten_codes_of_eight_digits(admin_a, settings):
    """ASVS V6.5.4: lookup secrets of at least 20 bits: 10 recovery codes of 8 digits
    (26.6 bits each), allauth's defaults, which settings.py does not change."""
    assert not hasattr(settings, "MFA_RECOVERY_CODE_COUNT")
    assert not hasattr(settings, "MFA_RECOVERY_CODE_DIGITS")
    assert (mfa_settings.RECOVERY_CODE_COUNT, mfa_settings.RECOVERY_CODE_DIGITS) == (10, 8)
    codes = RecoveryCodes.activate(admin_a).get_unused_codes()
    assert len(codes) == len(set(codes)) == 10
    assert all(re.fullmatch(r"[0-9]{8}", code) for code in codes)


def test_the_previous_periods_totp_code_is_refused(admin_a, totp_clock, settings):
    """ASVS V6.5.5: a TOTP code lives 30 seconds: no tolerance for the previous (or next)
    period."""
    assert not hasattr(settings, "MFA_TOTP_TOLERANCE")
    assert (mfa_settings.TOTP_PERIOD, mfa_settings.TOTP_TOLERANCE) == (30, 0)
    totp = enrol_totp(admin_a)
    now = totp_clock.now
    while totp.at(now - 30) in (totp.at(now), totp.at(now + 30)):  # one chance in a million
        totp = enrol_totp(admin_a)
    for stale in (totp.at(now - 30), totp.at(now + 30)):
        client = make_client()
        sign_in(client, admin_a.email)
        assert client.post(MFA_STEP, {"code": stale}).status_code == 200
        assert signed_in_user(client) is None
    assert client.post(MFA_STEP, {"code": totp.at(now)}).status_code == 302
    assert signed_in_user(client) == str(admin_a.pk)


# --- V6.8, V7.6 single sign-on --------------------------------------------------------------


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with running_provider(tmp_path_factory.mktemp("oidc")) as provider:
        yield provider


@pytest.fixture
def azure(
    oidc: Provider, monkeypatch: pytest.MonkeyPatch, settings: Any, admin_a: User
) -> IdentityProvider:
    """Org A signing in with Azure AD at the loopback provider, federation on."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(oidc.ca_file))
    settings.SSO_AZURE_URL = oidc.azure_url
    idp = do_save_provider(
        admin_a.org,
        "azure",
        client_id="dashvault-a",
        client_secret="s3cret-asvs-not-anywhere-else",
        tenant_id=TENANT,
        acting=admin_a,
        ip=None,
    )
    configure(admin_a.org, admin_a)
    return idp


def test_an_sso_sign_in_stops_at_the_second_factor_and_an_org_requiring_mfa_sends_to_enrol(
    oidc, azure
):
    """ASVS V6.8.4: the provider's authentication counts as one factor (the documented
    fallback): a person with TOTP is asked for the code after the provider, and in an org that
    requires MFA a person without a factor must enrol before anything else."""
    sso_sign_in(oidc, azure, "alice", azure_person("alice"))
    alice = User.objects.get(email="alice@a.example")
    totp = enrol_totp(alice)
    client, response = sso_sign_in(oidc, azure, "alice")
    assert response.status_code == 302 and response["Location"] == MFA_STEP
    assert signed_in_user(client) is None
    assert client.get("/dashboards/").status_code == 302
    assert client.post(MFA_STEP, {"code": totp.now()}).status_code == 302
    assert signed_in_user(client) == str(alice.pk)

    azure.org.require_mfa = True
    azure.org.save()
    client, response = sso_sign_in(oidc, azure, "bob", azure_person("bob"))
    assert signed_in_user(client) == str(User.objects.get(email="bob@a.example").pk)
    assert client.get("/dashboards/")["Location"] == ENROL


def test_an_id_token_from_the_token_endpoint_is_checked_for_issuer_audience_and_expiry_only():
    """ASVS V6.8.2 (partly): the checks allauth applies to an ID token received straight from
    the token endpoint over verified TLS (its OpenID Connect adapter passes
    verify_signature=False then, as OpenID Connect Core §3.1.3.7 permits): issuer, audience,
    expiry and a single-use `jti` are enforced; a signature by an unknown key is not noticed."""
    import jwt
    from allauth.socialaccount.internal import jwtkit
    from allauth.socialaccount.providers.oauth2.client import OAuth2Error

    issuer, audience = "https://idp.example/v2.0", "dashvault-a"
    now = int(time.time())
    good = {"iss": issuer, "aud": audience, "sub": "alice", "iat": now, "exp": now + 300}

    def decode(claims: dict[str, Any]) -> dict[str, Any]:
        forged = jwt.encode(claims, secrets.token_bytes(32), algorithm="HS256")  # no IdP key
        return jwtkit.verify_and_decode(
            credential=forged,
            keys_url="https://idp.example/keys",  # never fetched without a signature check
            issuer=issuer,
            audience=audience,
            lookup_kid=jwtkit.lookup_kid_jwk,
            verify_signature=False,
        )

    for wrong in ({"iss": "https://evil.example"}, {"aud": "someone-else"}, {"exp": now - 60}):
        with pytest.raises(OAuth2Error):
            decode(good | wrong)
    assert decode(good)["sub"] == "alice"  # the gap: any key's signature passes
    decode(good | {"jti": "once"})
    with pytest.raises(OAuth2Error):
        decode(good | {"jti": "once"})  # a replayed token


def test_an_sso_session_ends_at_the_absolute_lifetime_like_a_password_session(
    oidc, azure, settings
):
    """ASVS V7.6.1: a session started through SSO lives by dashvault's own timeouts (§5.3):
    it ends at the absolute lifetime whatever the provider's session does."""
    client, _ = sso_sign_in(oidc, azure, "carol", azure_person("carol"))
    assert client.get("/dashboards/").status_code == 200
    session = client.session
    assert abs(session[STARTED] - time.time()) < 60  # the clock started at the SSO sign-in
    session[STARTED] = int(time.time()) - settings.SESSION_ABSOLUTE_SECONDS - 1
    session.save()
    response = client.get("/dashboards/")
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert signed_in_user(client) is None
    assert client.get("/dashboards/").status_code == 302


# --- V7 sessions ----------------------------------------------------------------------------


def test_the_session_id_is_32_characters_of_a_z_0_9_and_new_at_every_sign_in(viewer_a, editor_a):
    """ASVS V7.2.3: session ids are Django's: 32 characters of [a-z0-9] from `secrets`
    (165 bits), a new one at each sign-in."""
    keys = []
    client = make_client()
    for user in (viewer_a, viewer_a, editor_a):
        client.get(LOGIN)
        sign_in(client, user.email)
        keys.append(client.session.session_key)
        client.post("/accounts/logout/")
    other = make_client()
    sign_in(other, viewer_a.email)
    keys.append(other.session.session_key)
    assert all(re.fullmatch(r"[a-z0-9]{32}", key) for key in keys), keys
    assert len(set(keys)) == len(keys)


def nav_links(html: str) -> set[str]:
    nav = re.search(r"<nav>(.*?)</nav>", html, re.S)
    assert nav, "no navigation"
    return set(re.findall(r'href="(/[^"]*)"', nav.group(1)))


def test_every_signed_in_page_shows_sign_out(admin_a, viewer_a, staff, dashboards_a):
    """ASVS V7.4.4: sign-out is on every page a signed-in member, admin or staff member sees:
    each page the navigation leads to, and the detail pages behind them."""
    sales = dashboards_a["sales"].pk
    extra = {
        viewer_a: [f"/dashboards/{sales}/", "/accounts/password/change/"],
        admin_a: [
            f"/dashboards/{sales}/",
            f"/dashboards/{sales}/edit/",
            "/dashboards/new/",
            f"/org/members/{viewer_a.pk}/",
            "/org/members/new/",
            "/org/groups/new/",
            "/org/kiosks/new/",
            "/org/integrations/new/",
            "/org/sso/google/",
        ],
        staff: [f"/staff/orgs/{admin_a.org_id}/networks/"],
    }
    seen = 0
    for user, more in extra.items():
        client = make_client(user)
        home = client.get("/", follow=True)
        assert home.status_code == 200
        pages = nav_links(home.content.decode()) | set(more)
        assert "/accounts/logout/" in pages
        for path in sorted(pages - {"/accounts/logout/", "/"}):
            response = client.get(path)
            assert response.status_code == 200, (user.email, path, response.status_code)
            assert SIGN_OUT in response.content.decode(), (user.email, path)
            seen += 1
    assert seen >= 30
    client = make_client(viewer_a)
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/dashboards/").status_code == 302


# --- V12 communication ----------------------------------------------------------------------


def test_serve_in_production_refuses_to_start_without_a_tls_certificate(tmp_path):
    """ASVS V12.2.2: production serves the operator's certificate, never a self-signed one:
    `dashvault serve` exits without DASHVAULT_TLS_CERT and DASHVAULT_TLS_KEY."""
    env = {
        "DASHVAULT_MODE": "production",
        "DASHVAULT_SECRET_KEY": "Q7vx#92LmZp0aRt!yW3s" * 3,
        "DASHVAULT_MASTER_KEYS": crypto.Keyring({1: crypto.new_key()}).dumps(),
        "DASHVAULT_AUDIT_KEY": "k" * 44,
        "DASHVAULT_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "audit_signing.pem"),
        "DASHVAULT_ALLOWED_HOSTS": "dash.example.com",
    }
    data = tmp_path / "data"
    dashvault(data, "migrate", "--no-input", "--verbosity", "0", env=env)
    result = dashvault(data, "serve", "--port", "0", "--redirect-port", "0", env=env, check=False)
    assert result.returncode != 0
    assert "DASHVAULT_TLS_CERT and DASHVAULT_TLS_KEY are required in production" in result.stderr
    assert not (data / "tls").exists()  # no self-signed pair was made


# --- V14 data protection --------------------------------------------------------------------


def test_no_served_script_uses_browser_storage():
    """ASVS V14.3.3: nothing but the session and CSRF cookies is kept in the browser: no
    served script (ours, the vendored ones, allauth's) touches web storage or cookies."""
    scripts = []
    for finder in finders.get_finders():
        for path, storage in finder.list([]):
            if path.endswith(".js"):
                scripts.append((path, Path(storage.path(path)).read_text(errors="replace")))
    names = {path for path, _ in scripts}
    assert {"dashvault/dashboard.js", "dashvault/board.js", "dashvault/kiosk.js"} <= names
    assert "vendor/echarts.min.js" in names and "mfa/js/webauthn.js" in names
    for path, text in scripts:
        for api in ("localStorage", "sessionStorage", "indexedDB", "document.cookie"):
            assert api not in text, (path, api)


# --- V16 logging ----------------------------------------------------------------------------


@pytest.fixture
def server_log() -> Iterator[io.StringIO]:
    """The console handler exactly as settings.LOGGING configures it, writing to a buffer."""
    logging.config.dictConfig(django_settings.LOGGING)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    yield buffer
    handler.setStream(sys.stderr)


def test_audit_times_are_shown_and_exported_in_utc_with_the_offset(admin_a, client):
    """ASVS V16.2.2: audit times are UTC: the log page says so, exports carry +00:00, whatever
    the organization's own time zone."""
    admin_a.org.time_zone = "Pacific/Auckland"
    admin_a.org.save()
    sign_in(client, admin_a.email)
    entry = AuditEntry.objects.get(action="signin")
    utc = entry.at.astimezone(dt.UTC)
    page = client.get("/org/audit/").content.decode()
    assert "<th>Time (UTC)</th>" in page
    assert f"<td>{utc:%Y-%m-%d %H:%M:%S}</td>" in page
    exported = client.get("/org/audit/", {"export": "json"}).json()
    [row] = [r for r in exported if r["action"] == "signin"]
    assert row["at"].endswith("+00:00")
    assert dt.datetime.fromisoformat(row["at"]) == entry.at
    csv_text = client.get("/org/audit/", {"export": "csv"}).content.decode()
    assert utc.isoformat(timespec="microseconds") in csv_text


def test_an_unexpected_api_error_is_logged_once_with_a_redacted_traceback(
    org_a, admin_a, monkeypatch, server_log, caplog
):
    """ASVS V16.3.4: an unexpected error is logged at ERROR, its traceback once, with secrets
    and addresses redacted."""
    from dashvault.api import views

    token = do_create_token(org_a, "ci", ["read"], expires_at=None, acting=admin_a)[1]

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("lost connection; password=hunter2-secret for bob@leak.example")

    monkeypatch.setattr(views, "_audit", broken)
    api = SecureClient(headers={"Authorization": f"Bearer {token}"}, raise_request_exception=False)
    with caplog.at_level(logging.INFO):
        response = api.get("/api/v1/metrics")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal error; nothing was stored."}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    # One record with the traceback (the API's handler), and Django's one-line status record
    # for the 500 answer.
    assert [(r.name, r.exc_info is not None) for r in errors] == [
        ("dashvault.api.views", True),
        ("django.request", False),
    ]
    assert errors[0].exc_info[0] is RuntimeError
    text = server_log.getvalue()
    assert "Traceback (most recent call last)" in text and "RuntimeError" in text
    assert "hunter2" not in text and "bob@leak.example" not in text
    assert "password=[redacted]" in text and "[redacted e-mail]" in text


def test_a_path_with_a_newline_is_logged_as_one_escaped_line(db, client, server_log):
    """ASVS V16.4.1: log injection: a request path carrying %0A (or %0D) stays one line, the
    control characters escaped."""
    client.get("/nope%0AERROR forged entry%0D%0Aanother")
    lines = server_log.getvalue().splitlines()
    assert lines == ["Not Found: /nope\\nERROR forged entry\\r\\nanother"]
