"""Connectors: each turns another service's records into dicts, page by page.

A connector is a module with `fetch(session, config, full) -> Iterator[list[dict]]`: it asks
`session` (connectors.session.Session: the SSRF-safe client with the integration's
authentication) for pages and yields each page's records, and sets `session.state` to the
cursor the next incremental run starts from. It may have `session_config(config)` (how the
service authenticates) and DEFAULT_MAPPING. `mapping.points` turns records into data points.
"""

from __future__ import annotations

from types import ModuleType

from dashvault.integrations.connectors import csv_url, hubspot, pipedrive, rest, salesforce


def for_kind(kind: str) -> ModuleType:
    return {
        "rest": rest,
        "csv": csv_url,
        "hubspot": hubspot,
        "pipedrive": pipedrive,
        "salesforce": salesforce,
    }[kind]
