from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "dashvault.backups"
    label = "backups"

    def ready(self) -> None:
        from dashvault.backups import jobs  # noqa: F401  (registers the periodic backup)
