from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "dashvault.dashboards"
    label = "dashboards"
