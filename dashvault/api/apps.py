from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "dashvault.api"
    label = "api"
