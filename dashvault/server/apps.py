from django.apps import AppConfig


class ServerConfig(AppConfig):
    name = "dashvault.server"
    label = "server"
