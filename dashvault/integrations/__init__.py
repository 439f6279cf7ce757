"""Integrations: scheduled connectors that pull other services' records into metrics."""
