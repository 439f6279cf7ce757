from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "dashvault.jobs"
    label = "jobs"
