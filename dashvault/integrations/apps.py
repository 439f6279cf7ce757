from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "dashvault.integrations"
    label = "integrations"

    def ready(self) -> None:
        # Registers the sync tasks with the queue: a worker only runs tasks it has imported.
        from dashvault.integrations import jobs  # noqa: F401
