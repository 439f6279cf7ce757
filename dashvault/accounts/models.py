from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


class UserManager(BaseUserManager["User"]):
    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        user = self.model(email=normalize_email(email), **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()  # set through a one-time link
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user


def normalize_email(email: str) -> str:
    # One account per address whatever its case: sign-in, invites and SSO all compare lowercase.
    return email.strip().lower()


class User(AbstractBaseUser):
    """A person. Members belong to one organization with a role; platform staff to none."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    org = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="users"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    is_platform_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    # May sign in with the org's SSO. An identity provider's e-mail claim is matched to an
    # existing account only when this is set (an admin linked them, or SSO created them).
    sso_allowed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []  # type: ignore[var-annotated]  # base class declares list[str]

    class Meta:
        ordering = ["email"]
        indexes = [models.Index(fields=["org", "email"], name="user_org_email")]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(is_platform_staff=True, org__isnull=True)
                    | models.Q(is_platform_staff=False, org__isnull=False)
                ),
                name="user_staff_xor_org",
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)  # never the e-mail: str() ends up in logs and audit reprs


def user_display(user: User) -> str:
    """How allauth names a user to themselves in messages: their address."""
    return user.email
