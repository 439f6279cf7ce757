from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "dashvault.orgs"
    label = "orgs"
