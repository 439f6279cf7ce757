from __future__ import annotations

from django.apps import AppConfig


class KioskConfig(AppConfig):
    name = "dashvault.kiosk"
    label = "kiosk"
    default_auto_field = "django.db.models.BigAutoField"
