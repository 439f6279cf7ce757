"""Shared fixtures: org A (admin, editor, viewer), org B (admin), a platform staff member."""

from __future__ import annotations

import logging
import os
import re
import socket
from typing import Any

import pytest
from django.test import Client

from dashvault.accounts.models import Role, User
from dashvault.dashboards.models import Dashboard
from dashvault.orgs.models import Group, Organization

IN_CI = os.environ.get("CI") == "true"
PASSWORD = "correct horse battery staple"


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is down on a developer machine; in CI a missing service fails."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        if IN_CI:
            pytest.fail(f"{name} must be running on {host}:{port} in CI")
        pytest.skip(f"{name} is not running on {host}:{port}")


@pytest.fixture(autouse=True)
def empty_cache() -> Any:
    """Each test starts with an empty cache (throttle counts, sessions, dashboard data)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


class SecureClient(Client):
    """Django's test client speaking HTTPS, as every real client of dashvault must."""

    def request(self, **request: Any) -> Any:
        request["wsgi.url_scheme"] = "https"
        request["SERVER_PORT"] = "443"
        return super().request(**request)


@pytest.fixture
def client() -> SecureClient:
    return SecureClient()


def make_client(user: User | None = None) -> SecureClient:
    c = SecureClient()
    if user is not None:
        c.force_login(user)
    return c


@pytest.fixture
def org_a(db: Any) -> Organization:
    return Organization.objects.create(name="Org A")


@pytest.fixture
def org_b(db: Any) -> Organization:
    return Organization.objects.create(name="Org B")


def _member(org: Organization, email: str, role: str) -> User:
    return User.objects.create_user(email, PASSWORD, org=org, role=role)


@pytest.fixture
def admin_a(org_a: Organization) -> User:
    return _member(org_a, "admin@a.example", Role.ADMIN)


@pytest.fixture
def editor_a(org_a: Organization) -> User:
    return _member(org_a, "editor@a.example", Role.EDITOR)


@pytest.fixture
def viewer_a(org_a: Organization) -> User:
    return _member(org_a, "viewer@a.example", Role.VIEWER)


@pytest.fixture
def admin_b(org_b: Organization) -> User:
    return _member(org_b, "admin@b.example", Role.ADMIN)


@pytest.fixture
def staff(db: Any) -> User:
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    user = User.objects.create_user("staff@provider.example", PASSWORD, is_platform_staff=True)
    TOTP.activate(user, generate_totp_secret())  # staff must have MFA to get past enrolment
    return user


@pytest.fixture
def dashboards_a(org_a: Organization, editor_a: User, viewer_a: User) -> dict[str, Any]:
    """Org A: "Sales" granted to a group with the editor and viewer; "Board" granted to none."""
    sales = Dashboard.objects.create(org=org_a, title="Sales A")
    board = Dashboard.objects.create(org=org_a, title="Board A")
    group = Group.objects.create(org=org_a, name="Sales team A")
    group.members.set([editor_a, viewer_a])
    group.dashboards.set([sales])
    return {"sales": sales, "board": board, "group": group}


# -- no personal data or tokens anywhere, over the whole run ---------------------------------

LEAK_RE = re.compile(
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|\bdv[kp]_[A-Za-z0-9_-]{8,}"
)


class LeakWatcher(logging.Handler):
    """Every log line the application would write (through the configured filters), and every
    audit entry saved, of every test: none may carry an e-mail address or a token."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if LEAK_RE.search(line):
            self.leaks.append(f"log line: {line[:200]}")

    def audit_saved(self, sender: Any, instance: Any, **kwargs: Any) -> None:
        fields = [instance.action, instance.target_id, str(instance.detail), instance.ip or ""]
        for text in fields:
            if LEAK_RE.search(text):
                self.leaks.append(f"audit entry {instance.action}: {text[:200]}")


@pytest.fixture(scope="session", autouse=True)
def no_personal_data_leaks(django_db_setup: Any) -> Any:
    from django.db.models.signals import post_save

    from dashvault.audit.models import AuditEntry
    from dashvault.lib.logfilter import DropRefusals, RedactSecrets

    watcher = LeakWatcher()
    watcher.addFilter(RedactSecrets())
    watcher.addFilter(DropRefusals())
    logging.getLogger().addHandler(watcher)
    post_save.connect(watcher.audit_saved, sender=AuditEntry, dispatch_uid="tests.leaks")
    yield watcher
    post_save.disconnect(sender=AuditEntry, dispatch_uid="tests.leaks")
    logging.getLogger().removeHandler(watcher)
    assert not watcher.leaks, "personal data or tokens leaked:\n" + "\n".join(watcher.leaks[:20])
