"""Changes to users: each writes its audit entry in the same transaction."""

from __future__ import annotations

import uuid

from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from dashvault import audit
from dashvault.accounts.models import Role, User, normalize_email
from dashvault.accounts.sessions import end_sessions
from dashvault.orgs.models import Organization


def set_password_url(user: User, base_url: str) -> str:
    """A one-time link that lets `user` choose a password.

    Security contract: the token is Django's password-reset token (via allauth), signed with
    the secret key over the user's password hash, last sign-in and e-mail: it stops working
    once used (the hash changes) and after PASSWORD_RESET_TIMEOUT. allauth's view moves it out
    of the URL into the session on first use, so it does not leak through Referer.
    """
    key = f"{user_pk_to_url_str(user)}-{default_token_generator.make_token(user)}"
    path = reverse(
        "account_reset_password_from_key", kwargs={"uidb36": "UID", "key": "KEY"}
    ).replace("UID-KEY", key)
    return base_url.rstrip("/") + path


def do_issue_link(user: User, *, acting: User, base_url: str, ip: str | None) -> str:
    """A fresh set-password link for a member, shown to the admin: audited, since whoever holds
    it can take over the account."""
    with transaction.atomic():
        audit.record("user.link", org=user.org_id, actor=acting, target=user, ip=ip)
        return set_password_url(user, base_url)


def _send_invite(user_id: uuid.UUID, link: str) -> None:
    user = User.objects.get(pk=user_id)
    send_mail(
        "Your dashvault account",
        "An administrator created a dashvault account for you.\n\n"
        f"Choose your password here (the link works once): {link}\n",
        None,
        [user.email],
    )


def do_create_user(
    org: Organization,
    email: str,
    role: str,
    *,
    acting: User | None,
    base_url: str,
    ip: str | None = None,
) -> tuple[User, str]:
    """Add a member to `org` and e-mail them a one-time set-password link (after commit).

    Returns the user and the link, which the admin is shown once. Raises ValidationError for
    an address already in use (in any org: one account per address).
    """
    email = normalize_email(email)
    if User.objects.filter(email=email).exists():
        raise ValidationError({"email": "A user with this e-mail address already exists."})
    if role not in Role.values:
        raise ValidationError({"role": "Unknown role."})
    with transaction.atomic():
        user = User.objects.create_user(email, org=org, role=role)
        audit.record("user.create", org=org, actor=acting, target=user, ip=ip, role=role)
        link = set_password_url(user, base_url)
        transaction.on_commit(lambda: _send_invite(user.pk, link))
    return user, link


def do_create_staff(email: str, *, base_url: str) -> tuple[User, str]:
    """Add a platform staff member (no org; MFA is enforced at their first sign-in)."""
    email = normalize_email(email)
    if User.objects.filter(email=email).exists():
        raise ValidationError({"email": "A user with this e-mail address already exists."})
    with transaction.atomic():
        user = User.objects.create_user(email, is_platform_staff=True, org=None)
        audit.record("staff.create", target=user)
        return user, set_password_url(user, base_url)


def _admins_left(org_id: uuid.UUID | None, without: User) -> int:
    return (
        User.objects.filter(org_id=org_id, role=Role.ADMIN, is_active=True)
        .exclude(pk=without.pk)
        .count()
    )


def do_change_role(user: User, role: str, *, acting: User, ip: str | None = None) -> None:
    """Change a member's role; refuses to remove the org's last active admin."""
    if role not in Role.values:
        raise ValidationError({"role": "Unknown role."})
    with transaction.atomic():
        if user.role == Role.ADMIN and role != Role.ADMIN and not _admins_left(user.org_id, user):
            raise ValidationError("An organization needs at least one active admin.")
        user.role = role
        user.save(update_fields=["role"])
        audit.record("user.role", org=user.org_id, actor=acting, target=user, ip=ip, role=role)


def do_set_active(user: User, active: bool, *, acting: User, ip: str | None = None) -> None:
    """Deactivate (ending every session at once) or reactivate a member."""
    if not active and user.pk == acting.pk:
        raise ValidationError("You cannot deactivate yourself.")
    with transaction.atomic():
        if not active and user.role == Role.ADMIN and not _admins_left(user.org_id, user):
            raise ValidationError("An organization needs at least one active admin.")
        user.is_active = active
        user.save(update_fields=["is_active"])
        action = "user.reactivate" if active else "user.deactivate"
        audit.record(action, org=user.org_id, actor=acting, target=user, ip=ip)
        if not active:
            end_sessions(user)


def public_base_url() -> str:
    """Where people reach this server, for links made outside a request (CLI)."""
    return str(settings.PUBLIC_URL)
