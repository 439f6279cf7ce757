from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "dashvault.audit"
    label = "audit"
