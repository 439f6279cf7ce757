from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "dashvault.live"
    label = "live"

    def ready(self) -> None:
        from dashvault.live.publish import connect_receivers

        connect_receivers()
