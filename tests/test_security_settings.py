"""Response headers, `check --deploy`, fail-closed secrets, and Argon2 at OWASP cost."""

from __future__ import annotations

import stat
import threading
import time

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher

from dashvault.accounts import hashers
from tests.live import dashvault


def test_pages_send_the_security_headers(client, db):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_templates_have_no_inline_script_or_style(db):
    from pathlib import Path

    import dashvault

    root = Path(dashvault.__file__).parent / "templates"
    for template in root.rglob("*.html"):
        text = template.read_text()
        assert "<style" not in text and " style=" not in text, template
        for tag in text.split("<script")[1:]:
            assert "src=" in tag.split(">")[0] or 'type="application/json"' in tag, template


def test_plain_http_is_redirected_to_https(db):
    from django.test import Client

    response = Client().get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"


def test_check_deploy_is_clean_in_production_mode(tmp_path):
    env = {
        "DASHVAULT_MODE": "production",
        "DASHVAULT_SECRET_KEY": "Q7vx#92LmZp0aRt!yW3s" * 3,
        "DASHVAULT_MASTER_KEYS_FILE": str(tmp_path / "master.keys"),
        "DASHVAULT_AUDIT_KEY": "k" * 44,
        "DASHVAULT_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "audit_signing.pem"),
        "DASHVAULT_ALLOWED_HOSTS": "dash.example.com",
    }
    result = dashvault(
        tmp_path, "check", "--deploy", "--fail-level", "WARNING", env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DASHVAULT_SECRET_KEY (or _FILE) is required in production"),
        ({"DASHVAULT_SECRET_KEY": "django-insecure-" + "x" * 40}, "too short or a known default"),
        ({"DASHVAULT_SECRET_KEY": "short"}, "too short or a known default"),
        ({"DASHVAULT_SECRET_KEY": "Q7vx#92LmZp0aRt!yW3s" * 3}, "DASHVAULT_MASTER_KEYS"),
        (
            {"DASHVAULT_SECRET_KEY": "Q7vx#92LmZp0aRt!yW3s" * 3, "DASHVAULT_MASTER_KEYS": "x"},
            "DASHVAULT_AUDIT_KEY (or _FILE) is required in production",
        ),
        (
            {
                "DASHVAULT_SECRET_KEY": "Q7vx#92LmZp0aRt!yW3s" * 3,
                "DASHVAULT_MASTER_KEYS": "x",
                "DASHVAULT_AUDIT_KEY": "short",
            },
            "DASHVAULT_AUDIT_KEY must be at least 32 characters",
        ),
        (
            {
                "DASHVAULT_SECRET_KEY": "Q7vx#92LmZp0aRt!yW3s" * 3,
                "DASHVAULT_MASTER_KEYS": "x",
                "DASHVAULT_AUDIT_KEY": "k" * 44,
            },
            "DASHVAULT_AUDIT_SIGNING_KEY_FILE is required in production",
        ),
    ],
)
def test_production_mode_refuses_missing_or_default_secrets(tmp_path, env, message):
    result = dashvault(tmp_path, "check", env={"DASHVAULT_MODE": "production", **env}, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_embedded_mode_generates_owner_only_secrets(tmp_path):
    dashvault(tmp_path, "check")
    secret = tmp_path / "keys" / "secret_key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    assert len(secret.read_text().strip()) >= 50
    first = secret.read_text()
    dashvault(tmp_path, "check")
    assert secret.read_text() == first  # generated once, then kept


def test_passwords_are_hashed_with_argon2id_at_owasp_parameters():
    encoded = hashers.OwaspArgon2PasswordHasher().encode("pw", "saltsaltsalt")
    assert encoded.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    assert hashers.OwaspArgon2PasswordHasher().verify("pw", encoded)


def test_hashes_with_djangos_default_parameters_still_verify_and_get_upgraded():
    old = Argon2PasswordHasher().encode("pw", "saltsaltsalt")
    hasher = hashers.OwaspArgon2PasswordHasher()
    assert hasher.verify("pw", old)
    assert hasher.must_update(old)


def test_hashing_concurrency_is_capped(settings, monkeypatch):
    settings.PASSWORD_HASH_CONCURRENCY = 2
    monkeypatch.setattr(hashers, "_slots", None)
    running, peak, lock = 0, 0, threading.Lock()
    real = Argon2PasswordHasher.encode

    def counting(self, password, salt):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)  # hold the slot so that other threads pile up behind it
        try:
            return real(self, password, salt)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(Argon2PasswordHasher, "encode", counting)
    threads = [
        threading.Thread(
            target=hashers.OwaspArgon2PasswordHasher().encode, args=("pw", "saltsaltsalt")
        )
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2
    monkeypatch.setattr(hashers, "_slots", None)


@pytest.mark.parametrize(
    "path",
    [
        "/org/members/new/",
        "/org/groups/new/",
        "/dashboards/new/",
        "/org/tokens/",
        "/accounts/logout/",
    ],
)
def test_state_changing_forms_refuse_a_post_without_the_csrf_token(admin_a, path):
    from tests.conftest import SecureClient

    client = SecureClient(enforce_csrf_checks=True)
    client.force_login(admin_a)
    response = client.post(
        path, {"email": "x@a.example", "role": "viewer", "name": "x", "title": "x"}
    )
    assert response.status_code == 403
    assert b"Form expired" in response.content


def test_the_api_needs_no_csrf_token_because_it_takes_no_cookies(admin_a, org_a):
    from dashvault.api.actions import do_create_token
    from tests.conftest import SecureClient

    _, token = do_create_token(org_a, "t", ["read"], expires_at=None, acting=admin_a)
    client = SecureClient(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {token}"})
    client.force_login(admin_a)  # a session cookie alone must not authenticate the API
    assert client.get("/api/v1/metrics").status_code == 200
    anonymous = SecureClient(enforce_csrf_checks=True)
    anonymous.force_login(admin_a)
    assert anonymous.get("/api/v1/metrics").status_code == 401
