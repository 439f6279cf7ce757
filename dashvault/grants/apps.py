from __future__ import annotations

from django.apps import AppConfig


class GrantsConfig(AppConfig):
    name = "dashvault.grants"
    label = "grants"
    default_auto_field = "django.db.models.BigAutoField"
