from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "dashvault.metrics"
    label = "metrics"
