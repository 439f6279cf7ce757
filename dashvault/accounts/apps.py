from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "dashvault.accounts"
    label = "accounts"

    def ready(self) -> None:
        from dashvault.accounts import signals  # noqa: F401  (connects the receivers)
